"""The output's README.md: a Hugging Face dataset card whose `configs:` name exactly the files the
manifest lists, so `datasets.load_dataset(OUTPUT)` gives the output rows and nothing else (the dead
letter and filtered rows have other columns and would break or pollute a plain glob), plus the
globs to use with DuckDB and polars.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CARD_FILE = "README.md"

# config name -> (manifest list, what its rows are)
_CONFIGS = {
    "default": ("files", "the output rows"),
    "dead_letter": ("dead_letter_files", "rows that failed, with `stage`, `error_type` and `error`"),
    "filtered": ("filtered_files", "rows a stage removed on purpose, with `filter_stage` and `filter_reason`"),
}


def card_text(manifest: dict, output_path: str) -> str:
    """The card: YAML front matter with one config per non-empty file list, then how to read it."""
    configs = []
    for name, (key, _) in _CONFIGS.items():
        paths = [entry["path"] for entry in manifest.get(key, [])]
        if name == "default":
            # Always there: with only a dead letter, datasets would take that lone config as the default.
            # An output without rows then fails to load instead of giving the failures as if they were rows.
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": paths or "data/*.parquet"}],
                            "default": True})
        elif paths:
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": paths}]})
    front = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
    spec = manifest.get("spec") or {}
    counts = (f"{manifest.get('rows_in', 0):,} rows in, {manifest.get('rows_out', 0):,} out, "
              f"{manifest.get('rows_dead_letter', 0):,} in the dead letter, "
              f"{manifest.get('rows_filtered', 0):,} filtered")
    lines = [
        "---", front.rstrip("\n"), "---", "",
        f"# {manifest.get('name')} ({spec.get('date') or manifest.get('finished_at', '')})", "",
        f"Written by raybatch {manifest.get('versions', {}).get('raybatch', '')} at {manifest.get('finished_at')}: "
        f"{counts}. `_manifest.json` is the record of the run (spec, counts, every file with its sha256).", "",
        "## Reading it", "",
        "```python",
        "import datasets",
        f"rows = datasets.load_dataset({output_path!r}, split=\"train\")            # the output rows only",
    ]
    if manifest.get("dead_letter_files"):
        lines.append(f"dead = datasets.load_dataset({output_path!r}, \"dead_letter\", split=\"train\")")
    lines += [
        "```", "",
        "Read `data/` alone: the other folders hold rows with other columns.", "",
        "```sql",
        f"SELECT * FROM read_parquet('{output_path}/data/*.parquet');   -- DuckDB",
        "```", "",
        "```python",
        f"polars.read_parquet({output_path + '/data/*.parquet'!r})",
        f"pandas.read_parquet({output_path + '/data'!r})",
        "```", "",
        "## Configs", "",
        *[f"- `{name}`: {what}" for name, (key, what) in _CONFIGS.items() if manifest.get(key)],
        "",
    ]
    return "\n".join(lines)


def write_card(folder: str | Path, manifest: dict, output_path: str) -> Path:
    path = Path(folder) / CARD_FILE
    path.write_text(card_text(manifest, output_path), encoding="utf-8")
    return path
