"""Model loading and batched generation with torch/transformers; no Ray here.

One `Engine` per actor: it loads the model once, then turns rows into outputs in length-sorted
batches bounded by rows and tokens (padding is where a plain loop wastes its time), restores row
order, backs off on CUDA out-of-memory, cuts or chunks over-long inputs, and samples with a seed per
row so outputs never depend on batch composition. Heavy imports happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.errors import RowError, SpecError

# Tokenizers report this (or larger) when a model declares no input limit.
_NO_LIMIT = 1_000_000
# Merging chunk summaries can itself overflow; past this many rounds the last round is truncated.
_MAX_MERGE_ROUNDS = 4
# Encoder slices (see encoder_slices): big enough for efficient matmuls, tight enough to pad little.
_SLICE_MIN_TOKENS, _SLICE_MAX_TOKENS, _SLICE_MIN_EFFICIENCY = 1024, 8192, 0.95
_LONG_INPUT_COUNTERS = {"truncate": "inputs_truncated", "chunk": "inputs_chunked"}


@dataclass
class EngineConfig:
    """What the engine loads and how it generates; field names match the stages' spec keys."""

    model: str
    revision: str | None = None
    dtype: str = "auto"  # auto: bf16 (fp16 without bf16 support) on GPU, fp32 on CPU
    device: str = "auto"  # auto: cuda when torch sees one, else cpu
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Prompting: `template` fills row fields; `cut_field` is the field truncation and chunking shorten.
    template: str = "{text}"
    cut_field: str = "text"
    prefix: str | None = None  # None: the model's declared task prefix, if any
    task: str | None = None  # key in config.task_specific_params ("summarization", "translation_en_to_de")
    chat_template: bool | None = None  # None: use the tokenizer's chat template when it has one
    system_prompt: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    # Generation.
    max_new_tokens: int = 64
    min_new_tokens: int = 0
    num_beams: int | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    length_penalty: float | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    # Batching and long inputs.
    batch_size: int = 128
    max_batch_tokens: int | None = None
    max_input_tokens: int | None = None
    long_input: str = "truncate"  # truncate | chunk | fail
    chunk_merge: str = "join"  # join (translate) | summarize (summarize the parts' summaries)


@dataclass
class RowResult:
    """One row's outcome: `texts` holds n outputs, or `error` is (error_type, message)."""

    texts: list[str] = field(default_factory=list)
    error: tuple[str, str] | None = None


@dataclass
class _Unit:
    """One model input: a row's prompt (or one chunk of it), one sample copy."""

    row: int
    ids: list[int]
    seed: int = 0


# ---- pure helpers (tested without a model) --------------------------------------------------


def plan_batches(lengths: list[int], batch_size: int, max_batch_tokens: int | None,
                 extra_tokens: int = 0) -> list[list[int]]:
    """Group indices into batches of similar length: sorted by length, at most `batch_size` rows and
    rows × (longest + `extra_tokens`) ≤ `max_batch_tokens`. A row over the budget alone gets its own
    batch. Longest batches come first, so memory trouble shows at the start of a block."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        rows = len(current) + 1
        cost = rows * (lengths[index] + extra_tokens)  # sorted: this row is the longest so far
        if current and (rows > batch_size or (max_batch_tokens and cost > max_batch_tokens)):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches[::-1]


def encoder_slices(lengths: list[int], min_tokens: int = _SLICE_MIN_TOKENS, max_tokens: int = _SLICE_MAX_TOKENS,
                   min_efficiency: float = _SLICE_MIN_EFFICIENCY) -> list[list[int]]:
    """Split one decode batch into encoder calls over length-sorted neighbours. A slice grows while
    it stays under `max_tokens` padded tokens and either is still small (under `min_tokens`, where
    per-call overhead outweighs padding) or keeps real/padded tokens at or above `min_efficiency`."""
    slices: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        length = lengths[index]
        padded = (len(current) + 1) * length  # sorted: this row sets the slice's width
        small = len(current) * (lengths[current[-1]] if current else 0) < min_tokens
        if current and (padded > max_tokens or not (small or (real + length) / padded >= min_efficiency)):
            slices.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        slices.append(current)
    return slices


def row_seed(run_seed: int, stage_index: int, row_id: str, copy: int) -> int:
    """A row's sampling seed from the job seed, the stage, the row id and the sample copy: the same
    row samples the same text whatever batch, block or worker it lands in."""
    digest = hashlib.sha256(f"{run_seed}\x1f{stage_index}\x1f{row_id}\x1f{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def template_fields(template: str) -> list[str]:
    """Field names in a `{column}` template; raises ValueError on anything but plain names."""
    names: list[str] = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"prompt field {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} must be a plain column name like {{text}}")
        if name not in names:
            names.append(name)
    return names


def render(template: str, fields: dict[str, Any]) -> str:
    """Fill a template with row values; values are inserted as-is (braces in them stay text)."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(fields[name]))
    return "".join(out)


