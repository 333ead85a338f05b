"""The Ray Train worker of a student: one encoder, one sigmoid head per value, fitted to the ensemble.

    TorchTrainer(train_student, train_loop_config=spec.to_config(), ...)

The same loop as the evaluators' (`worker.py`): data-parallel over the workers (DDP), an epoch per
`ray.train.report` with a checkpoint (a dead worker restarts from it), early stopping on the
validation loss; the targets are the ensemble's calibrated probabilities mixed with the gold
labels where a text has them (`distill_eval.SoftTargetLoss`). The train part, which grows with the
corpus, reaches the workers through Ray Data (`train_dataset`: tokenized once on the cluster; each
worker streams its equal shard, `ray.train.get_dataset_shard`), not through the run's config; the
validation and test parts (held out, a share of the corpus) travel in the config. Rank 0 then
restores the best epoch, fits temperatures and thresholds to the ensemble and measures the
agreement on held-out text (`distill_eval.evaluate_student`), and reports a `final/` HF folder (a
multi-label model, as in a `mode: multilabel` registry) plus `result.json`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import ray.data
import ray.train
import ray.train.torch
import torch
from transformers import get_linear_schedule_with_warmup

from valuecsv_ray.backbone import load_backbone
from valuecsv_ray.config import Hyperparameters
from valuecsv_ray.train.distill_eval import Part, SoftTargetLoss, evaluate_student
from valuecsv_ray.train.evaluate import WindowRule
from valuecsv_ray.train.loop import (
    encode,
    host_batch,
    make_optimizer,
    precision_name,
    resolve_precision,
)
from valuecsv_ray.train.worker import (
    FINAL_DIR,
    RESULT_FILE,
    Progress,
    _report_final_again,
    _restore,
    run_epochs,
)

PARTS = ("train", "validation", "test")
TRAIN_DATASET = "train"  # the Ray Data dataset whose shards the workers stream
SHUFFLE_BATCHES = 32  # a worker's local shuffle buffer, in batches (rows are shuffled once before)
BLOCK_ROWS = 2048  # rows per block of the train dataset (a tokenizing task each)


@dataclass(frozen=True)
class StudentSpec:
    """What a student's Ray Train run fits; travels to the workers as `train_loop_config`."""

    value_ids: list[str]  # the head's outputs, in taxonomy order
    texts: dict[str, list[str]]  # per part: train, validation, test (held out)
    teacher: dict[str, list]  # per part: (n, values) the ensemble's calibrated probabilities
    gold: dict[str, list]  # per part: (n, values) 0/1 gold labels, NaN where a text has none
    teacher_thresholds: list[float]  # the ensemble's thresholds (its decisions), per value
    gold_weight: float  # share of the gold term in the loss on texts with gold labels
    hparams: Hyperparameters
    teacher_temperatures: list[float] | None = None  # set: learn sigmoid(T x logit(p)), p before scaling
    train_rows: int | None = None  # set: the train part is a Ray Data dataset of this many rows

    def to_config(self) -> dict:
        return {**asdict(self), "hparams": asdict(self.hparams)}

    @classmethod
    def from_config(cls, config: dict) -> StudentSpec:
        return cls(**{**config, "hparams": Hyperparameters(**config["hparams"])})

    def part(self, name: str) -> Part:
        teacher = np.asarray(self.teacher[name], dtype=np.float32).reshape(-1, len(self.value_ids))
        gold = np.asarray(self.gold[name], dtype=np.float32).reshape(-1, len(self.value_ids))
        return Part(self.texts[name], teacher, teacher >= np.asarray(self.teacher_thresholds), gold)

    def targets(self, part: Part) -> np.ndarray:
        """Training targets of a part: the ensemble's probabilities (before its temperature scaling
        when `teacher_temperatures` is set), then the gold labels."""
        teacher = part.teacher
        if self.teacher_temperatures is not None:
            p = np.clip(teacher.astype(np.float64), 1e-7, 1 - 1e-7)
            margins = np.log(p / (1 - p)) * np.asarray(self.teacher_temperatures)
            teacher = (1 / (1 + np.exp(-margins))).astype(np.float32)
        return np.concatenate([teacher, part.gold], axis=1)

    def streamed(self) -> StudentSpec:
        """This spec for the workers: the train part left out (it travels as `train_dataset`)."""
        return replace(self, texts={**self.texts, "train": []}, teacher={**self.teacher, "train": []},
                       gold={**self.gold, "train": []}, train_rows=len(self.texts["train"]))


def train_dataset(spec: StudentSpec, tokenizer) -> ray.data.Dataset:
    """The train part as the Ray Data dataset the workers shard: rows in a seeded random order,
    tokenized once on the cluster (a task per block, not every worker all of it) and materialized
    in the object store (spilled to disk when large), so that no read task waits for the CPUs the
    workers hold. Columns: input_ids (token ids, not padded) and targets (the ensemble's
    probabilities, then the gold labels or NaN: `spec.targets`)."""
    part = spec.part("train")
    targets = spec.targets(part)
    order = np.random.default_rng(spec.hparams.seed).permutation(len(part.texts))
    blocks = [pd.DataFrame({"text": [part.texts[i] for i in rows], "targets": list(targets[rows])})
              for rows in np.array_split(order, max(1, math.ceil(len(order) / BLOCK_ROWS)))]
    return ray.data.from_pandas(blocks).map_batches(
        _encode_rows, fn_kwargs={"tokenizer": tokenizer, "max_length": spec.hparams.max_length},
        batch_format="pandas", batch_size=None).materialize()


