"""The vLLM backend for causal LMs: continuous batching and a paged KV cache. Prompts arrive as
token ids already fitted to the context (so one over-long prompt cannot fail a whole call), each
request carries its row's seed, and guided output uses vLLM's structured outputs.

Failure handling: a call that raises is retried request by request, so only the request that
fails goes to the dead letter. An engine that dies exits the actor, which Ray restarts and whose
batch it retries (a few times at most); out-of-memory fails the stage with one line, and so does
an engine that stops making progress, after the actor's restart."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from jobs.engine.config import EngineConfig, Generated, Unit
from jobs.engine.loading import input_limit
from jobs.engine.rows import RowEngine
from jobs.engine.selection import vllm_env_defaults
from jobs.errors import RowError, StageFailed

# Requests per `generate` call: enough to keep continuous batching full, few enough that progress is seen.
_CALL_UNITS = 1024
_MAX_ENGINE_DEATHS = 3


class VllmEngine(RowEngine):
    name = "vllm"
    decoding = "vllm continuous batching"

    def __init__(self, config: EngineConfig):
        check_engine_history(config.actor_id)
        vllm_env_defaults()
        if config.batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        from transformers import AutoConfig, AutoTokenizer
        from vllm import LLM
        from vllm.platforms import current_platform

        common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
        model_config = AutoConfig.from_pretrained(config.model, **common)
        tokenizer = AutoTokenizer.from_pretrained(config.model, **common)
        on_cpu = current_platform.is_cpu()
        dtype = ("float32" if on_cpu else "auto") if config.dtype == "auto" else config.dtype
        kwargs = {"enforce_eager": on_cpu, **config.engine_kwargs}  # eager: no ~40 s compile on CPU
        if "structured_outputs_config" not in kwargs:
            # Compact JSON: with free whitespace a weak model can pad until max_new_tokens. llguidance
            # covers the most of JSON Schema among the backends that can turn whitespace off.
            from vllm.config import StructuredOutputsConfig

            kwargs["structured_outputs_config"] = StructuredOutputsConfig(backend="guidance",
                                                                          disable_any_whitespace=True)
        self.llm = LLM(model=config.model, tokenizer_revision=config.revision, dtype=dtype, seed=0, **common,
                       **kwargs)
        context = self.llm.llm_engine.model_config.max_model_len
        limit = input_limit(tokenizer, model_config, is_seq2seq=False, max_new_tokens=config.max_new_tokens,
                            max_input_tokens=config.max_input_tokens, model=config.model, context_length=context)
        self._setup_rows(config, tokenizer, model_config, False, limit)
        self.timeout_s = config.engine_timeout_s
        self._last_progress: float | None = None  # set while a call is in flight
        threading.Thread(target=self._watch, daemon=True).start()

    def info(self) -> dict[str, str]:
        import vllm

        invariant = ("yes (VLLM_BATCH_INVARIANT)" if self.config.batch_invariant else
                     "no: continuous batching may change greedy output at rounding level with the rows a "
                     "request shares a step with; set batch_invariant: true")
        return {"engine": self.name, "engine_version": vllm.__version__,
                "engine_kwargs": json.dumps(self.config.engine_kwargs, sort_keys=True), "decoding": self.decoding,
                "batch_invariant": invariant}

    def close(self) -> None:
        """Stop the engine's processes now rather than at exit."""
        self.llm.llm_engine.engine_core.shutdown()

    def generate_units(self, units: list[Unit]) -> list[Generated | RowError]:
        out: list[Generated | RowError] = []
        for start in range(0, len(units), _CALL_UNITS):
            out.extend(self._call(units[start:start + _CALL_UNITS]))
        return out

    def _call(self, units: list[Unit]) -> list[Generated | RowError]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=u.ids) for u in units]
        params = [self._sampling(u) for u in units]
        started = time.perf_counter()
        try:
            outputs = self._generate(prompts, params)
        except Exception as exc:
            self._survive(exc)
            if len(units) == 1:
                return [RowError("engine_error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")]
            return [result for unit in units for result in self._call([unit])]
        self._count("generate_seconds", time.perf_counter() - started)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            results.append(Generated(completion.text.strip(), len(completion.token_ids)))
        self._count("tokens_in", sum(len(u.ids) for u in units))
        self._count("tokens_out", sum(r.tokens for r in results))
        self._count("batches")
        return results

    def _sampling(self, unit: Unit):
        from vllm import SamplingParams

        cfg = self.config
        sampled = cfg.temperature > 0
        return SamplingParams(
            n=1, max_tokens=cfg.max_new_tokens, min_tokens=cfg.min_new_tokens, temperature=cfg.temperature,
            top_p=cfg.top_p if sampled else 1.0, top_k=cfg.top_k if sampled else 0,
            seed=unit.seed if sampled else None, repetition_penalty=cfg.repetition_penalty or 1.0,
            skip_special_tokens=True,
            structured_outputs=self.guided.vllm_params() if self.guided is not None else None)

    def _generate(self, prompts, params):
        self._last_progress = time.monotonic()
        try:
            return self.llm.generate(prompts, params, use_tqdm=lambda *a, **k: _Heartbeat(self, *a, **k))
        finally:
            self._last_progress = None

    # -- failures ---------------------------------------------------------------------------------

    def _survive(self, exc: Exception) -> None:
        """Return if `exc` concerns the requests of this call only; otherwise fail or restart."""
        from vllm.v1.engine.exceptions import EngineDeadError

        text = str(exc)
        if "out of memory" in text.lower():
            raise StageFailed(f"vLLM ran out of memory: {text.splitlines()[0][:200]}; lower max_model_len, "
                              f"gpu_memory_utilization or max_num_seqs in engine_kwargs") from None
        if isinstance(exc, EngineDeadError):
            _lose_engine(self.config.actor_id, f"the vLLM engine died ({type(exc).__name__})")

    def _watch(self) -> None:
        """vLLM's own client can wait forever on an engine that died or hung, so this thread checks:
        an engine process that is gone means the engine died; a call in which no request finished
        for `timeout_s` means it hung. Either way its processes are stopped and the engine is lost."""
        import psutil

        engine_processes = [p for p in psutil.Process().children(recursive=True)
                            if "VLLM" in " ".join([p.name(), *p.cmdline()])]  # EngineCore, Worker
        while True:
            time.sleep(1.0)
            last = self._last_progress
            if last is None:  # between calls (and at shutdown) the engine's processes may come and go
                continue
            gone = [p.pid for p in engine_processes if not p.is_running() or p.status() == psutil.STATUS_ZOMBIE]
            hung = time.monotonic() - last > self.timeout_s
            if gone or hung:
                for child in psutil.Process().children(recursive=True):
                    child.kill()
                if hung:
                    _lose_engine(self.config.actor_id, f"the vLLM engine made no progress for {self.timeout_s:.0f} s "
                                 f"(hung)", hung=True, blocked=True)
                _lose_engine(self.config.actor_id, f"the vLLM engine died (process {gone[0]} exited)", blocked=True)


