"""A job's stages split at the stages that decide from the whole input (dedup).

Ray Data runs each segment as one pass. A segment that ends at a whole-input stage runs that
stage's `keys` half last and writes every row to staging's work folder; the driver then lets the
stage `decide` over the keys of all rows, and the next segment reads the work parts back and
starts with the stage's `__call__`, which applies the decisions. Work parts and decisions stay in
staging until publish, so a rerun after a kill redoes only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.stages.base import Stage


@dataclass(frozen=True)
class Step:
    stage: int  # index in the spec's stages
    keys: bool = False  # the stage's `keys` half instead of its call


@dataclass(frozen=True)
class Segment:
    number: int
    steps: tuple[Step, ...]
    reads_work: bool  # reads the previous segment's work parts, not the input
    decides: int | None  # the whole-input stage whose keys this segment ends with (None: the last segment)

    @property
    def final(self) -> bool:
        return self.decides is None


def split(stage_classes: list[type[Stage]]) -> list[Segment]:
    """The segments of a job: one when no stage needs the whole input."""
    segments, steps = [], []
    for index, cls in enumerate(stage_classes):
        if cls.whole_input:
            steps.append(Step(index, keys=True))
            segments.append(Segment(len(segments), tuple(steps), bool(segments), decides=index))
            steps = []
        steps.append(Step(index))
    segments.append(Segment(len(segments), tuple(steps), bool(segments), decides=None))
    return segments
