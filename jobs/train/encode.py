"""Rows to token ids and labels, the way the loss must see them: for sft only the completion (or
the assistant turns) counts, everything else is labelled -100; for classify the label is the class
index. Plain functions over a tokenizer, so tests check them without Ray or a training run."""

from __future__ import annotations

IGNORE = -100  # the label transformers' losses skip


def encode_prompt_completion(tokenizer, prompt: str, completion: str, max_length: int) -> dict:
    """Prompt then completion then EOS; the prompt is tokenized on its own so no token straddles the
    two, and loses its start (never the completion) when the row is too long."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    completion_ids = completion_ids[:max_length]
    room = max_length - len(completion_ids)
    prompt_ids = prompt_ids[len(prompt_ids) - room:] if room > 0 else []
    return {"input_ids": prompt_ids + completion_ids, "labels": [IGNORE] * len(prompt_ids) + completion_ids}


def encode_messages(tokenizer, messages: list[dict], max_length: int) -> dict:
    """A chat through the tokenizer's chat template; the tokens each assistant turn adds after its
    generation prompt are labelled, all others ignored. Turns are compared by common prefix, so a
    template whose last token merges with the next turn's first still labels the right span.
    Longer chats lose their start."""
    ids: list[int] = []
    labels: list[int] = []
    for index, message in enumerate(messages):
        upto = _chat_ids(tokenizer, messages[: index + 1], generation_prompt=False)
        keep = _common(ids, upto)
        start = keep
        assistant = message["role"] == "assistant"
        if assistant:
            start = max(keep, _common(_chat_ids(tokenizer, messages[:index], generation_prompt=True), upto))
        tail = upto[start:] if assistant else [IGNORE] * (len(upto) - start)
        labels = labels[:keep] + [IGNORE] * (start - keep) + tail
        ids = upto
    # Too long: keep the end, where the last assistant turn is, so the row still teaches something.
    return {"input_ids": ids[-max_length:], "labels": labels[-max_length:]}


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _chat_ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    if not messages and not generation_prompt:
        return []
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def encode_classify(tokenizer, text: str, label, label_ids: dict[str, int], max_length: int) -> dict:
    encoded = tokenizer(text, truncation=True, max_length=max_length)
    return {"input_ids": encoded["input_ids"], "labels": label_ids[str(label)]}


def pad_batch(rows: list[dict], pad_id: int) -> dict:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding for token labels)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    token_labels = isinstance(rows[0]["labels"], list)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long) if token_labels else \
        torch.tensor([r["labels"] for r in rows], dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
        mask[i, :n] = 1
        if token_labels:
            labels[i, :n] = torch.tensor(row["labels"], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def classify_metrics(logits, labels) -> dict:
    """Accuracy and macro-F1 over the classes present in labels or predictions."""
    import numpy as np

    logits = logits[0] if isinstance(logits, tuple) else logits
    predicted, labels = np.asarray(logits).argmax(-1), np.asarray(labels)
    scores = []
    for cls in np.union1d(predicted, labels):
        tp = np.sum((predicted == cls) & (labels == cls))
        precision_den, recall_den = np.sum(predicted == cls), np.sum(labels == cls)
        p = tp / precision_den if precision_den else 0.0
        r = tp / recall_den if recall_den else 0.0
        scores.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": float(np.mean(predicted == labels)), "macro_f1": float(np.mean(scores))}
