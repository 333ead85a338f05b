"""The plain-torch parts of fine-tuning: encoding, batching, class-weighted loss, epochs.

    ids = encode(tokenizer, texts, max_length=512)
    loss_fn = make_loss(targets[train_idx], multi_label=False, weighting="balanced")
    amp_dtype = resolve_precision("auto", device)  # bf16 autocast on a bf16 GPU, else None (fp32)
    stats = train_epoch(model, ids, targets, order, 16, optimizer, scheduler, loss_fn, device, pad_id,
                        amp_dtype=amp_dtype)
    stats.mean_loss, stats.step_losses, stats.samples / stats.seconds

Nothing here knows about Ray: the Ray Train worker (`worker.py`) drives these functions.
On CUDA a step never waits for the GPU: batches are padded into pinned memory by a background
thread (`Prefetcher`) and copied asynchronously, and losses stay on the device until the pass ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from valuecsv_ray.config import Hyperparameters
from valuecsv_ray.overlap import Prefetcher, pinned, to_device
from valuecsv_ray.scoring.core import pad_batch

CPU = torch.device("cpu")


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to max_length, not padded (batches pad themselves)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def chunks(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


class WeightedLoss:
    """Cross-entropy (binary head) or BCE (multi-label head), optionally class-weighted.

    `sums` returns the weighted loss total and its normaliser, so shards of a validation
    set evaluated on different workers add up to exactly the loss of the whole set.
    """

    def __init__(self, multi_label: bool, weight: torch.Tensor | None):
        self.multi_label = multi_label
        self.weight = weight

    def to(self, device: torch.device) -> WeightedLoss:
        """This loss with its weights on `device`: moved once, not copied (and waited for) per step."""
        return WeightedLoss(self.multi_label, None if self.weight is None else self.weight.to(device))

    def sums(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = targets.to(logits.device)
        if self.multi_label:
            pos_weight = None if self.weight is None else self.weight.to(logits.device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, targets.float(), pos_weight=pos_weight, reduction="sum"
            )
            return loss, torch.full((), float(targets.numel()), device=logits.device)  # no host copy
        labels = targets.long()
        losses = nn.functional.cross_entropy(logits, labels, reduction="none")
        if self.weight is None:
            return losses.sum(), torch.full((), float(len(labels)), device=logits.device)
        w = self.weight.to(logits.device)[labels]
        return (losses * w).sum(), w.sum()

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total, norm = self.sums(logits, targets)
        return total / norm


def make_loss(train_targets: np.ndarray, multi_label: bool, weighting: str) -> WeightedLoss:
    """The training loss with class weights computed from the training targets.

    'balanced' gives each class the weight n / (2 * n_class), so a value that is positive
    in 4.5% of texts (Freedom) pulls the model as hard as its negatives. For the
    multi-label head the same idea is BCE's pos_weight = n_negative / n_positive per value.
    """
    targets = np.asarray(train_targets)
    if weighting != "balanced":
        return WeightedLoss(multi_label, None)
    if multi_label:
        pos = targets.sum(axis=0).astype(float)
        pos_weight = np.where(pos > 0, (len(targets) - pos) / np.maximum(pos, 1), 1.0)
        return WeightedLoss(True, torch.tensor(pos_weight, dtype=torch.float32))
    counts = np.bincount(targets.astype(int), minlength=2).astype(float)
    if counts.min() == 0:
        return WeightedLoss(False, None)
    return WeightedLoss(False, torch.tensor(len(targets) / (2 * counts), dtype=torch.float32))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a `Hyperparameters.precision` on `device`; None means plain fp32.

    'auto' picks bf16 only on a GPU with native bf16 (compute capability 8.0+): emulated bf16
    on older GPUs and bf16 on CPUs are slower than fp32. 'bf16' is honoured anywhere, so a
    CPU test can run the same mixed-precision path the GPU runs."""
    if precision not in Hyperparameters.PRECISIONS:
        raise ValueError(f"precision must be one of {Hyperparameters.PRECISIONS}, got {precision!r}")
    if precision == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else None
    return torch.bfloat16 if precision == "bf16" else None


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """'bf16' or 'fp32': how a resolved precision is logged and recorded."""
    return "bf16" if amp_dtype == torch.bfloat16 else "fp32"


