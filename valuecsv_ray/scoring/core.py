"""The scoring primitives every score goes through: windows, padding, batching, probabilities.

    windows = split_windows(tokenizer, texts, max_length=512, stride=255)
    margins = run_heads(heads, [w for ws in windows for w in ws], pad_id, 16384, device)
    probs = text_probabilities(margins, owners_of(windows), len(texts), temperatures, "max")

Plain torch, no registry and no Ray: the engine (`scoring.engine.Ensemble`) and the evaluation
of a freshly trained model (`train.evaluate`) both call these, so the thresholds tuned in
training describe the scorer that serves.

A model's output for one value is kept as a margin m (a binary head: logit[1] - logit[0], so
softmax's class-1 probability is sigmoid(m); a multi-label head: the value's logit). The
probability is sigmoid(m / T) with the evaluator's temperature T (1 = uncalibrated), taken per
window, then aggregated over a text's windows ("max": some passage expresses the value; "mean").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from valuecsv_ray.config import AGGREGATIONS
from valuecsv_ray.overlap import Prefetcher, pinned, to_device


@dataclass
class Head:
    """One model and which of the scorer's columns its outputs fill."""

    model: torch.nn.Module
    columns: list[int]  # scorer columns
    outputs: list[int]  # model output index for each column
    multi_label: bool
    run: Callable | None = None  # packed forward (scoring.varlen) when the engine packs batches


def default_stride(max_length: int) -> int:
    """Half a window's body: every token is seen in two windows except near the ends."""
    return max(1, (max_length - 2) // 2)


def split_windows(tokenizer, texts: Sequence[str], max_length: int, stride: int) -> list[list[list[int]]]:
    """Per text, its windows of at most max_length tokens with [CLS]/[SEP]; a text longer than
    one window gets overlapping windows `stride` tokens apart, the last ending at the text's end."""
    body = max_length - 2
    if not 1 <= stride <= body:
        raise ValueError(f"stride {stride} must be between 1 and max_length - 2 = {body}, "
                         "or windows skip text")
    # verbose=False: no "longer than the maximum" warning; long texts are windowed here
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    out = []
    for ids in encoded:
        starts = [0]
        if len(ids) > body:
            starts = [*range(0, len(ids) - body, stride), len(ids) - body]
        out.append([[tokenizer.cls_token_id, *ids[s : s + body], tokenizer.sep_token_id] for s in starts])
    return out


def owners_of(per_text: list[list[list[int]]]) -> np.ndarray:
    """The text index of each window, windows flattened in text order."""
    return np.repeat(np.arange(len(per_text)), [len(w) for w in per_text])


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int, device: torch.device | None = None
              ) -> dict[str, torch.Tensor]:
    """Pad token id lists to the longest one: input_ids and attention_mask (on `device` if given)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    if device is None:
        return {"input_ids": input_ids, "attention_mask": mask}
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def budget_batches(lengths: Sequence[int], budget: int) -> list[np.ndarray]:
    """Indices sorted by length, cut into runs whose rows x longest length fit the token budget."""
    order = np.argsort(lengths, kind="stable")
    batches, current, width = [], [], 0
    for i in order:
        new_width = max(width, lengths[i])
        if current and new_width * (len(current) + 1) > budget:
            batches.append(np.asarray(current))
            current, new_width = [], lengths[i]
        current.append(i)
        width = new_width
    if current:
        batches.append(np.asarray(current))
    return batches


def margins(logits: torch.Tensor, outputs: list[int], multi_label: bool) -> torch.Tensor:
    """Per-value margins from a head's logits (see the module docstring)."""
    logits = logits.float()
    if multi_label:
        return logits[:, outputs]
    return (logits[:, 1] - logits[:, 0]).unsqueeze(1).expand(-1, len(outputs))


