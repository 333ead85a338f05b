"""Deterministic, seeded train/validation/test split, stratified over all the labels at once.

    split = make_split(data.labels, seed=42)           # 70/20/10 by default
    train_idx = split.indices["train"]

Multi-label data cannot be stratified exactly per label at once; iterative stratification
(Sechidis, Tsoumakas & Vlahavas, 2011) gets close: samples are dealt out rarest label
first, each to the part that still wants most of that label. The same labels, fractions
and seed always give the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class Split:
    """Row indices (into the loaded data) for each part, with how they were made."""

    seed: int
    fractions: tuple[float, float, float]
    indices: dict[str, np.ndarray]

    def counts(self) -> dict[str, int]:
        return {part: len(idx) for part, idx in self.indices.items()}

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "fractions": list(self.fractions),
            "indices": {part: idx.tolist() for part, idx in self.indices.items()},
        }


def make_split(
    labels: np.ndarray, seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> Split:
    """Split rows of a (n, k) 0/1 label matrix into train/validation/test."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    n = len(labels)
    if n < 3:
        raise ValueError(f"need at least 3 samples to split, got {n}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # random tie-breaking among equals, fixed by the seed
    labels = np.asarray(labels, dtype=bool)[order]
    ratios = np.asarray(fractions)
    want_total = ratios * n
    want_label = np.outer(ratios, labels.sum(axis=0)).astype(float)  # (3, k)
    assigned = np.full(n, -1)
    remaining = labels.copy()
    while (assigned < 0).any():
        open_rows = assigned < 0
        counts = remaining[open_rows].sum(axis=0)
        if counts.any():
            label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(int).max)))
            rows = np.flatnonzero(open_rows & remaining[:, label])
        else:
            label, rows = None, np.flatnonzero(open_rows)
        for row in rows:
            part = _pick_part(want_label[:, label] if label is not None else None, want_total, rng)
            assigned[row] = part
            want_total[part] -= 1
            want_label[part] -= labels[row]
            remaining[row] = False
    indices = {p: np.sort(order[assigned == i]) for i, p in enumerate(PARTS)}
    return Split(seed=seed, fractions=tuple(float(f) for f in fractions), indices=indices)


def _pick_part(label_want: np.ndarray | None, total_want: np.ndarray, rng) -> int:
    """The part wanting this label most; ties go to the part wanting most rows, then random."""
    keys = [total_want] if label_want is None else [label_want, total_want]
    candidates = np.arange(len(total_want))
    for key in keys:
        best = key[candidates].max()
        candidates = candidates[key[candidates] == best]
        if len(candidates) == 1:
            return int(candidates[0])
    return int(rng.choice(candidates))
