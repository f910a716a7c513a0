"""Finding a model's files and checking them before anything loads; the dtype and input limit
both backends derive the same way. Cheap: no torch import outside `torch_dtype`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jobs.errors import SpecError

# Tokenizers report this (or larger) when a model declares no input limit.
NO_LIMIT = 1_000_000


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


def torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def input_limit(tokenizer, model_config, *, is_seq2seq: bool, max_new_tokens: int, max_input_tokens: int | None,
                model: str, context_length: int | None = None) -> int | None:
    """Longest input the model takes: the spec's bound, else the tokenizer's or the position table's
    (or the engine's context length, when it sets one). A decoder-only model must also fit the new
    tokens into its positions."""
    declared = tokenizer.model_max_length
    limit = declared if declared and declared < NO_LIMIT else None
    positions = (context_length or getattr(model_config, "max_position_embeddings", None)
                 or getattr(model_config, "n_positions", None))
    if limit is None and positions:
        limit = positions
    if not is_seq2seq and limit is not None:
        limit = min(limit, positions or limit) - max_new_tokens
        if limit <= 0:
            raise SpecError(f"max_new_tokens: {max_new_tokens} leaves no room for the prompt in "
                            f"{model}'s {positions} positions")
    if max_input_tokens:
        limit = min(limit, max_input_tokens) if limit else max_input_tokens
    return limit


def encoder_limit(tokenizer, model_config) -> int:
    """Longest input an encoder (masked LM, token classifier) takes: the tokenizer's declared limit,
    else the position table less the two slots RoBERTa-style models reserve."""
    declared = tokenizer.model_max_length
    if declared and declared < NO_LIMIT:
        return declared
    return (getattr(model_config, "max_position_embeddings", None) or 514) - 2


def version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= wanted
