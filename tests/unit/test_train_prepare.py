"""Fine-tuning before Ray starts: the spec's errors name the key, the data's errors name the split or
column, and the encoders label only what the loss must see (completion, assistant turns, class)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.errors import InputDataError, SpecError
from jobs.train.data import locate
from jobs.train.encode import IGNORE, classify_metrics, encode_messages, encode_prompt_completion, pad_batch
from jobs.train.spec import parse_train_spec
from tests.helpers.train_data import train_spec, write_export


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models.qwen2)


def test_prompt_completion_labels_only_the_completion_and_eos(tokenizer):
    row = encode_prompt_completion(tokenizer, "Review: fine film\nIs it positive or negative?", "positive", 64)
    completion = tokenizer("positive", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    labelled = [t for t in row["labels"] if t != IGNORE]
    assert labelled == completion
    assert row["input_ids"][-len(completion):] == completion
    assert row["labels"][: len(row["labels"]) - len(completion)] == [IGNORE] * (len(row["labels"]) - len(completion))


def test_a_long_prompt_loses_its_start_never_the_completion(tokenizer):
    row = encode_prompt_completion(tokenizer, "word " * 200 + "question?", "negative", 24)
    completion = tokenizer("negative", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert len(row["input_ids"]) == 24
    assert [t for t in row["labels"] if t != IGNORE] == completion


def test_messages_label_the_assistant_turns_only(tokenizer):
    chat = [{"role": "system", "content": "You label reviews."}, {"role": "user", "content": "great acting"},
            {"role": "assistant", "content": "positive"}, {"role": "user", "content": "dull plot"},
            {"role": "assistant", "content": "negative"}]
    row = encode_messages(tokenizer, chat, 256)
    whole = tokenizer.apply_chat_template(chat, tokenize=True)
    whole = list(whole["input_ids"] if hasattr(whole, "keys") else whole)
    assert row["input_ids"] == whole
    labelled = [i for i, t in enumerate(row["labels"]) if t != IGNORE]
    assert all(row["labels"][i] == row["input_ids"][i] for i in labelled)
    text = tokenizer.decode([row["input_ids"][i] for i in labelled])
    assert "positive" in text and "negative" in text and "assistant" not in text  # not the turn's header
    assert "great acting" not in text and "dull plot" not in text and "You label" not in text
    before_reply = tokenizer.apply_chat_template(chat[:2], tokenize=True, add_generation_prompt=True)
    before_reply = list(before_reply["input_ids"] if hasattr(before_reply, "keys") else before_reply)
    assert min(labelled) >= len(before_reply) - 1  # nothing before the first reply (bar a merged space)


def test_padding_masks_labels_and_classify_metrics():
    batch = pad_batch([{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [5], "labels": [5]}], 0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [5, IGNORE, IGNORE]]
    metrics = classify_metrics([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], [1, 0, 0, 0])
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


@pytest.mark.parametrize("change, message", [
    ({"learning_rate": 0}, "train.learning_rate: must be > 0"),
    ({"epochs": 1, "max_steps": 5}, "set epochs or max_steps, not both"),
    ({"task": "regress"}, "train.task"),
    ({"lr": 0.1}, "train.lr: unknown key"),
])
def test_spec_errors_name_the_key(tmp_path, change, message):
    raw = train_spec(tmp_path / "data", tmp_path / "model", tmp_path / "out", **change)
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_train_spec(raw, source="sft.yaml")


def test_data_errors_name_the_split_the_column_and_the_folder(tmp_path):
    data = write_export(tmp_path / "export", train_rows=8, eval_rows=4)
    spec = parse_train_spec(train_spec(data, tmp_path / "m", tmp_path / "out", eval_split="test"))
    with pytest.raises(InputDataError, match=r"train.eval_split: no rows of split 'test' .*splits: train, validation"):
        locate(spec.train)
    spec = parse_train_spec(train_spec(data, tmp_path / "m", tmp_path / "out", task="classify", text_column="body"))
    with pytest.raises(InputDataError, match=r"has no column 'body', which task classify needs"):
        locate(spec.train)
    spec = parse_train_spec(train_spec(tmp_path / "nothing", tmp_path / "m", tmp_path / "out"))
    with pytest.raises(InputDataError, match="train.data: .*nothing: no such folder"):
        locate(spec.train)
    (tmp_path / "half").mkdir()
    spec = parse_train_spec(train_spec(tmp_path / "half", tmp_path / "m", tmp_path / "out"))
    with pytest.raises(InputDataError, match=r"neither a committed raybatch output \(_SUCCESS\) nor an export"):
        locate(spec.train)


def test_a_committed_output_is_split_by_its_split_column(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    pq.write_table(pa.table({"prompt": ["a", "b", "c"], "completion": ["x", "y", "z"],
                             "split": ["train", "train", "validation"]}), out / "data" / "part-0.parquet")
    (out / "_manifest.json").write_text(json.dumps({"files": [{"path": "data/part-0.parquet"}]}))
    (out / "_SUCCESS").write_text("")
    spec = parse_train_spec(train_spec(out, tmp_path / "m", tmp_path / "o2"))
    data = locate(spec.train)
    assert data.rows == {"train": 2, "validation": 1}
    assert data.table("validation", ["prompt", "completion"]).to_pylist() == [{"prompt": "c", "completion": "z"}]


def test_a_missing_model_is_named_and_a_held_lock_stops_the_run_before_ray(tiny_models, tmp_path):
    from jobs.commit.layout import OutputLocation
    from jobs.errors import LockHeld
    from jobs.lock import RunLock
    from jobs.train.runner import plan_train, train

    data = write_export(tmp_path / "export", train_rows=8, eval_rows=4)
    missing = parse_train_spec(train_spec(data, tmp_path / "no-model", tmp_path / "out"), source="sft.yaml")
    with pytest.raises(SpecError, match=r"sft.yaml: train.model: .*no-model: no such folder"):
        plan_train(missing)
    spec = parse_train_spec(train_spec(data, tiny_models.qwen2, tmp_path / "out"), source="sft.yaml")
    with RunLock(OutputLocation.for_uri(str(tmp_path / "out")).lock_path, "test"):
        with pytest.raises(LockHeld, match="another run holds output"):
            train(spec)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.staging").exists()


def test_classes_keep_their_natural_order_and_eval_labels_must_be_known(tiny_models, tmp_path):
    from jobs.train.runner import plan_train

    folder = tmp_path / "export"
    folder.mkdir()
    for split, labels in (("train", [10, 2, 2, 10, 1, 1]), ("validation", [1, 2, 10])):
        pq.write_table(pa.table({"text": [f"row {i}" for i in range(len(labels))], "label": labels}),
                       folder / f"{split}.parquet")
    (folder / "_export.json").write_text(json.dumps({"files": ["train.parquet", "validation.parquet"]}))
    spec = train_spec(folder, tiny_models.masked_lm, tmp_path / "out", task="classify")
    plan = plan_train(parse_train_spec(spec, source="c.yaml"))
    assert plan.labels == [1, 2, 10] and plan.max_steps == 6  # train_spec sets max_steps
    pq.write_table(pa.table({"text": ["x"], "label": [7]}), folder / "validation.parquet")
    with pytest.raises(SpecError, match=r"c.yaml: train.label_column: split 'validation' has labels the train split "
                                        r"lacks: \['7'\]"):
        plan_train(parse_train_spec(spec, source="c.yaml"))
    spec["train"]["resources"] = {"num_workers": 8}
    with pytest.raises(SpecError, match=r"train.resources.num_workers: 8 workers for 6 training rows"):
        plan_train(parse_train_spec(spec, source="c.yaml"))
