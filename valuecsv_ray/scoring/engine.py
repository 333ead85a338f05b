"""The one scoring engine: a registry's evaluators applied to texts (plain torch, no Ray).

    engine = Ensemble.from_registry("runs/quickstart")
    scores = engine.score(["一段文本", "另一段文本"])
    scores.probs            # (n_texts, n_values) probabilities, input order
    scores.to_records()     # JSON-ready: per text, probabilities/labels keyed by value id

Both the Serve endpoint and the batch audit call `Ensemble.score`, so online and offline
scores cannot drift apart.

How it scores:
- Texts are tokenised once per distinct tokenizer (all twelve evaluators of a registry share
  one), and every model runs on the same padded batches.
- Batches are cut by a token budget (rows x padded length) after sorting by length, so
  little compute goes to padding; results are put back in input order.
- A text longer than the model's window is split into overlapping windows (stride half a
  window by default) and its probability is the MAX over windows: a value is expressed by a
  text if some passage expresses it; a mean would dilute a clear passage in a long answer.
- fp32 on CPU; bf16 weights with SDPA attention on CUDA. Same inputs, same outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from valuecsv_ray.backbone import quiet_hf_progress
from valuecsv_ray.registry import Registry, load_registry
from valuecsv_ray.taxonomy import Level, value_by_id

AGGREGATIONS = ("max", "mean")


@dataclass(frozen=True)
class EnsembleScores:
    """Scores of n texts against the registry's values."""

    registry_id: str
    value_ids: tuple[str, ...]
    probs: np.ndarray  # (n, n_values) float32
    labels: np.ndarray  # (n, n_values) bool: probs >= each value's threshold
    windows: np.ndarray  # (n,) windows each text was scored over

    def level_means(self) -> dict[str, np.ndarray]:
        """Mean probability per level (over the registry's values at that level)."""
        out = {}
        for level in Level:
            cols = [i for i, v in enumerate(self.value_ids) if value_by_id(v).level is level]
            if cols:
                out[level.value] = self.probs[:, cols].mean(axis=1)
        return out

    def to_records(self) -> list[dict]:
        levels = self.level_means()
        return [
            {
                "probs": {v: float(self.probs[i, j]) for j, v in enumerate(self.value_ids)},
                "labels": {v: bool(self.labels[i, j]) for j, v in enumerate(self.value_ids)},
                "levels": {name: float(m[i]) for name, m in levels.items()},
                "windows": int(self.windows[i]),
            }
            for i in range(len(self.probs))
        ]


@dataclass
class _Head:
    """One model and which of the ensemble's value columns its outputs fill."""

    model: torch.nn.Module
    columns: list[int]  # ensemble columns
    outputs: list[int]  # model output index for each column
    multi_label: bool


Encoded = list[list[list[list[int]]]]  # [tokenizer group][text][window] -> token ids