def _encode_rows(batch: pd.DataFrame, tokenizer, max_length: int) -> pd.DataFrame:
    ids = encode(tokenizer, batch["text"].tolist(), max_length)
    return pd.DataFrame({"input_ids": [np.asarray(x, dtype=np.int32) for x in ids],
                         "targets": list(np.stack(batch["targets"].to_numpy()).astype(np.float32))})


def _host_batch(batch: dict[str, np.ndarray], pad_id: int, pin: bool) -> dict[str, torch.Tensor]:
    """A batch of the train dataset as `host_batch` makes an in-memory one: padded on the CPU, with
    its targets (pinned when `pin`)."""
    targets = np.stack(list(batch["targets"])).astype(np.float32)
    return host_batch(batch["input_ids"], np.arange(len(targets)), pad_id, targets, pin)


def train_student(config: dict) -> None:
    """Ray Train loop for a student; `config` is `StudentSpec.to_config()`."""
    spec = StudentSpec.from_config(config)
    hp = spec.hparams
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if hp.torch_threads:
        torch.set_num_threads(hp.torch_threads)
    torch.manual_seed(hp.seed)
    tokenizer, model = load_backbone(hp.backbone, len(spec.value_ids), True)
    parts = {name: spec.part(name) for name in PARTS}
    ids = {"validation": encode(tokenizer, parts["validation"].texts, hp.max_length)}
    targets = {"validation": spec.targets(parts["validation"])}
    shard = ray.train.get_dataset_shard(TRAIN_DATASET)  # an equal share of spec.train_rows
    device = ray.train.torch.get_device()
    amp_dtype = resolve_precision(hp.precision, device)
    model = ray.train.torch.prepare_model(model)
    core = getattr(model, "module", model)
    optimizer = make_optimizer(model.parameters(), hp.learning_rate, hp.weight_decay, device)
    steps = math.ceil(spec.train_rows // world / hp.batch_size) * hp.max_epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * steps), steps)
    progress, best_state = Progress(), None
    if checkpoint := ray.train.get_checkpoint():
        with checkpoint.as_directory() as ckpt:
            if (Path(ckpt) / FINAL_DIR).is_dir():
                _report_final_again(Path(ckpt), rank)
                return
            progress, best_state = _restore(Path(ckpt), core, optimizer, scheduler)
    progress.attempts.append({"start_epoch": progress.epoch, "at": time.time(), "pid": os.getpid(),
                              "node": socket.gethostname(), "precision": precision_name(amp_dtype)})
    loss_fn, pad_id = SoftTargetLoss(len(spec.value_ids), spec.gold_weight), tokenizer.pad_token_id
    make = partial(_host_batch, pad_id=pad_id, pin=device.type == "cuda")

    def train_batches(epoch: int) -> tuple:
        return shard.iter_batches(batch_size=hp.batch_size, batch_format="numpy",
                                  local_shuffle_buffer_size=SHUFFLE_BATCHES * hp.batch_size,
                                  local_shuffle_seed=hp.seed + epoch), make

    best_state = run_epochs("student", model, core, ids, targets, hp, optimizer, scheduler, loss_fn, device,
                            pad_id, amp_dtype, progress, best_state, rank, world, train_batches)
    core.load_state_dict(best_state)
    _finish(spec, core, tokenizer, parts, progress, device, rank)


def _finish(spec: StudentSpec, core, tokenizer, parts: dict[str, Part], progress: Progress,
            device: torch.device, rank: int) -> None:
    """Rank 0: fit the student to the ensemble and measure it (`evaluate_student`), then report the
    final HF folder and result.json."""
    if rank != 0:
        ray.train.report({"final": True})
        return
    hp = spec.hparams
    rule = WindowRule.of(hp.max_length, hp.stride, hp.aggregate)
    evaluation = evaluate_student(core, tokenizer, spec.value_ids, parts, spec.teacher_thresholds, rule,
                                  device, hp.eval_token_budget)
    core.config.id2label = dict(enumerate(spec.value_ids))
    core.config.label2id = {label: i for i, label in enumerate(spec.value_ids)}
    result = {"task_id": "multilabel", **evaluation, "train_start": progress.started_at,
              "train_end": time.time(), "epochs_run": progress.epoch, "best_epoch": progress.best_epoch,
              "best_val_loss": progress.best_val_loss, "stopped_early": progress.epoch < hp.max_epochs,
              "history": progress.history, "attempts": progress.attempts}
    with tempfile.TemporaryDirectory() as tmp:
        core.save_pretrained(Path(tmp) / FINAL_DIR)
        tokenizer.save_pretrained(Path(tmp) / FINAL_DIR)
        (Path(tmp) / RESULT_FILE).write_text(json.dumps(result, indent=2))
        ray.train.report({"final": True}, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=FINAL_DIR)
