"""Typed records of the commit protocol: a part's files, a shard's marker, the manifest.

Markers are written by write tasks and read back by the driver; the manifest is what readers
trust. Both are validated on the way in, so a torn or foreign file is noticed, never guessed at.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FileEntry(BaseModel):
    """One written Parquet file, relative to the output folder."""

    model_config = ConfigDict(extra="forbid")
    path: str
    rows: int = Field(ge=0)
    sha256: str
    written_at: float = Field(description="epoch seconds, for throughput over time")
    kind: Literal["data", "dead_letter", "filtered"]


class Marker(BaseModel):
    """Written last for each part of a shard: the part is complete. `source_digest` is the
    identity digest of the input row ids the part accounts for (see commit.identity)."""

    model_config = ConfigDict(extra="forbid")
    shard: int = Field(ge=0)
    name: str
    source_rows: int = Field(ge=0)
    source_digest: str
    rows_out: int = Field(ge=0)
    rows_dead_letter: int = Field(ge=0)
    rows_filtered: int = Field(0, ge=0)
    source_rows_dead_letter: int = Field(0, ge=0, description="dead rows that stand for an input row")
    source_rows_filtered: int = Field(0, ge=0, description="filtered rows that stand for an input row")
    files: list[FileEntry]
    stage_stats: list[dict[str, Any]] = []


class PublicFile(BaseModel):
    """A file as the manifest lists it."""

    path: str
    rows: int
    sha256: str
    written_at: float


class Manifest(BaseModel):
    """The committed output's record: counts, the files readers trust, stats, spec, versions."""

    model_config = ConfigDict(extra="allow")
    name: str
    run_id: str
    fingerprint: str
    rows_in: int
    rows_out: int
    rows_dead_letter: int
    rows_filtered: int = 0
    files: list[PublicFile]
    dead_letter_files: list[PublicFile]
    filtered_files: list[PublicFile] = []
    shards: int
    shards_reused: int = 0
    stages: list[dict[str, Any]]
    spec: dict[str, Any]
    seed: int
    started_at: str
    finished_at: str
    seconds: float = 0.0
    versions: dict[str, str]
    input_files: list[str] = []
    incremental: bool = False
    phases: dict[str, float] = {}  # seconds: prepare, ray_start, work (the commit follows the manifest)
    spec_text: str | None = None  # the spec's YAML as written (URI credentials masked)
    progress: list[dict[str, Any]] = []  # per stage: input rows done over time (seconds since start)
    report: str | None = None  # report.html, written with the data before publishing
    dataset_card: str | None = None  # README.md: the configs `datasets.load_dataset(OUTPUT)` reads
