"""A fine-tuning output: `model/` (safetensors and tokenizer, loadable with `from_pretrained`),
`report.html` (written before publishing), `_manifest.json` and `_SUCCESS`, published as data outputs are. A model stage can name such an
output as its `model:`; `trained_model_folder` resolves it to the `model/` inside."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path

from jobs.commit.layout import (CHECKPOINT_DIR, DERIVED_FILES, MANIFEST, MODEL_DIR, RAY_TRAIN_DIR, SUCCESS, TRAIN_LOG,
                                OutputLocation, delete_file, write_bytes, write_json)
from jobs.commit.publishing import put_in_place
from jobs.crashpoints import crash_point

REPORT_FILE = DERIVED_FILES[0]  # report.html, written into staging before publishing

__all__ = ["CHECKPOINT_DIR", "MODEL_DIR", "RAY_TRAIN_DIR", "TRAIN_LOG", "model_source", "publish_model",
           "trained_model_folder"]


def model_source(name_or_path: str, revision: str | None) -> dict:
    """Where the base model's files are and which revision they are: the cache snapshot's commit,
    or for a local folder a digest of its config and weight file names and sizes."""
    from jobs.engine.loading import local_model_dir

    folder = local_model_dir(name_or_path, revision)
    if folder is None:
        return {"source": name_or_path, "path": name_or_path, "revision": revision}
    if folder.parent.name == "snapshots":  # the HF cache: workers find it by name in their own cache
        return {"source": name_or_path, "path": name_or_path, "revision": folder.name}
    else:
        digest = hashlib.sha256((folder / "config.json").read_bytes())
        for path in sorted(folder.iterdir()):
            if path.suffix in (".safetensors", ".bin", ".json") and path.is_file():
                digest.update(f"{path.name}:{path.stat().st_size}".encode())
        found = f"local-{digest.hexdigest()[:16]}"
    return {"source": name_or_path, "path": str(folder.resolve()), "revision": found}


def trained_model_folder(value: str) -> str:
    """`<output>/model` when `value` is a committed fine-tuning output, else `value` unchanged."""
    folder = Path(value).expanduser()
    if (folder / SUCCESS).is_file() and (folder / MODEL_DIR / "config.json").is_file():
        try:
            kind = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError):
            return value
        if kind == "train":
            return str(folder / MODEL_DIR)
    return value


def publish_model(loc: OutputLocation, manifest: dict) -> None:
    """Seal staging (the model's files and the report listed with their digests, manifest,
    `_SUCCESS` last) and put it at the output path atomically; the checkpoints and Ray Train's
    files go as staging is tidied there, once the model is safe."""
    staging = Path(loc.staging)
    kept = [p for p in sorted((staging / MODEL_DIR).rglob("*")) if p.is_file()] + [staging / REPORT_FILE]
    manifest["files"] = [{"path": str(p.relative_to(staging)), "rows": 0, "sha256": _sha256(p),
                          "written_at": p.stat().st_mtime} for p in kept if p.is_file()]
    write_json(loc.fs, loc.publish_record, {"run_id": manifest["run_id"], "job": manifest["name"]})
    write_bytes(loc.fs, posixpath.join(loc.staging, MANIFEST), json.dumps(manifest, indent=2).encode())
    write_bytes(loc.fs, posixpath.join(loc.staging, SUCCESS), b"")
    crash_point("train.sealed")
    put_in_place(loc, manifest["run_id"])
    delete_file(loc.fs, loc.publish_record)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
