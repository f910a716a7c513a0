"""The incremental record: which input files a job's committed runs took, kept in the job's state
folder (the part of the output template before its first `{date}`, so it lasts night to night).

A file is recorded as pending before publishing and as committed right after; a pending entry is
settled on the next run from the output it names. Once committed, an entry no longer depends on
that output existing, so retention may delete old outputs without files being taken again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from jobs.commit.layout import MANIFEST, SUCCESS, now_iso, read_json, write_bytes
from jobs.inputs import InputFile


def state_dir(output_template: str, name: str) -> str:
    template = output_template.replace("{name}", name)
    if "{date}" in template:
        return os.path.abspath(template.split("{date}")[0].rstrip("/") or ".")
    return os.path.dirname(os.path.abspath(template.rstrip("/")))


def file_sha256(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class IncrementalState:
    path: str
    fs: pafs.FileSystem  # the input's filesystem: content hashes are read through it
    hashes: dict[str, str] = field(default_factory=dict)  # taken at planning, recorded at publishing

    @classmethod
    def for_job(cls, directory: str, name: str, fs: pafs.FileSystem) -> "IncrementalState":
        return cls(os.path.join(directory, f".raybatch-{name}.state.json"), fs)

    @property
    def lock_path(self) -> str:
        return self.path.removesuffix(".state.json") + ".lock"

    def load(self) -> dict[str, dict]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.load(handle).get("files", {})
        except FileNotFoundError:
            return {}

    def new_files(self, files: list[InputFile], output_path: str) -> list[InputFile]:
        """Files no committed run of another output took (a rerun of an output redoes its own).
        A file with a new mtime but the same size is compared by content before it is re-taken."""
        done = self._settle(self.load())
        fresh = []
        for file in files:
            entry = done.get(file.path)
            if entry is not None and entry["output"] != output_path and entry["size"] == file.size \
                    and (entry["mtime"] == file.mtime or entry.get("sha256") == self._hash(file)):
                continue
            self._hash(file)  # now, with the size and mtime just planned: a later rewrite is new again
            fresh.append(file)
        return fresh

    def _hash(self, file: InputFile) -> str:
        key = f"{file.path}|{file.size}|{file.mtime}"
        if key not in self.hashes:
            self.hashes[key] = file_sha256(self.fs, file.path)
        return self.hashes[key]

    def mark_pending(self, files: list[InputFile], output_path: str, run_id: str) -> None:
        """Record `files` as taken by `run_id`'s output; call before publishing it."""
        done = self.load()
        for file in files:
            before = done.get(file.path)
            done[file.path] = {"size": file.size, "mtime": file.mtime, "sha256": self._hash(file),
                               "output": output_path, "run_id": run_id, "status": "pending", "at": now_iso(),
                               # if this run never publishes (a failed --overwrite), the file stays taken
                               "previous": before if before and before.get("status") == "committed" else None}
        self._save(done)

    def mark_committed(self, run_id: str) -> None:
        done = self.load()
        for entry in done.values():
            if entry.get("run_id") == run_id:
                entry["status"] = "committed"
        self._save(done)

    def _settle(self, done: dict[str, dict]) -> dict[str, dict]:
        """Pending entries become committed if their output was published by that run, else go."""
        settled = {}
        for path, entry in done.items():
            if entry.get("status") == "pending":
                manifest = read_json(pafs.LocalFileSystem(), posixpath.join(entry["output"], MANIFEST))
                published = os.path.exists(os.path.join(entry["output"], SUCCESS)) \
                    and manifest.get("run_id") == entry.get("run_id")
                if not published:
                    if entry.get("previous"):
                        settled[path] = entry["previous"]
                    continue
                entry = {**entry, "status": "committed", "previous": None}
            settled[path] = entry
        if settled != done:
            self._save(settled)
        return settled

    def _save(self, done: dict[str, dict]) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_bytes(pafs.LocalFileSystem(), self.path, json.dumps({"files": done}, indent=1).encode())
