"""The one table of stage names. A new stage is one module plus one line here.

Entries are "module:Class" strings imported on first use, so `--help` and `validate` stay fast and
`jobs/` reaches `augment/` only through this table.
"""

from __future__ import annotations

import importlib

from jobs.errors import SpecError

STAGES: dict[str, str] = {
    "clean": "jobs.stages.clean:CleanStage",
    "langid": "jobs.stages.langid:LangIdStage",
    "redact": "jobs.stages.redact:RedactStage",
    "dedup": "jobs.stages.dedup:DedupStage",
    "generate": "jobs.stages.generate:GenerateStage",
    "translate": "jobs.stages.translate:TranslateStage",
    "summarize": "jobs.stages.summarize:SummarizeStage",
    "augment": "augment.stage:AugmentStage",
    "finetune_export": "jobs.export:FinetuneExportStage",
}


def known_stages() -> list[str]:
    return sorted(STAGES)


def stage_class(name: str, where: str = "use"):
    """Import and return the stage class registered as `name`, or named as "package.module:Class"
    (a user's own stage). Unknown names list the known ones."""
    target = name if ":" in str(name) else STAGES.get(name)
    if target is None:
        import difflib

        close = difflib.get_close_matches(str(name), known_stages(), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SpecError(f"{where}: unknown stage {name!r}; {hint}known stages: {', '.join(known_stages())} "
                        f"(or 'package.module:Class' for your own)")
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{where}: cannot import stage {target!r}: {exc}") from None
    from jobs.stages.base import Stage

    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise SpecError(f"{where}: {target!r} is not a Stage subclass")
    return cls
