"""The text a model sees for a row: the spec's template filled with row fields, the task prefix the
model declares, a target-language token, and the tokenizer's chat template for instruct models."""

from __future__ import annotations

import string
from typing import Any

from jobs.errors import SpecError

# Model types that need explicit language codes: the target is forced as the first generated token.
CODED_LANGUAGE_MODELS = ("m2m_100", "nllb_moe", "nllb-moe")


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



class Prompter:
    """Builds and tokenizes prompts for one loaded tokenizer. No hidden prompt: a task prefix comes
    from the spec or from the model's own config only."""

    def __init__(self, config, tokenizer, model_config, is_seq2seq: bool):
        self.config, self.tokenizer = config, tokenizer
        self.template = config.template
        self.forced_bos_token_id, target_prefix = None, ""
        if config.target_lang:
            self.forced_bos_token_id, target_prefix = self._language_setup(model_config)
        task_params = getattr(model_config, "task_specific_params", None) or {}
        declared = (task_params.get(config.task) or {}).get("prefix") if config.task else None
        self.prefix = (config.prefix if config.prefix is not None else (declared or "")) + target_prefix
        self.use_chat = False
        if not is_seq2seq and config.chat_template is not False:
            self.use_chat = bool(getattr(tokenizer, "chat_template", None))
            if config.chat_template and not self.use_chat:
                raise SpecError(f"chat_template: true but {config.model}'s tokenizer has no chat template")

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
        if model_type in CODED_LANGUAGE_MODELS:
            codes = [t for t in vocab if t.startswith("__") and t.endswith("__")][:5]
            raise SpecError(f"target_lang: {cfg.target_lang!r} is not a language code of {cfg.model}"
                            + (f" (e.g. {', '.join(c.strip('_') for c in codes)})" if codes else ""))
        marian = f">>{cfg.target_lang}<<"
        return None, (f"{marian} " if marian in vocab else "")

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
