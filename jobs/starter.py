"""`raybatch init [KIND]`: a commented spec for one use case, plus a few example rows to run it on,
so a new user has something that validates and runs before they point it at their own data.

Nothing is overwritten: a spec file already there is refused, and example rows are written only
into a `data/` folder that holds no Parquet yet.
"""

from __future__ import annotations

from pathlib import Path

from jobs.errors import SpecError

_INPUT = '''input:
  path: data/*.parquet           # your Parquet files (a glob, a folder, or s3://... / gs://...)
  id_column: id                  # a unique id per row; leave it out to derive one from file and row
output:
  path: "out/{name}/{date}"      # committed once: data/, _dead_letter/, _manifest.json, _SUCCESS
'''

TEMPLATES = {
    "clean": '''# Clean a text column: Unicode normalization, control characters out, length limits.
# Rows that fail a check go to the dead letter with the reason; the rest to data/.
name: clean-text
seed: 0
''' + _INPUT + '''stages:
  - use: clean
    column: text                 # the column to clean; the result goes to text_clean
    min_chars: 1                 # shorter rows are dead-lettered as "empty"
    max_chars: 20000             # longer rows are dead-lettered as "too_long"
    normalize: NFC
''',
    "augment": '''# Expand a labelled corpus for fine-tuning: each row gets copies made by offline WordNet ops.
# Every copy names its parent (parent_id), its op and the seed that replays it (aug_seed).
name: augment-corpus
seed: 13                         # the same seed, rows and spec give byte-identical copies
''' + _INPUT + '''stages:
  - {use: clean, column: text}   # writes text_clean
  - use: augment
    column: text_clean
    copies: 2                    # augmented rows per input row
    keep_original: true
    ops:                         # each copy applies one op, taken in turn
      - {op: substitute, rate: 0.1}
      - {op: insert, rate: 0.1}
      - {op: reorder, rate: 0.1}
      - {op: delete, rate: 0.1}
    label_column: label          # carried to the copies unchanged
    split_column: split
    splits: [train]              # validation rows pass through unaugmented
''',
    "hygiene": '''# Corpus hygiene before data goes back into training: language, personal data, duplicates.
# Removed rows go to _filtered/ with filter_reason and, for duplicates, duplicate_of.
name: corpus-hygiene
seed: 0
''' + _INPUT + '''stages:
  - {use: clean, column: text}                     # writes text_clean
  - {use: langid, column: text_clean}              # writes lang and lang_score
  - {use: redact, column: text_clean, mode: mask}  # writes text_clean_redacted and pii_entities
  - use: dedup
    column: text_clean_redacted
    method: near                                   # or exact
    threshold: 0.8                                 # Jaccard similarity of the rows' word sets
''',
}
EXAMPLE_ROWS = 40


def init(kind: str, folder: Path) -> list[Path]:
    """Write `<folder>/<kind>.yaml` and, when `data/` has no Parquet, example rows; return the paths
    written."""
    if kind not in TEMPLATES:
        raise SpecError(f"unknown kind {kind!r}; choose one of: {', '.join(TEMPLATES)}")
    spec = folder / f"{kind}.yaml"
    if spec.exists():
        raise SpecError(f"{spec} exists; nothing was written (move it away, or pick another folder)")
    written = []
    data = folder / "data"
    if not any(data.glob("*.parquet")):
        rows = _example_rows()
        if rows is not None:
            import pyarrow.parquet as pq

            data.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, data / "example.parquet")
            written.append(data / "example.parquet")
    folder.mkdir(parents=True, exist_ok=True)
    spec.write_text(TEMPLATES[kind], encoding="utf-8")
    return [spec, *written]


def _example_rows():
    """The first and last rows of the SST-2 sample this project ships (real review sentences, both
    splits, with labels), or None outside a checkout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "reviews" / "sst2.parquet"
    if not sample.exists():
        return None
    table = pq.read_table(sample, columns=["id", "text", "label", "split"])
    return pa.concat_tables([table.slice(0, EXAMPLE_ROWS - 8), table.slice(table.num_rows - 8)])