class _Heartbeat:
    """The progress bar vLLM updates as requests finish, used only to see that the engine moves."""

    def __init__(self, engine: VllmEngine, iterable=None, *args, **kwargs):
        self.engine, self.iterable, self.n, self.postfix, self.started = engine, iterable, 0, None, time.monotonic()

    def __iter__(self):  # vLLM also wraps the prompts it renders
        return iter(self.iterable if self.iterable is not None else ())

    @property
    def format_dict(self) -> dict:
        return {"elapsed": max(time.monotonic() - self.started, 1e-6)}

    def update(self, n: int = 1) -> None:
        self.n += n
        self.engine._last_progress = time.monotonic()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _lose_engine(actor_id: str | None, what: str, hung: bool = False, blocked: bool = False) -> None:
    """The engine is gone. Inside a Ray actor, exit so that Ray restarts the actor and retries its
    batch; a hang, or a third death on this node, makes the restarted actor fail the stage in one
    line instead (see `check_engine_history`). Outside an actor, fail: by raising, or, when the
    caller is `blocked` inside vLLM where nothing can raise, by exiting with the message."""
    if actor_id is None:
        if blocked:
            print(f"error: {what}; stopped", file=sys.stderr, flush=True)
            os._exit(1)
        raise StageFailed(f"{what}; nothing was published")
    history = _history_file(actor_id)
    deaths = json.loads(history.read_text())["deaths"] + 1 if history.exists() else 1
    history.write_text(json.dumps({"deaths": deaths, "last": what, "fatal": hung or deaths >= _MAX_ENGINE_DEATHS}))
    print(f"raybatch: {what}; restarting this actor to retry its batch", file=sys.stderr, flush=True)
    os._exit(1)


def check_engine_history(actor_id: str | None) -> None:
    """In a restarted actor: fail the stage if its engine hung, or died too often, before."""
    history = _history_file(actor_id) if actor_id else None
    if history is not None and history.exists():
        record = json.loads(history.read_text())
        if record["fatal"]:
            raise StageFailed(f"{record['last']}, {record['deaths']} time(s); nothing was published")


def _history_file(actor_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"raybatch-vllm-engine-{actor_id}.json"
