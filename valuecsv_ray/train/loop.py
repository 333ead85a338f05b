"""The plain-torch parts of fine-tuning: encoding, batching, class-weighted loss, epochs.

    ids = encode(tokenizer, texts, max_length=512)
    loss_fn = make_loss(targets[train_idx], multi_label=False, weighting="balanced")
    mean_loss = train_epoch(model, ids, targets, order, 16, optimizer, scheduler, loss_fn, device)

Nothing here knows about Ray: the Ray Train worker (`worker.py`) drives these functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from valuecsv_ray.scoring.core import pad_batch


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

    def sums(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = targets.to(logits.device)
        if self.multi_label:
            pos_weight = None if self.weight is None else self.weight.to(logits.device)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, targets.float(), pos_weight=pos_weight, reduction="sum"
            )
            return loss, torch.tensor(float(targets.numel()), device=logits.device)
        labels = targets.long()
        losses = nn.functional.cross_entropy(logits, labels, reduction="none")
        if self.weight is None:
            return losses.sum(), torch.tensor(float(len(labels)), device=logits.device)
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


def _forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).logits.float()


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
) -> float:
    """One pass over `order` (indices into ids/targets); returns the mean batch loss."""
    model.train()
    losses = []
    for idx in chunks(order, batch_size):
        batch = pad_batch([ids[i] for i in idx], pad_id, device)
        loss = loss_fn(_forward(model, batch), torch.as_tensor(targets[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def predict_logits(
    model: nn.Module, ids: Sequence[list[int]], indices: np.ndarray, batch_size: int,
    device: torch.device, pad_id: int,
) -> torch.Tensor:
    """Logits for `indices`, in that order; batches are formed by length to limit padding."""
    model.eval()
    indices = np.asarray(indices)
    by_length = np.argsort([len(ids[i]) for i in indices], kind="stable")
    out: list[torch.Tensor | None] = [None] * len(indices)
    for pos in chunks(by_length, batch_size):
        logits = _forward(model, pad_batch([ids[indices[p]] for p in pos], pad_id, device)).cpu()
        for p, row in zip(pos, logits, strict=True):
            out[p] = row
    if not out:
        return torch.empty(0)
    return torch.stack(out)


def loss_sums(loss_fn: WeightedLoss, logits: torch.Tensor, targets: np.ndarray) -> tuple[float, float]:
    """(weighted loss total, normaliser) over rows; add these across shards, then divide."""
    if len(targets) == 0:
        return 0.0, 0.0
    total, norm = loss_fn.sums(logits, torch.as_tensor(targets))
    return float(total), float(norm)