class EnsembleTokenizer:
    """The tokenising half of the engine: a registry's tokenizers, no models.

    Tokenises each text once per distinct tokenizer (one for a usual registry) into windows
    of at most the model's max length, [CLS]/[SEP] included. Light enough for a CPU stage of
    a pipeline, so that tokenising overlaps with scoring.
    """

    def __init__(self, registry: Registry, stride: int | None = None):
        self.registry = registry
        self.value_ids = tuple(registry.manifest["values"])
        self.groups: list[dict] = []  # {"tokenizer", "max_length", "folders": [(column, folder, output)]}
        by_key: dict[str, dict] = {}
        for column, value_id in enumerate(self.value_ids):
            ev = registry.manifest["evaluators"][value_id]
            folder = registry.path / ev["path"]
            key = _tokenizer_fingerprint(folder)
            if key not in by_key:
                tokenizer = AutoTokenizer.from_pretrained(folder)
                limit = min(AutoConfig.from_pretrained(folder).max_position_embeddings,
                            tokenizer.model_max_length)
                by_key[key] = {"tokenizer": tokenizer, "max_length": limit, "folders": []}
                self.groups.append(by_key[key])
            by_key[key]["folders"].append((column, folder, ev["output_index"]))
        self.max_length = min(g["max_length"] for g in self.groups)
        self.stride = stride or max(1, (self.max_length - 2) // 2)

    @classmethod
    def from_registry(cls, path: str | Path, **kwargs) -> EnsembleTokenizer:
        return cls(load_registry(path), **kwargs)

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Token windows per tokenizer group and text; refuses empty or non-string texts."""
        _check_texts(texts)
        return [self._windows(g["tokenizer"], texts) for g in self.groups]

    def _windows(self, tokenizer, texts: Sequence[str]) -> list[list[list[int]]]:
        body = self.max_length - 2
        # verbose=False: no "longer than the maximum" warning; long texts are windowed below
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False,
                            verbose=False)["input_ids"]
        out = []
        for ids in encoded:
            starts = [0]
            if len(ids) > body:  # overlapping windows; the last one ends at the text's end
                starts = [*range(0, len(ids) - body, self.stride), len(ids) - body]
            out.append([[tokenizer.cls_token_id, *ids[s : s + body], tokenizer.sep_token_id]
                        for s in starts])
        return out


class Ensemble:
    """A loaded registry, ready to score texts."""

    def __init__(self, registry: Registry, device: str | None = None, token_budget: int = 16384,
                 stride: int | None = None, aggregate: str = "max"):
        if aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
        self.registry = registry
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.token_budget = token_budget
        self.aggregate = aggregate
        self.tokenizer = EnsembleTokenizer(registry, stride=stride)
        self.value_ids = self.tokenizer.value_ids
        self.max_length, self.stride = self.tokenizer.max_length, self.tokenizer.stride
        self.thresholds = np.array(
            [registry.manifest["evaluators"][v]["threshold"] for v in self.value_ids], dtype=np.float32
        )
        with quiet_hf_progress():
            self.groups = [{**g, "heads": self._load_heads(g)} for g in self.tokenizer.groups]

    @classmethod
    def from_registry(cls, path: str | Path, **kwargs) -> Ensemble:
        return cls(load_registry(path), **kwargs)

    def _load_heads(self, group: dict) -> list[_Head]:
        """The group's models, each loaded once (a multi-label model fills many columns)."""
        heads: dict[Path, _Head] = {}
        for column, folder, output in group["folders"]:
            if folder not in heads:
                model = AutoModelForSequenceClassification.from_pretrained(
                    folder, attn_implementation="sdpa", dtype=self.dtype
                ).to(self.device).eval()
                multi = model.config.problem_type == "multi_label_classification"
                heads[folder] = _Head(model, [], [], multi)
            heads[folder].columns.append(column)
            heads[folder].outputs.append(output)
        return list(heads.values())

    def score(self, texts: Sequence[str]) -> EnsembleScores:
        """Probabilities and labels for each text, in input order."""
        return self.score_encoded(self.tokenizer.encode(texts))

    def score_encoded(self, encoded: Encoded) -> EnsembleScores:
        """Scores from `EnsembleTokenizer.encode` output (same registry)."""
        n = len(encoded[0])
        probs = np.zeros((n, len(self.value_ids)), dtype=np.float32)
        windows = np.zeros(n, dtype=np.int64)
        for group, per_text in zip(self.groups, encoded, strict=True):
            windows = np.array([len(w) for w in per_text], dtype=np.int64)
            owners = np.repeat(np.arange(n), windows)
            window_ids = [w for text_windows in per_text for w in text_windows]
            window_probs = self._run(group, window_ids)
            probs[:, self._columns(group)] = _aggregate(window_probs, owners, n, self.aggregate)
        return EnsembleScores(self.registry.registry_id, self.value_ids, probs,
                              probs >= self.thresholds, windows)

    def _columns(self, group: dict) -> list[int]:
        return [c for head in group["heads"] for c in head.columns]

    @torch.inference_mode()
    def _run(self, group: dict, window_ids: list[list[int]]) -> np.ndarray:
        """(n_windows, n_columns of this group) probabilities; batches by token budget."""
        heads = group["heads"]
        pad = group["tokenizer"].pad_token_id
        out = np.zeros((len(window_ids), sum(len(h.columns) for h in heads)), dtype=np.float32)
        order = np.argsort([len(w) for w in window_ids], kind="stable")
        for batch in _budget_batches(order, [len(w) for w in window_ids], self.token_budget):
            width = max(len(window_ids[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(window_ids[i])] = torch.tensor(window_ids[i])
                mask[row, : len(window_ids[i])] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            cols = []
            for head in heads:
                logits = head.model(input_ids=ids, attention_mask=mask).logits.float()
                p = torch.sigmoid(logits) if head.multi_label else torch.softmax(logits, dim=-1)
                cols.append(p[:, head.outputs])
            out[batch] = torch.cat(cols, dim=1).cpu().numpy()
        return out


def _budget_batches(order: np.ndarray, lengths: list[int], budget: int) -> list[np.ndarray]:
    """Consecutive runs of `order` (sorted by length) whose rows x max length fit the budget."""
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


def _aggregate(window_probs: np.ndarray, owners: np.ndarray, n: int, how: str) -> np.ndarray:
    out = np.zeros((n, window_probs.shape[1]), dtype=np.float32)
    if how == "max":
        np.maximum.at(out, owners, window_probs)
    else:
        np.add.at(out, owners, window_probs)
        out /= np.bincount(owners, minlength=n)[:, None]
    return out


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("score() takes a list of texts, not one string: use score([text])")
    bad = [f"text {i}: {'empty' if isinstance(t, str) else type(t).__name__}"
           for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError("cannot score empty or non-string texts: " + "; ".join(bad[:10]))


def _tokenizer_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (folder / name).is_file():
            h.update(name.encode() + (folder / name).read_bytes())
    return h.hexdigest()