@contextmanager
def tf32_matmuls(precision: str, device: torch.device) -> Iterator[bool]:
    """Within the block, fp32 matmuls (what autocast leaves in fp32) use TF32 tensor cores on CUDA,
    except for precision 'fp32', which stays IEEE fp32 as the reference; yields whether TF32 is on.
    The flags are process-wide, so they are put back after: the engine's evaluation that follows
    training then runs with the numerics a serving process has."""
    if device.type != "cuda":
        yield False
        return
    on = precision != "fp32"
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield on
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step on CUDA (many small kernels otherwise). CPU keeps
    the default implementation the CPU tests and runs have always used."""
    fused = True if device.type == "cuda" else None
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def host_batch(ids: Sequence[list[int]], idx: np.ndarray, pad_id: int, targets: np.ndarray | None = None,
               pin: bool = False) -> dict[str, torch.Tensor]:
    """Rows `idx` padded (`pad_batch`) on the CPU, with their targets when given; in pinned memory
    when `pin`, so the copy to a GPU (`to_device`) runs without blocking the host."""
    batch = pad_batch([ids[i] for i in idx], pad_id, CPU)
    if targets is not None:
        batch["targets"] = torch.as_tensor(targets[idx])
    return pinned(batch) if pin else batch


@dataclass(frozen=True)
class EpochStats:
    """One training pass on this worker: the loss of every step, samples trained, wall seconds."""

    step_losses: list[float]
    samples: int
    seconds: float

    @property
    def mean_loss(self) -> float:
        """The mean batch loss (what `train_epoch` returned before it returned stats)."""
        return float(np.mean(self.step_losses)) if self.step_losses else float("nan")


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()


def _forward(model: nn.Module, batch: dict[str, torch.Tensor], amp_dtype: torch.dtype | None) -> torch.Tensor:
    """fp32 logits; under autocast when `amp_dtype` is set (the weights stay fp32 either way)."""
    with _autocast(batch["input_ids"].device, amp_dtype):
        logits = model(**batch).logits
    return logits.float()


def train_epoch(
    model: nn.Module,
    ids: Sequence[list[int]],
    targets: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loss_fn: WeightedLoss,
    device: torch.device,
    pad_id: int,
    *,
    amp_dtype: torch.dtype | None = None,
) -> EpochStats:
    """One pass over `order` (indices into ids/targets, `batch_size` at a time): `train_pass`."""
    make = partial(host_batch, ids, pad_id=pad_id, targets=targets, pin=device.type == "cuda")
    return train_pass(model, chunks(order, batch_size), make, optimizer, scheduler, loss_fn, device,
                      amp_dtype=amp_dtype)


def train_pass(
    model: nn.Module,
    items: Iterable,
    make: Callable[[Any], dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler,
    loss_fn: WeightedLoss,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
) -> EpochStats:
    """One training pass: a step on `make(item)` (a host batch with its "targets") for each of
    `items` (index chunks of in-memory rows, or batches of a Ray Data shard), the forward under
    `amp_dtype` autocast.

    Batches are made by a background thread (`Prefetcher`); losses are kept as device tensors and
    read once at the end, so no step waits for the GPU; the seconds include that final wait, so
    samples / seconds is the real throughput."""
    model.train()
    started = time.perf_counter()
    loss_fn = loss_fn.to(device)
    losses, samples = [], 0
    with Prefetcher(items, make, device=device) as batches:
        for host in batches:
            batch = to_device(host, device)
            batch_targets = batch.pop("targets")
            samples += len(batch_targets)
            loss = loss_fn(_forward(model, batch, amp_dtype), batch_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
    step_losses = torch.stack(losses).cpu().tolist() if losses else []
    return EpochStats(step_losses, samples, time.perf_counter() - started)


@torch.no_grad()
def predict_logits(
    model: nn.Module, ids: Sequence[list[int]], indices: np.ndarray, batch_size: int,
    device: torch.device, pad_id: int, *, amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """fp32 logits on the CPU for `indices`, in that order; batches are formed by length to limit
    padding, and the logits come back to the host once, not per batch."""
    model.eval()
    indices = np.asarray(indices, dtype=int)
    if len(indices) == 0:
        return torch.empty(0)
    by_length = np.argsort([len(ids[i]) for i in indices], kind="stable")
    make = partial(host_batch, ids, pad_id=pad_id, pin=device.type == "cuda")
    with Prefetcher(chunks(indices[by_length], batch_size), make, device=device) as batches:
        parts = [_forward(model, to_device(host, device), amp_dtype) for host in batches]
    logits = torch.cat(parts).cpu()
    out = torch.empty_like(logits)
    out[torch.as_tensor(by_length)] = logits
    return out


def loss_sums(loss_fn: WeightedLoss, logits: torch.Tensor, targets: np.ndarray) -> tuple[float, float]:
    """(weighted loss total, normaliser) over rows; add these across shards, then divide."""
    if len(targets) == 0:
        return 0.0, 0.0
    total, norm = loss_fn.sums(logits, torch.as_tensor(targets))
    return float(total), float(norm)
