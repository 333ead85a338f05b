"""The Ray Train worker: fine-tune one evaluator (one value, or the multi-label model).

    TorchTrainer(train_evaluator, train_loop_config=task.to_config(), ...)

Each epoch ends with `ray.train.report` and a checkpoint (rank 0 writes it), so a worker
that dies is restarted by Ray Train from its last epoch, and a job re-run under the same
name picks up where it stopped. Early stopping watches the loss over the whole validation
set (each rank scores a shard; the sums are all-reduced). After training, rank 0 restores
the best weights and evaluates them through the engine's scoring path (`train.evaluate`:
temperature and threshold on validation, metrics and calibration on test), then reports a
`final/` HF folder plus `result.json`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from transformers import get_linear_schedule_with_warmup

from valuecsv_ray.backbone import load_backbone
from valuecsv_ray.config import Hyperparameters
from valuecsv_ray.train.evaluate import WindowRule, evaluate_model
from valuecsv_ray.train.loop import (
    EpochStats,
    encode,
    loss_sums,
    make_loss,
    make_optimizer,
    precision_name,
    predict_logits,
    resolve_precision,
    tf32_matmuls,
    train_epoch,
    train_pass,
)

MULTILABEL = "multilabel"
FINAL_DIR = "final"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class TaskSpec:
    """What one Ray Train run trains; travels to the workers as `train_loop_config` (`to_config`)."""

    task_id: str  # a value id, or "multilabel"
    value_ids: list[str]  # the model's outputs, in order
    texts: dict[str, list[str]]  # per split part
    targets: dict[str, list]  # per part: 0/1 per text (binary) or one per value (multilabel)
    hparams: Hyperparameters

    @property
    def multi_label(self) -> bool:
        return self.task_id == MULTILABEL

    def to_config(self) -> dict:
        return {**asdict(self), "hparams": asdict(self.hparams)}

    @classmethod
    def from_config(cls, config: dict) -> TaskSpec:
        return cls(**{**config, "hparams": Hyperparameters(**config["hparams"])})


@dataclass
class Progress:
    """Training state that survives restarts (stored in every checkpoint)."""

    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    started_at: float = field(default_factory=time.time)
    history: list[dict] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)

    def record(self, train_loss: float, val_loss: float, **extra) -> bool:
        """Add an epoch (`extra`: more history fields, e.g. throughput); True when it is the best so far."""
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.history.append({"epoch": self.epoch, "train_loss": train_loss, "val_loss": val_loss, **extra})
        self.epoch += 1
        return improved


def train_evaluator(config: dict) -> None:
    """Ray Train loop for one task; `config` is `TaskSpec.to_config()`."""
    spec = TaskSpec.from_config(config)
    hp = spec.hparams
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if hp.torch_threads:
        torch.set_num_threads(hp.torch_threads)
    torch.manual_seed(hp.seed)
    tokenizer, model = load_backbone(hp.backbone, len(spec.value_ids) if spec.multi_label else 2,
                                     spec.multi_label)
    ids = {part: encode(tokenizer, texts, hp.max_length) for part, texts in spec.texts.items()}
    targets = {part: np.asarray(t) for part, t in spec.targets.items()}
    device = ray.train.torch.get_device()
    amp_dtype = resolve_precision(hp.precision, device)
    model = ray.train.torch.prepare_model(model)
    core = getattr(model, "module", model)
    optimizer = make_optimizer(model.parameters(), hp.learning_rate, hp.weight_decay, device)
    steps = math.ceil(len(targets["train"]) // world / hp.batch_size) * hp.max_epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * steps), steps)
    progress, best_state = Progress(), None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as ckpt:
            if (Path(ckpt) / FINAL_DIR).is_dir():  # finished before a crash: hand it back
                _report_final_again(Path(ckpt), rank)
                return
            progress, best_state = _restore(Path(ckpt), core, optimizer, scheduler)
    progress.attempts.append({"start_epoch": progress.epoch, "at": time.time(), "pid": os.getpid(),
                              "node": socket.gethostname(), "precision": precision_name(amp_dtype)})
    loss_fn = make_loss(targets["train"], spec.multi_label, hp.class_weighting)
    pad_id = tokenizer.pad_token_id
    with tf32_matmuls(hp.precision, device) as tf32:
        _log(rank, f"[{spec.task_id}] precision {precision_name(amp_dtype)} (setting {hp.precision!r} "
                   f"on {device}), TF32 matmuls {'on' if tf32 else 'off'}")
        best_state = run_epochs(spec.task_id, model, core, ids, targets, hp, optimizer, scheduler, loss_fn,
                                device, pad_id, amp_dtype, progress, best_state, rank, world)
    core.load_state_dict(best_state)
    _finish(spec, core, tokenizer, targets, progress, device, rank)


def run_epochs(label: str, model, core, ids: dict, targets: dict, hp: Hyperparameters, optimizer,
               scheduler, loss_fn, device, pad_id: int, amp_dtype, progress: Progress,
               best_state: dict | None, rank: int, world: int,
               train_batches: Callable[[int], tuple[Iterable, Callable]] | None = None) -> dict:
    """Epochs until max_epochs or early stopping (validation loss over all ranks), a checkpoint per
    epoch; returns the best weights. Shared by the evaluators and the distilled student.

    The training pass reads ids["train"] and targets["train"] (a permutation per epoch, this rank's
    share), or, with `train_batches`, the `(items, make)` it gives for an epoch (`train_pass`): the
    student streams its Ray Data shard. Validation stays in memory (`ids`, `targets`)."""
    while progress.epoch < hp.max_epochs and progress.bad_epochs < hp.patience:
        if train_batches is None:
            rng = np.random.default_rng(hp.seed + progress.epoch)
            order = _shard(rng.permutation(len(targets["train"])), rank, world, equal=True)
            stats = train_epoch(model, ids["train"], targets["train"], order, hp.batch_size, optimizer,
                                scheduler, loss_fn, device, pad_id, amp_dtype=amp_dtype)
        else:
            items, make = train_batches(progress.epoch)
            stats = train_pass(model, items, make, optimizer, scheduler, loss_fn, device,
                               amp_dtype=amp_dtype)
        summary = _epoch_summary(stats)
        val_idx = _shard(np.arange(len(targets["validation"])), rank, world, equal=False)
        logits = predict_logits(core, ids["validation"], val_idx, hp.batch_size, device, pad_id,
                                amp_dtype=amp_dtype)
        val_loss = _all_sum_ratio(*loss_sums(loss_fn, logits, targets["validation"][val_idx]))
        if progress.record(summary.pop("train_loss"), val_loss, **summary):
            best_state = {k: v.detach().cpu().clone() for k, v in core.state_dict().items()}
        _log(rank, f"[{label}] epoch {progress.epoch}/{hp.max_epochs} "
                   f"train_loss={progress.history[-1]['train_loss']:.4f} val_loss={val_loss:.4f} "
                   f"best_epoch={progress.best_epoch + 1} samples/s={summary['samples_per_s']:.1f}")
        _report_epoch(progress, core, optimizer, scheduler, best_state, rank)
    return best_state


def _log(rank: int, message: str) -> None:
    """Print on rank 0 only (the other ranks would repeat it)."""
    if rank == 0:
        print(message, flush=True)


def _epoch_summary(stats: EpochStats) -> dict:
    """An epoch's history fields: the mean train loss over ranks, wall seconds of the pass (mean
    over ranks), samples per second of all ranks together, and this rank's per-step losses
    (rank 0's are the ones checkpoints and result.json keep)."""
    loss, samples, seconds, world = _all_sum([stats.mean_loss, stats.samples, stats.seconds, 1.0])
    train_s = seconds / world
    return {"train_loss": loss / world, "train_s": round(train_s, 3),
            "samples_per_s": round(samples / max(train_s, 1e-9), 2),
            "step_losses": [round(x, 5) for x in stats.step_losses]}


def _shard(indices: np.ndarray, rank: int, world: int, equal: bool) -> np.ndarray:
    """This rank's share; `equal` trims so every rank runs the same number of steps (DDP)."""
    if equal:
        indices = indices[: len(indices) // world * world]
    return indices[rank::world]


def _all_sum(values: list[float]) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    # NCCL (use_gpu with several workers) reduces only CUDA tensors
    device = ray.train.torch.get_device() if "nccl" in str(dist.get_backend()) else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def _all_sum_ratio(numerator: float, denominator: float) -> float:
    total, norm = _all_sum([numerator, denominator])
    return total / norm


def _report_epoch(progress, core, optimizer, scheduler, best_state, rank: int) -> None:
    last = {k: v for k, v in progress.history[-1].items() if k != "step_losses"}  # scalars only
    metrics = {"epoch": progress.epoch, **last}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        save_file(_plain(core.state_dict()), d / "model.safetensors")
        save_file(_plain(best_state), d / "best.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   d / "trainer_state.pt")
        (d / "progress.json").write_text(json.dumps(asdict(progress)))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"epoch_{progress.epoch:03d}")


def _plain(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _restore(ckpt: Path, core, optimizer, scheduler) -> tuple[Progress, dict]:
    core.load_state_dict(load_file(ckpt / "model.safetensors"))
    state = torch.load(ckpt / "trainer_state.pt", weights_only=True, map_location="cpu")  # any device
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    progress = Progress(**json.loads((ckpt / "progress.json").read_text()))
    print(f"resuming from checkpoint {ckpt.name}: {progress.epoch} epoch(s) done", flush=True)
    return progress, load_file(ckpt / "best.safetensors")


def _finish(spec: TaskSpec, core, tokenizer, targets, progress, device, rank: int) -> None:
    """Rank 0: temperatures, thresholds, test metrics and calibration through the engine's scoring
    path (`train.evaluate`), then the final HF folder."""
    if rank != 0:
        ray.train.report({"final": True})
        return
    hp = spec.hparams
    rule = WindowRule.of(hp.max_length, hp.stride, hp.aggregate)
    evaluation = evaluate_model(core, tokenizer, spec.value_ids, spec.multi_label, spec.texts, targets, rule,
                                device, hp.eval_token_budget, seed=hp.seed)
    labels = spec.value_ids if spec.multi_label else [f"not_{spec.value_ids[0]}", spec.value_ids[0]]
    core.config.id2label = dict(enumerate(labels))
    core.config.label2id = {label: i for i, label in enumerate(labels)}
    result = {
        "task_id": spec.task_id, **evaluation, "train_start": progress.started_at,
        "train_end": time.time(), "epochs_run": progress.epoch, "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss, "stopped_early": progress.epoch < hp.max_epochs,
        "history": progress.history, "attempts": progress.attempts,
    }
    with tempfile.TemporaryDirectory() as tmp:
        core.save_pretrained(Path(tmp) / FINAL_DIR)
        tokenizer.save_pretrained(Path(tmp) / FINAL_DIR)
        (Path(tmp) / RESULT_FILE).write_text(json.dumps(result, indent=2))
        ray.train.report({"final": True}, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=FINAL_DIR)


def _report_final_again(ckpt: Path, rank: int) -> None:
    if rank != 0:
        ray.train.report({"final": True})
        return
    ray.train.report({"final": True}, checkpoint=ray.train.Checkpoint.from_directory(str(ckpt)),
                     checkpoint_dir_name=f"{FINAL_DIR}_again")
