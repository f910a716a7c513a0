"""The one table of stage names. A new stage is one module plus one line here.

Entries are "module:Class" strings imported on first use, so `--help` and `validate` stay fast and
`jobs/` reaches `augment/` only through this table.
"""

from __future__ import annotations

import importlib

from jobs.errors import SpecError

STAGES: dict[str, str] = {
    "clean": "jobs.stages.clean:CleanStage",
}


def known_stages() -> list[str]:
    return sorted(STAGES)


def stage_class(name: str, where: str = "use"):
    """Import and return the stage class registered as `name`; unknown names list the known ones."""
    try:
        target = STAGES[name]
    except KeyError:
        raise SpecError(f"{where}: unknown stage {name!r}; known stages: {', '.join(known_stages())}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
