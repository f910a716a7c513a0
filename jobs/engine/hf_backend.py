"""The transformers backend: `model.generate` (or the lean seq2seq loop of `jobs.decode`) over
length-sorted padded batches, halving a batch on CUDA out-of-memory down to the row that fails
alone. Every model runs here, seq2seq ones included; guided output supports `choice`."""

from __future__ import annotations

import copy
import time

from jobs.engine.batching import encoder_slices, plan_batches
from jobs.engine.config import EngineConfig, Generated, Unit
from jobs.engine.guided import ChoiceConstraint
from jobs.engine.loading import input_limit, torch_dtype, version_at_least
from jobs.engine.rows import RowEngine
from jobs.engine.sampling import RowSampler, row_picker
from jobs.errors import RowError

# engine_kwargs the transformers backend passes to `from_pretrained`.
KWARGS = ("attn_implementation",)


class TransformersEngine(RowEngine):
    """A loaded model and tokenizer plus the batching loop; counters accumulate in `stats`."""

    name = "transformers"

    def __init__(self, config: EngineConfig):
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
        self.dtype = torch_dtype(config.dtype, self.device)
        common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
        model_config = AutoConfig.from_pretrained(config.model, **common)
        is_seq2seq = bool(getattr(model_config, "is_encoder_decoder", False))
        tokenizer = AutoTokenizer.from_pretrained(config.model, **common)
        auto = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
        # transformers renamed torch_dtype to dtype in 4.56; support both sides of that.
        dtype_key = "dtype" if version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
        self.model = auto.from_pretrained(config.model, config=model_config, **common, **{dtype_key: self.dtype},
                                          use_safetensors=None if config.allow_pickle else True,
                                          **config.engine_kwargs)
        self.model.to(self.device).eval()
        limit = input_limit(tokenizer, model_config, is_seq2seq=is_seq2seq, max_new_tokens=config.max_new_tokens,
                            max_input_tokens=config.max_input_tokens, model=config.model)
        self._setup_tokens(tokenizer, is_seq2seq)
        self._setup_rows(config, tokenizer, model_config, is_seq2seq, limit)
        self.generation_config = self._generation_config()
        self.decoding = self._choose_decoding()
        self._token_cap: int | None = None  # learned from out-of-memory errors

    def info(self) -> dict[str, str]:
        import transformers

        return {"engine": self.name, "engine_version": transformers.__version__, "decoding": self.decoding,
                "batch_invariant": "yes: per-row seeds, and batches change only padding, which is masked"}

    # -- setup -----------------------------------------------------------------------------------

    def _setup_tokens(self, tok, is_seq2seq: bool) -> None:
        if tok.pad_token_id is None:
            # Decoder-only models often ship without a pad token; padded positions are masked anyway.
            tok.pad_token = tok.eos_token
        # Left padding keeps each prompt's last token next to the first generated one.
        tok.padding_side = "right" if is_seq2seq else "left"
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = tok.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def _generation_config(self):
        """The model's own generation defaults with the spec's settings on top. Sampling is always off
        here: `row_picker` draws each row's token from the row's own generator instead."""
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
        if self.prompter.forced_bos_token_id is not None:
            gen.forced_bos_token_id = self.prompter.forced_bos_token_id
        return gen

    def _choose_decoding(self) -> str:
        """'lean' (the loop in jobs.decode) where it gives what `generate` gives, else why not."""
        from jobs.decode import unsupported_settings

        if not self.is_seq2seq:
            return "generate"
        if self.guided is not None:
            return "generate (guided)"
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

    # -- generation ------------------------------------------------------------------------------

    def generate_units(self, units: list[Unit]) -> list[Generated | RowError]:
        """Generate for all units in length-sorted batches; results in the units' order."""
        budget = self.config.max_batch_tokens // self._beams() if self.config.max_batch_tokens else None
        batches = plan_batches([len(u.ids) for u in units], self.config.batch_size, budget,
                               extra_tokens=self.config.max_new_tokens)
        out: list[Generated | RowError | None] = [None] * len(units)
        for batch in batches:
            for index, result in self._run_batch([units[i] for i in batch], batch):
                out[index] = result
        return out  # type: ignore[return-value]

    def _beams(self) -> int:
        return self.generation_config.num_beams or 1

    def _batch_cost(self, units: list[Unit]) -> int:
        """The token budget's measure: rows × (longest input + new tokens) × beams."""
        return len(units) * (max(len(u.ids) for u in units) + self.config.max_new_tokens) * self._beams()

    def _run_batch(self, units: list[Unit], index: list[int]):
        """Run one batch; on out-of-memory halve it and retry, down to one unit, which then fails alone."""
        import torch

        if len(units) > 1 and self._token_cap is not None and self._batch_cost(units) > self._token_cap:
            half = len(units) // 2
            return self._run_batch(units[:half], index[:half]) + self._run_batch(units[half:], index[half:])
        try:
            results = self.generate_batch(units)
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
        return list(zip(index, results))

    def generate_batch(self, units: list[Unit]) -> list[Generated]:
        """One padded batch through the model; returns the decoded new text of each unit."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        tok = self.tokenizer
        width = max(len(u.ids) for u in units)
        input_ids = torch.full((len(units), width), tok.pad_token_id, dtype=torch.long)
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
                if self.decoding == "lean":
                    new = self._decode_lean(hidden, mask, slices, seeds)
                else:
                    encoded = BaseModelOutput(last_hidden_state=hidden)
                    new = self._generate(mask, seeds, 1, encoder_outputs=encoded)[:, 1:]  # drop the start token
            else:
                self._count("tokens_in_padded", mask.numel())
                new = self._generate(mask, seeds, width, input_ids=input_ids)[:, width:]  # drop the prompt
        self._count("generate_seconds", time.perf_counter() - started)
        results = []
        for row in (new if isinstance(new, list) else new.tolist()):
            length = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), len(row))
            results.append(Generated(tok.decode(row[:length], skip_special_tokens=True).strip(), length))
        self._count("tokens_in", int(mask.sum()))
        self._count("tokens_out", sum(r.tokens for r in results))
        self._count("batches")
        return results

    def _generate(self, mask, seeds: list[int], prompt_width: int, **inputs):
        """`model.generate` with the engine's settings; per-row sampling through a logits processor,
        and guided choice through the allowed tokens of each step."""
        cfg = self.config
        processors = None
        if cfg.temperature > 0:
            processors = [RowSampler(row_picker(seeds, cfg.temperature, cfg.top_k, cfg.top_p, self.device))]
        allowed = None
        if self.guided is not None:  # validation lets only `choice` reach this backend
            allowed = ChoiceConstraint(self.guided.choice, self.tokenizer, self.eos_ids, prompt_width)
        out = self.model.generate(**inputs, attention_mask=mask, generation_config=self.generation_config,
                                  logits_processor=processors, prefix_allowed_tokens_fn=allowed)
        return out.cpu()

    def _decode_lean(self, hidden, mask, slices: list[list[int]], seeds: list[int]) -> list[list[int]]:
        """The lean loop of `jobs.decode` with the same settings `generate` would apply."""
        import torch

        from jobs.decode import banned_tokens, decode_seq2seq, greedy_chooser

        gen, cfg = self.generation_config, self.config
        choose = greedy_chooser
        if cfg.temperature > 0:
            picker = row_picker(seeds, cfg.temperature, cfg.top_k, cfg.top_p, self.device)
            choose = lambda logits, active, step: picker(logits, active.tolist())  # noqa: E731
        if hidden.dtype != torch.float32:
            # Attending group by group changes half-precision sums at rounding level, enough to flip a
            # greedy pick; one group keeps exactly the arithmetic `generate` does.
            slices = [[row for group in slices for row in group]]
        return decode_seq2seq(self.model, hidden, mask, groups=slices, start_id=self._decoder_start_id,
                              max_new_tokens=gen.max_new_tokens, min_new_tokens=gen.min_new_tokens or 0,
                              eos_ids=self.eos_ids, forced_bos_id=gen.forced_bos_token_id,
                              forced_eos_id=_single_token(gen.forced_eos_token_id),
                              banned=banned_tokens(gen, self.eos_ids), choose=choose)

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


def _single_token(value) -> int | None:
    """A forced-EOS setting as one token id (configs give an int or a one-element list)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value