def cut_points(offsets: list[tuple[int, int]], text: str, keep: int) -> list[int]:
    """Character positions that split `text` into pieces of at most `keep` tokens, cut at token
    starts and moved back to a space when one is near, so words stay whole."""
    points = []
    start_token = 0
    while len(offsets) - start_token > keep:
        end_token = start_token + keep
        cut = offsets[end_token][0]
        floor = offsets[start_token][0] + (cut - offsets[start_token][0]) // 2
        space = text.rfind(" ", floor, cut + 1)
        if space > floor:
            cut = space
            while end_token > start_token + 1 and offsets[end_token - 1][0] >= cut:
                end_token -= 1
        points.append(cut)
        start_token = end_token
    return points


# ---- loading ------------------------------------------------------------------------------------


def local_model_dir(name_or_path: str, revision: str | None = None) -> Path | None:
    """The folder holding the model's files: a local path, or its snapshot in the HF cache (None if
    neither is on this machine). Cheap: no torch, no network."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if looks_like_path(name_or_path):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name_or_path, "config.json", revision=revision)
    except Exception:  # an invalid repo id is "not cached"; preflight reports it
        return None
    return Path(found).parent if isinstance(found, str) else None


def looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or name.count("/") > 1


def check_model_files(name_or_path: str, revision: str | None, trust_remote_code: bool,
                      allow_pickle: bool) -> dict | None:
    """Fail fast (SpecError) on a model that is missing or would load unsafe code or weights;
    returns its config.json when it is on this machine."""
    folder = local_model_dir(name_or_path, revision)
    if folder is None:
        if looks_like_path(name_or_path):
            raise SpecError(f"model: {name_or_path}: no such folder")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise SpecError(f"model: {name_or_path!r} is not a local folder and not in the Hugging Face cache, "
                            f"and HF_HUB_OFFLINE=1; download it first or give a local path")
        return None  # will be downloaded from the hub when the stage loads
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SpecError(f"model: {name_or_path}: no config.json in {folder}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("auto_map") and not trust_remote_code:
        raise SpecError(f"model: {name_or_path}: needs code from the model repo (auto_map); "
                        f"set trust_remote_code: true only if you trust it")
    names = {p.name for p in folder.iterdir()}
    has_safetensors = any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names)
    has_pickle = any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    if not has_safetensors and snapshot_is_complete(folder):
        if has_pickle and not allow_pickle:
            raise SpecError(f"model: {name_or_path}: only pickle weights (*.bin), which can run code when loaded; "
                            f"set allow_pickle: true if you trust them")
        if not has_pickle:
            raise SpecError(f"model: {name_or_path}: no weights (*.safetensors) in {folder}")
    return config


def snapshot_is_complete(folder: Path) -> bool:
    """An HF cache snapshot may hold only config.json until weights are fetched; a local folder is complete."""
    return "snapshots" not in folder.parts or os.environ.get("HF_HUB_OFFLINE") == "1"


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class Engine:
    """A loaded model and tokenizer plus the batching loop; counters accumulate in `stats`."""

    def __init__(self, config: EngineConfig):
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        self.config = config
        self.stats: dict[str, float] = {}
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
        self.dtype = _torch_dtype(config.dtype, self.device)
        common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
        model_config = AutoConfig.from_pretrained(config.model, **common)
        self.is_seq2seq = bool(getattr(model_config, "is_encoder_decoder", False))
        self.tokenizer = AutoTokenizer.from_pretrained(config.model, **common)
        auto = AutoModelForSeq2SeqLM if self.is_seq2seq else AutoModelForCausalLM
        # transformers renamed torch_dtype to dtype in 4.56; support both sides of that.
        dtype_key = "dtype" if _version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
        self.model = auto.from_pretrained(config.model, config=model_config, **common, **{dtype_key: self.dtype},
                                          use_safetensors=None if config.allow_pickle else True)
        self.model.to(self.device).eval()
        self._setup_tokens()
        self._setup_prompting(model_config)
        self.max_input_tokens = self._input_limit(model_config)
        self.generation_config = self._generation_config()
        self.decoding = self._choose_decoding()
        self._token_cap: int | None = None  # learned from out-of-memory errors

    # -- setup -----------------------------------------------------------------------------------

    def _setup_tokens(self) -> None:
        tok = self.tokenizer
        if tok.pad_token_id is None:
            # Decoder-only models often ship without a pad token; padded positions are masked anyway.
            tok.pad_token = tok.eos_token
        # Left padding keeps each prompt's last token next to the first generated one.
        tok.padding_side = "right" if self.is_seq2seq else "left"
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = tok.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def _setup_prompting(self, model_config) -> None:
        cfg = self.config
        self.template = cfg.template
        self.forced_bos_token_id, target_prefix = None, ""
        if cfg.target_lang:
            self.forced_bos_token_id, target_prefix = self._language_setup(model_config)
        # No hidden prompt: a task prefix comes from the spec or from the model's own config only.
        task_params = getattr(model_config, "task_specific_params", None) or {}
        declared = (task_params.get(cfg.task) or {}).get("prefix") if cfg.task else None
        self.prefix = (cfg.prefix if cfg.prefix is not None else (declared or "")) + target_prefix
        self.use_chat = False
        if not self.is_seq2seq and cfg.chat_template is not False:
            self.use_chat = bool(getattr(self.tokenizer, "chat_template", None))
            if cfg.chat_template and not self.use_chat:
                raise SpecError(f"chat_template: true but {cfg.model}'s tokenizer has no chat template")

    def _language_setup(self, model_config) -> tuple[int | None, str]:
        """Target language: NLLB/M2M force the language token as the first generated token; multi-target
        Marian models read a `>>xx<<` token at the start of the input; others translate one fixed pair."""
        cfg, tok = self.config, self.tokenizer
        vocab = tok.get_vocab()
        model_type = getattr(model_config, "model_type", "")
        if cfg.source_lang and hasattr(tok, "src_lang"):
            tok.src_lang = cfg.source_lang
        # M2M writes codes as __de__; NLLB's codes (deu_Latn) are added special tokens, not BPE pieces.
        added = set(getattr(tok, "added_tokens_encoder", {})) | set(tok.all_special_tokens)
        for token in (f"__{cfg.target_lang}__", cfg.target_lang):
            if token in vocab and (token in added or token.startswith("__")):
                return vocab[token], ""
        if model_type in ("m2m_100", "nllb_moe", "nllb-moe"):
            codes = [t for t in vocab if t.startswith("__") and t.endswith("__")][:5]
            raise SpecError(f"target_lang: {cfg.target_lang!r} is not a language code of {cfg.model}"
                            + (f" (e.g. {', '.join(c.strip('_') for c in codes)})" if codes else ""))
        marian = f">>{cfg.target_lang}<<"
        return None, (f"{marian} " if marian in vocab else "")

    def _input_limit(self, model_config) -> int | None:
        """Longest input the model takes: the spec's bound, else the tokenizer's or the position table's.
        A decoder-only model must also fit the new tokens into its positions."""
        declared = self.tokenizer.model_max_length
        limit = declared if declared and declared < _NO_LIMIT else None
        positions = getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", None)
        if limit is None and positions:
            limit = positions
        if not self.is_seq2seq and limit is not None:
            limit = min(limit, positions or limit) - self.config.max_new_tokens
            if limit <= 0:
                raise SpecError(f"max_new_tokens: {self.config.max_new_tokens} leaves no room for the prompt in "
                                f"{self.config.model}'s {positions} positions")
        if self.config.max_input_tokens:
            limit = min(limit, self.config.max_input_tokens) if limit else self.config.max_input_tokens
        return limit

    def _generation_config(self):
        """The model's own generation defaults with the spec's settings on top. Sampling is always off
        here: `_row_picker` draws each row's token from the row's own generator instead."""
        import copy

        cfg = self.config
        gen = copy.deepcopy(self.model.generation_config)
        gen.max_length = None
        gen.max_new_tokens = cfg.max_new_tokens
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if self.is_seq2seq and positions and cfg.max_new_tokens >= positions:
            # A decoder with a position table cannot go past it (the start token takes one position).
            gen.max_new_tokens = positions - 1
        gen.min_new_tokens = cfg.min_new_tokens or None
        gen.do_sample = False
        gen.temperature, gen.top_p, gen.top_k = None, None, None
        for key in ("num_beams", "repetition_penalty", "no_repeat_ngram_size", "length_penalty"):
            value = getattr(cfg, key)
            if value is not None:
                setattr(gen, key, value)
        if cfg.temperature > 0:
            gen.num_beams = 1
        gen.num_return_sequences = 1
        gen.pad_token_id = self.tokenizer.pad_token_id
        if self.forced_bos_token_id is not None:
            gen.forced_bos_token_id = self.forced_bos_token_id
        return gen

    def _choose_decoding(self) -> str:
        """'lean' (the loop in jobs.decode) where it gives what `generate` gives, else why not."""
        from jobs.decode import unsupported_settings

        if not self.is_seq2seq:
            return "generate"
        gen = self.generation_config
        start = gen.decoder_start_token_id
        if start is None:
            start = getattr(self.model.config, "decoder_start_token_id", None)
        if isinstance(start, (list, tuple)) or start is None:
            return "generate (no single decoder start token)"
        self._decoder_start_id = int(start)
        forced_eos = gen.forced_eos_token_id
        if isinstance(forced_eos, (list, tuple)) and len(forced_eos) > 1:
            return "generate (several forced EOS tokens)"
        unsupported = unsupported_settings(gen)
        return f"generate ({', '.join(unsupported)})" if unsupported else "lean"

    @property
    def lean_decoding(self) -> bool:
        return self.decoding == "lean"

    # -- encoding --------------------------------------------------------------------------------

    def prompt_text(self, fields: dict[str, Any]) -> str:
        """The text the model sees for a row, before tokenization (chat template applied)."""
        text = self.prefix + render(self.template, fields)
        if not self.use_chat:
            return text
        messages = [{"role": "user", "content": text}]
        if self.config.system_prompt:
            messages.insert(0, {"role": "system", "content": self.config.system_prompt})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        # A chat template already holds the special tokens the model expects.
        return self.tokenizer(prompts, add_special_tokens=not self.use_chat)["input_ids"]

    def _fit(self, fields: dict[str, Any], ids: list[int], mode: str) -> list[list[int]]:
        """Shorten an over-long row: truncate or chunk its `cut_field` (mode), or raise RowError."""
        limit = self.max_input_tokens
        if mode == "fail":
            raise RowError("input_too_long", f"{len(ids)} input tokens; the limit is {limit} (long_input: fail)")
        cut = self.config.cut_field
        text = str(fields[cut])
        overhead = len(ids) - len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if limit - overhead <= 0:
            raise RowError("input_too_long", f"the prompt without {cut!r} already has {overhead} tokens; "
                           f"the limit is {limit}")
        truncate = mode == "truncate"
        queue = self._split(text, limit - overhead, first_only=truncate)
        out = []
        while queue:
            part = queue.pop(0)
            part_ids = self.encode([self.prompt_text({**fields, cut: part})])[0]
            if len(part_ids) > limit:
                # A cut can tokenize differently in context: split this piece smaller (its text is kept)
                # or, for truncate, shorten it; each retry is strictly shorter, so this ends.
                keep = len(self.tokenizer(part, add_special_tokens=False)["input_ids"]) - (len(part_ids) - limit)
                smaller = self._split(part, keep, first_only=truncate) if keep > 0 else [part]
                if smaller != [part]:
                    queue[:0] = smaller
                    continue
                part_ids = self._hard_truncate(part_ids)
            out.append(part_ids)
        return out

    def _split(self, text: str, keep: int, first_only: bool = False) -> list[str]:
        """`text` in pieces of at most `keep` tokens, cut between words; only the first if asked."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        bounds = [0, *cut_points(offsets, text, keep), len(text)]
        pieces = [text[a:b].strip() for a, b in zip(bounds, bounds[1:])]
        pieces = [p for p in pieces if p]
        return pieces[:1] if first_only else pieces

    def _hard_truncate(self, ids: list[int]) -> list[int]:
        limit = self.max_input_tokens
        if self.is_seq2seq:  # keep the end-of-sequence token the encoder was trained with
            return ids[: limit - 1] + ids[-1:]
        return ids[-limit:]  # keep the chat template's assistant header, next to generation

    def _too_long(self, ids: list[int]) -> bool:
        return bool(self.max_input_tokens) and len(ids) > self.max_input_tokens

    # -- generation ------------------------------------------------------------------------------

    def run(self, rows: list[dict[str, Any]], row_ids: list[str] | None = None, run_seed: int = 0,
            stage_index: int = 0) -> list[RowResult]:
        """Generate for each row (a dict of the template's fields); results come back in row order.
        Sampling seeds derive from (run_seed, stage_index, row id, copy)."""
        results = [RowResult() for _ in rows]
        parts_of: dict[int, list[list[int]]] = {}
        for i, ids in enumerate(self.encode([self.prompt_text(row) for row in rows]) if rows else []):
            if not self._too_long(ids):
                parts_of[i] = [ids]
                continue
            if self.config.long_input in _LONG_INPUT_COUNTERS:
                self._count(_LONG_INPUT_COUNTERS[self.config.long_input])
            try:
                parts_of[i] = self._fit(rows[i], ids, self.config.long_input)
            except RowError as exc:
                results[i].error = (exc.kind, str(exc))
        units = []
        for i, parts in parts_of.items():
            row_id = row_ids[i] if row_ids else str(i)
            for copy in range(self.config.n):  # copy-major, parts in order within a copy
                seed = row_seed(run_seed, stage_index, row_id, copy)
                units.extend(_Unit(i, ids, seed) for ids in parts)
        outputs = iter(self._generate_units(units))
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
        return results

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
                    parts_of[i] = self._fit(fields, ids, mode) if self._too_long(ids) else [ids]
                except RowError as exc:
                    results[i].error = (exc.kind, str(exc))
            outputs = iter(self._generate_units([_Unit(i, ids) for i, parts in parts_of.items() for ids in parts]))
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

    def _generate_units(self, units: list[_Unit]) -> list[str | RowError]:
        """Generate for all units in length-sorted batches; results in the units' order."""
        if not units:
            return []
        budget = self.config.max_batch_tokens // self._beams() if self.config.max_batch_tokens else None
        batches = plan_batches([len(u.ids) for u in units], self.config.batch_size, budget,
                               extra_tokens=self.config.max_new_tokens)
        out: list[str | RowError | None] = [None] * len(units)
        for batch in batches:
            for index, text in self._run_batch([units[i] for i in batch], batch):
                out[index] = text
        return out  # type: ignore[return-value]

    def _beams(self) -> int:
        return self.generation_config.num_beams or 1

    def _batch_cost(self, units: list[_Unit]) -> int:
        """The token budget's measure: rows × (longest input + new tokens) × beams."""
        return len(units) * (max(len(u.ids) for u in units) + self.config.max_new_tokens) * self._beams()

    def _run_batch(self, units: list[_Unit], index: list[int]):
        """Run one batch; on out-of-memory halve it and retry, down to one unit, which then fails alone."""
        import torch

        if len(units) > 1 and self._token_cap is not None and self._batch_cost(units) > self._token_cap:
            half = len(units) // 2
            return self._run_batch(units[:half], index[:half]) + self._run_batch(units[half:], index[half:])
        try:
            texts = self.generate_batch(units)
        except torch.OutOfMemoryError as exc:
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            self._count("oom_retries")
            self._token_cap = max(1, self._batch_cost(units) // 2)
            if len(units) == 1:
                tokens = len(units[0].ids)
                return [(index[0], RowError("out_of_memory", f"out of memory with this row alone ({tokens} input "
                                            f"tokens + {self.config.max_new_tokens} new): {str(exc)[:200]}"))]
            half = len(units) // 2
            return self._run_batch(units[:half], index[:half]) + self._run_batch(units[half:], index[half:])
        return list(zip(index, texts))

    def generate_batch(self, units: list[_Unit]) -> list[str]:
        """One padded batch through the model; returns the decoded new text of each unit."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        tok = self.tokenizer
        width = max(len(u.ids) for u in units)
        pad = tok.pad_token_id
        input_ids = torch.full((len(units), width), pad, dtype=torch.long)
        mask = torch.zeros((len(units), width), dtype=torch.long)
        for row, unit in enumerate(units):
            span = slice(0, len(unit.ids)) if self.is_seq2seq else slice(width - len(unit.ids), width)
            input_ids[row, span] = torch.tensor(unit.ids)
            mask[row, span] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        seeds = [u.seed for u in units]
        started = time.perf_counter()
        with torch.inference_mode():
            if self.is_seq2seq:
                hidden, slices = self._encode(input_ids, mask)
                if self.lean_decoding:
                    new = self._decode_lean(hidden, mask, slices, seeds)
                else:
                    encoded = BaseModelOutput(last_hidden_state=hidden)
                    new = self._generate(mask, seeds, encoder_outputs=encoded)[:, 1:]  # drop the start token
            else:
                self._count("tokens_in_padded", mask.numel())
                new = self._generate(mask, seeds, input_ids=input_ids)[:, width:]  # drop the prompt
        self._count("generate_seconds", time.perf_counter() - started)
        texts = []
        produced = 0
        for row in (new if isinstance(new, list) else new.tolist()):
            length = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), len(row))
            produced += length
            texts.append(tok.decode(row[:length], skip_special_tokens=True).strip())
        self._count("tokens_in", int(mask.sum()))
        self._count("tokens_out", produced)
        self._count("batches")
        return texts

    def _generate(self, mask, seeds: list[int], **inputs):
        """`model.generate` with the engine's settings; per-row sampling through a logits processor."""
        processors = [_RowSampler(_row_picker(seeds, self.config, self.device))] if self.config.temperature > 0 else None
        out = self.model.generate(**inputs, attention_mask=mask, generation_config=self.generation_config,
                                  logits_processor=processors)
        return out.cpu()

    def _decode_lean(self, hidden, mask, slices: list[list[int]], seeds: list[int]) -> list[list[int]]:
        """The lean loop of `jobs.decode` with the same settings `generate` would apply."""
        import torch

        from jobs.decode import banned_tokens, decode_seq2seq, greedy_chooser

        gen = self.generation_config
        choose = greedy_chooser
        if self.config.temperature > 0:
            picker = _row_picker(seeds, self.config, self.device)
            choose = lambda logits, active, step: picker(logits, active.tolist())  # noqa: E731
        if hidden.dtype != torch.float32:
            # Attending group by group changes half-precision sums at rounding level, enough to flip a
            # greedy pick; one group keeps exactly the arithmetic `generate` does.
            slices = [[row for group in slices for row in group]]
        return decode_seq2seq(self.model, hidden, mask, groups=slices, start_id=self._decoder_start_id,
                              max_new_tokens=gen.max_new_tokens, min_new_tokens=gen.min_new_tokens or 0,
                              eos_ids=self.eos_ids, forced_bos_id=gen.forced_bos_token_id,
                              forced_eos_id=_single_token(gen.forced_eos_token_id),
                              banned=banned_tokens(gen, self.eos_ids),
                              choose=choose)

    def _encode(self, input_ids, mask):
        """Run the encoder over slices of similar length and pad its output to the batch's width; returns
        the padded output and the slices (row lists). The decoder wants many rows per step; the encoder
        wants little padding: slicing gives both."""
        import torch

        lengths = mask.sum(dim=1).tolist()
        encoder = self.model.get_encoder()
        hidden = None
        slices = encoder_slices(lengths)
        for group in slices:
            width = max(lengths[i] for i in group)
            index = torch.tensor(group, device=input_ids.device)
            out = encoder(input_ids=input_ids[index, :width], attention_mask=mask[index, :width]).last_hidden_state
            if hidden is None:
                hidden = out.new_zeros((input_ids.shape[0], input_ids.shape[1], out.shape[-1]))
            hidden[index, :width] = out
            self._count("tokens_in_padded", len(group) * width)
        return hidden, slices

    def _count(self, key: str, value: float = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + value

    def take_stats(self) -> dict[str, float]:
        stats, self.stats = self.stats, {}
        return stats


def _row_picker(seeds: list[int], config: EngineConfig, device: str):
    """Per-row sampling: `pick(scores, rows)` draws the next token of each of `rows` (positions in
    `seeds`) from that row's own generator after temperature, top-k and top-p. Global RNG is never used."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = [TemperatureLogitsWarper(config.temperature)]
    if config.top_k:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def pick(scores, rows: list[int]):
        for warper in warpers:
            scores = warper(None, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        return torch.cat([torch.multinomial(probs[i], 1, generator=generators[row]) for i, row in enumerate(rows)])

    return pick


class _RowSampler:
    """A logits processor for `generate` that leaves only each row's sampled token possible, so that
    greedy selection picks it."""

    def __init__(self, pick):
        self.pick = pick

    def __call__(self, input_ids, scores):
        picks = self.pick(scores, list(range(scores.shape[0])))
        forced = scores.new_full(scores.shape, float("-inf"))
        return forced.scatter_(1, picks[:, None], 0.0)


def _single_token(value) -> int | None:
    """A forced-EOS setting as one token id (configs give an int or a one-element list)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _join(texts: list[str]) -> str:
    return " ".join(t for t in texts if t)


def _version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= wanted