def token_batches(lengths: Sequence[int], budget: int) -> list[np.ndarray]:
    """Indices sorted by length, cut into runs whose summed lengths fit the token budget (packed
    batches: no padding, so only real tokens count)."""
    order = np.argsort(lengths, kind="stable")
    batches, current, total = [], [], 0
    for i in order:
        if current and total + lengths[i] > budget:
            batches.append(np.asarray(current))
            current, total = [], 0
        current.append(i)
        total += lengths[i]
    if current:
        batches.append(np.asarray(current))
    return batches


def prefetched(batches: Sequence[np.ndarray], prepare: Callable, device: torch.device,
               depth: int = 2) -> Iterator[tuple[np.ndarray, object]]:
    """(batch, inputs on device) for each batch; `prepare(batch)` (host work: padding, packing) runs
    in a background thread up to `depth` batches ahead, into pinned memory on CUDA, so the GPU does
    not wait for the host. Errors in `prepare` are raised here; leaving the loop stops the thread."""
    pin = device.type == "cuda"

    def make(batch):
        return batch, pinned(prepare(batch)) if pin else prepare(batch)

    with Prefetcher(batches, make, depth, device) as ready:
        for batch, inputs in ready:
            yield batch, to_device(inputs, device)


@torch.inference_mode()
def collect_margins(heads: list[Head], batches: Sequence[np.ndarray], prepare: Callable, call: Callable,
                    device: torch.device, n_rows: int) -> np.ndarray:
    """(n_rows, n_columns) margins of every head on every batch, rows in input order.

    `call(head, inputs)` gives a head's logits for a prepared batch. Margins stay on the device
    until the end (one copy back, no sync per batch)."""
    n_columns = max((c for h in heads for c in h.columns), default=-1) + 1
    columns = [c for h in heads for c in h.columns]
    pieces = []
    for _, inputs in prefetched(batches, prepare, device):
        pieces.append(torch.cat([margins(call(h, inputs), h.outputs, h.multi_label) for h in heads], dim=1))
    out = np.zeros((n_rows, n_columns), dtype=np.float32)
    if pieces:
        rows = np.concatenate(batches)
        out[rows[:, None], columns] = torch.cat(pieces).cpu().numpy()
    return out


def run_heads(heads: list[Head], window_ids: list[list[int]], pad_id: int, token_budget: int,
              device: torch.device) -> np.ndarray:
    """(n_windows, n_columns) margins of every head on every window, in input order; every head
    runs on the same length-sorted, token-budget padded batches."""
    batches = budget_batches([len(w) for w in window_ids], token_budget)
    return collect_margins(heads, batches, lambda b: pad_batch([window_ids[i] for i in b], pad_id),
                           lambda head, inputs: head.model(**inputs).logits, device, len(window_ids))


def window_probabilities(window_margins: np.ndarray, temperatures: np.ndarray | float = 1.0) -> np.ndarray:
    """sigmoid(margin / temperature), per window and column."""
    scaled = np.asarray(window_margins, dtype=np.float64) / np.asarray(temperatures, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-scaled))).astype(np.float32)


def aggregate(window_probs: np.ndarray, owners: np.ndarray, n: int, how: str) -> np.ndarray:
    """Per text: the max or the mean of its windows' probabilities."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {how!r}")
    out = np.zeros((n, window_probs.shape[1]), dtype=np.float32)
    if how == "max":
        np.maximum.at(out, owners, window_probs)
    else:
        np.add.at(out, owners, window_probs)
        out /= np.maximum(np.bincount(owners, minlength=n), 1)[:, None]
    return out


def text_probabilities(window_margins: np.ndarray, owners: np.ndarray, n: int,
                       temperatures: np.ndarray | float, how: str) -> np.ndarray:
    """(n, columns) text probabilities: calibrated per window, then aggregated."""
    return aggregate(window_probabilities(window_margins, temperatures), owners, n, how)


def check_texts(texts: Sequence[str]) -> None:
    """Refuse a bare string, empty or non-string texts, naming their positions."""
    if isinstance(texts, str):
        raise TypeError("score() takes a list of texts, not one string: use score([text])")
    bad = [f"text {i}: {'empty' if isinstance(t, str) else type(t).__name__}"
           for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError("cannot score empty or non-string texts: " + "; ".join(bad[:10]))
