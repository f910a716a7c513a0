"""What each Ray Train worker runs: the transformers Trainer over this worker's shard of the rows
(`ray.train.get_dataset_shard`), in the process group Ray Train set up. Rank 0 saves the
checkpoints a killed run resumes from, the final model and the log of every logged step.
Imported only where training runs (it imports torch)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch.utils.data import DataLoader, IterableDataset

from jobs.train.encode import (classify_metrics, encode_classify, encode_messages, encode_prompt_completion,
                               pad_batch)
from jobs.train.spec import TrainSection


def train_loop(config: dict) -> None:
    import ray.train
    import torch
    import transformers

    torch.set_num_threads(config["threads"])
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    ray.data.DataContext.get_current().enable_progress_bars = False
    section = TrainSection.model_validate(config["section"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(config["model_dir"], revision=config["revision"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    transformers.set_seed(config["seed"])  # a classifier's new head, LoRA's adapters: the same every run
    model = _model(section, config)
    if model.config.pad_token_id is None:  # a decoder-only classifier finds each row's last token by it
        model.config.pad_token_id = tokenizer.pad_token_id
    encode = _encoder(section, tokenizer, config.get("labels"))

    from ray.data.collate_fn import ArrowBatchCollateFn

    class Collate(ArrowBatchCollateFn):
        """Rows of an Arrow batch → token ids and labels, padded into tensors."""

        def __call__(self, batch):
            return pad_batch([encode(row) for row in batch.to_pylist()], tokenizer.pad_token_id)

    def batches(name: str, size: int):
        return ray.train.get_dataset_shard(name).iter_torch_batches(batch_size=size, collate_fn=Collate())

    class Trainer(transformers.Trainer):
        """Trains on this worker's shard, streamed from Ray Data a batch at a time, with a length (so
        a resumed run knows its epoch and skips the batches already trained on); evaluates on
        batches held in memory (the eval split is read once, not once per evaluation)."""

        def get_train_dataloader(self):
            return DataLoader(Epoch(self.train_dataset, config["steps_per_epoch"]), batch_size=1,
                              collate_fn=_first)

        def get_eval_dataloader(self, eval_dataset=None):
            return DataLoader(self.eval_dataset, batch_size=1, collate_fn=_first)

    has_eval = config["has_eval"]
    args = _training_args(
        output_dir=config["checkpoints"], max_steps=config["max_steps"], per_device_train_batch_size=1,
        learning_rate=section.learning_rate, weight_decay=section.weight_decay, warmup_ratio=section.warmup_ratio,
        logging_steps=section.logging_steps, save_strategy="steps", save_steps=section.save_steps,
        save_total_limit=2, eval_strategy="steps" if has_eval else "no", eval_steps=section.logging_steps,
        seed=config["seed"], data_seed=config["seed"], use_cpu=not config["use_gpu"], report_to=[],
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        ddp_find_unused_parameters=False)
    trainer = Trainer(
        model=model, args=args, train_dataset=batches("train", section.batch_size),
        eval_dataset=list(batches("eval", section.batch_size)) if has_eval else None,
        compute_metrics=(lambda p: classify_metrics(p.predictions, p.label_ids)) if section.task == "classify" else None)
    trainer.add_callback(_no_checkpoint_at_the_end())
    trainer.train(resume_from_checkpoint=config.get("resume_from"))
    if ray.train.get_context().get_world_rank() == 0:
        _save(trainer, tokenizer, section, Path(config["model_out"]))
        Path(config["log_out"]).write_text(json.dumps({"log_history": trainer.state.log_history,
                                                        "global_step": trainer.state.global_step}), encoding="utf-8")


def _first(one: list):
    return one[0]


class Epoch(IterableDataset):
    """One pass over Ray Data batches, with the number of batches each worker gets per pass."""

    def __init__(self, batches, length: int):
        self.batches, self.length = batches, length

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return self.length


def _no_checkpoint_at_the_end():
    import transformers

    class NoCheckpointAtTheEnd(transformers.TrainerCallback):
        """The last step saves the model, not a checkpoint: a run killed before the model is saved
        resumes from a checkpoint with steps left, which the Trainer handles (one at max_steps it
        would train past)."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False
            return control

    return NoCheckpointAtTheEnd()


def _training_args(**kwargs):
    """TrainingArguments across transformers 4 and 5 (5 takes the warmup ratio as warmup_steps < 1)."""
    import dataclasses

    import transformers

    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    if "warmup_ratio" not in fields:
        kwargs["warmup_steps"] = kwargs.pop("warmup_ratio")
    return transformers.TrainingArguments(**kwargs)


def _model(section: TrainSection, config: dict):
    import transformers

    if section.task == "classify":
        names = [str(label) for label in config["labels"]]
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            config["model_dir"], revision=config["revision"], num_labels=len(names), id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)})
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(config["model_dir"], revision=config["revision"])
    if section.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = section.lora
        model = get_peft_model(model, LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
            task_type="SEQ_CLS" if section.task == "classify" else "CAUSAL_LM"))
    return model


def _encoder(section: TrainSection, tokenizer, labels: list[str] | None):
    if section.task == "classify":
        label_ids = {str(label): i for i, label in enumerate(labels or [])}
        return lambda row: encode_classify(tokenizer, str(row[section.text_column]), row[section.label_column],
                                           label_ids, section.max_length)
    if section.format == "messages":
        return lambda row: encode_messages(tokenizer, [dict(m) for m in row["messages"]], section.max_length)
    return lambda row: encode_prompt_completion(tokenizer, str(row["prompt"]), str(row["completion"]),
                                                section.max_length)


def _save(trainer, tokenizer, section: TrainSection, folder: Path) -> None:
    """The model as `from_pretrained` loads it: adapters merged into the weights, safetensors."""
    model = trainer.model
    if section.lora is not None:
        model = model.merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    os.sync()
