"""What both backends share: rows in, results out. Prompts are built and tokenized here, long
inputs fitted, n sample copies seeded, chunk outputs merged and guided outputs checked; a backend
only turns units (token ids plus a seed) into texts. Results come back in row order."""

from __future__ import annotations

from typing import Any

from jobs.engine.config import EngineConfig, Generated, RowResult, Unit
from jobs.engine.guided import Guided
from jobs.engine.long_inputs import COUNTERS, LongInputs
from jobs.engine.prompting import Prompter
from jobs.engine.sampling import row_seed
from jobs.errors import RowError

# Merging chunk summaries can itself overflow; past this many rounds the last round is truncated.
_MAX_MERGE_ROUNDS = 4


class RowEngine:
    """Base of the backends. Subclasses load a model, call `_setup_rows`, and implement `generate_units`."""

    name = "engine"
    decoding = ""

    def _setup_rows(self, config: EngineConfig, tokenizer, model_config, is_seq2seq: bool,
                    limit: int | None) -> None:
        self.config, self.tokenizer, self.is_seq2seq = config, tokenizer, is_seq2seq
        self.stats: dict[str, float] = {}
        self.prompter = Prompter(config, tokenizer, model_config, is_seq2seq)
        self.long_inputs = LongInputs(self.prompter, limit, config.cut_field, is_seq2seq)
        self.guided = Guided.model_validate(config.guided) if config.guided else None

    # -- the one interface the stages use ---------------------------------------------------------

    def run(self, rows: list[dict[str, Any]], row_ids: list[str] | None = None, run_seed: int = 0,
            stage_index: int = 0) -> list[RowResult]:
        """Generate for each row (a dict of the template's fields); results come back in row order.
        Sampling seeds derive from (run_seed, stage_index, row id, copy)."""
        results = [RowResult() for _ in rows]
        parts_of: dict[int, list[list[int]]] = {}
        for i, ids in enumerate(self.encode([self.prompt_text(row) for row in rows]) if rows else []):
            if not self.long_inputs.too_long(ids):
                parts_of[i] = [ids]
                continue
            if self.config.long_input in COUNTERS:
                self._count(COUNTERS[self.config.long_input])
            try:
                parts_of[i] = self.long_inputs.fit(rows[i], ids, self.config.long_input)
            except RowError as exc:
                results[i].error = (exc.kind, str(exc))
        units = []
        for i, parts in parts_of.items():
            row_id = row_ids[i] if row_ids else str(i)
            for copy in range(self.config.n):  # copy-major, parts in order within a copy
                seed = row_seed(run_seed, stage_index, row_id, copy)
                units.extend(Unit(i, ids, seed) for ids in parts)
        outputs = iter(self._generate_counted(units, results))
        for i, parts in parts_of.items():
            copies = [[next(outputs) for _ in parts] for _ in range(self.config.n)]
            failed = next((o for c in copies for o in c if isinstance(o, RowError)), None)
            if failed is not None:
                results[i].error = (failed.kind, str(failed))
            else:
                results[i].texts = [_join(c) for c in copies]
        if self.config.chunk_merge == "summarize":
            self._merge_summaries(rows, [i for i, p in parts_of.items() if len(p) > 1 and not results[i].error],
                                  results)
        if self.guided is not None:
            self._check_guided(results)
        return results

    def take_stats(self) -> dict[str, float]:
        stats, self.stats = self.stats, {}
        return stats

    def info(self) -> dict[str, str]:
        """What ran, for the manifest: the engine, its version and settings."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the engine holds beyond memory (the vLLM backend's processes)."""

    # -- for tests and benchmarks -----------------------------------------------------------------

    def prompt_text(self, fields: dict[str, Any]) -> str:
        return self.prompter.prompt_text(fields)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return self.prompter.encode(prompts)

    @property
    def max_input_tokens(self) -> int | None:
        return self.long_inputs.limit

    @property
    def prefix(self) -> str:
        return self.prompter.prefix

    # -- backends ---------------------------------------------------------------------------------

    def generate_units(self, units: list[Unit]) -> list[Generated | RowError]:
        """Each unit's generated text (or the row error it failed with), in the units' order."""
        raise NotImplementedError

    def _generate_counted(self, units: list[Unit], results: list[RowResult]) -> list[str | RowError]:
        outputs = self.generate_units(units) if units else []
        texts: list[str | RowError] = []
        for unit, out in zip(units, outputs):
            results[unit.row].tokens_in += len(unit.ids)
            if isinstance(out, Generated):
                results[unit.row].tokens_out += out.tokens
                texts.append(out.text)
            else:
                texts.append(out)
        return texts

    def _merge_summaries(self, rows: list[dict[str, Any]], pending: list[int], results: list[RowResult]) -> None:
        """Chunked rows: summarize the joined summaries of their parts, chunking again while they
        still do not fit (the last round truncates, so this always ends)."""
        cut = self.config.cut_field
        for round_ in range(_MAX_MERGE_ROUNDS):
            if not pending:
                return
            self._count("merge_rounds")
            mode = "truncate" if round_ == _MAX_MERGE_ROUNDS - 1 else "chunk"
            parts_of = {}
            for i in pending:
                fields = {**rows[i], cut: results[i].texts[0]}
                ids = self.encode([self.prompt_text(fields)])[0]
                try:
                    parts_of[i] = self.long_inputs.fit(fields, ids, mode) if self.long_inputs.too_long(ids) else [ids]
                except RowError as exc:
                    results[i].error = (exc.kind, str(exc))
            units = [Unit(i, ids) for i, parts in parts_of.items() for ids in parts]
            outputs = iter(self._generate_counted(units, results))
            pending = []
            for i, parts in parts_of.items():
                outs = [next(outputs) for _ in parts]
                failed = next((o for o in outs if isinstance(o, RowError)), None)
                if failed is not None:
                    results[i].error = (failed.kind, str(failed))
                    continue
                results[i].texts = [_join(outs)]
                if len(parts) > 1:
                    pending.append(i)

    def _check_guided(self, results: list[RowResult]) -> None:
        for result in results:
            if result.error:
                continue
            problem = next((p for p in map(self.guided.problem, result.texts) if p), None)
            if problem:
                self._count("guided_invalid")
                result.error, result.texts = ("guided_invalid", problem), []

    def _count(self, key: str, value: float = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + value


def _join(texts: list[str]) -> str:
    return " ".join(t for t in texts if t)
