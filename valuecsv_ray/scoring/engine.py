"""The one scoring engine: a registry's evaluators applied to texts (plain torch, no Ray).

    engine = Ensemble.from_registry("runs/quickstart")
    scores = engine.score(["一段文本", "另一段文本"])
    scores.probs            # (n_texts, n_values) probabilities, input order
    scores.to_records()     # JSON-ready: per text, probabilities/labels keyed by value id
    engine.load_phases      # seconds per phase of loading (logged at INFO): registry_resolve,
                            # checksum_verification, tokenizer_load, weight_load, device_move,
                            # agreement_check, compile (the last three only where they happen)

Both the Serve endpoint and the batch audit call `Ensemble.score`, so online and offline
scores cannot drift apart.

How it scores:
- Texts are tokenised once per distinct tokenizer and window rule (all evaluators of a
  registry usually share one), and every model runs on the same padded batches.
- Batches are cut by a token budget (rows x padded length) after sorting by length, so
  little compute goes to padding; results are put back in input order.
- A text longer than the window is split into overlapping windows and each window's
  probability is calibrated with the evaluator's temperature, then aggregated (max or mean)
  by the rule each evaluator records in the registry (max_length, stride, aggregate): the
  rule its threshold was tuned under in training (`scoring.core`, shared with training).
- How the models run (`forward`): 'padded' (SDPA over padded batches; fp32, the CPU default)
  or, on CUDA in bf16, packed batches with no padding (`scoring.varlen`): 'varlen' (the HF model
  with a varlen attention function) or 'slim' (fused QKV, last layer on [CLS] rows only; the
  CUDA default, optionally torch.compiled). Packed scoring is checked against padded scoring on
  a probe batch at load. Host work (padding, packing, copies) runs a batch ahead of the GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from valuecsv_ray.backbone import quiet_hf_progress
from valuecsv_ray.config import CPU_SCORING_DEFAULTS, CUDA_SCORING_DEFAULTS, scoring_choice_problems
from valuecsv_ray.registry.manifest import Registry, load_registry
from valuecsv_ray.scoring.core import (
    AGGREGATIONS,
    Head,
    check_texts,
    owners_of,
    run_heads,
    text_probabilities,
)
from valuecsv_ray.scoring.fp8 import FP8_TOLERANCE
from valuecsv_ray.scoring.loading import check_timed, load_evaluator
from valuecsv_ray.scoring.tokenizing import Encoded, EnsembleTokenizer
from valuecsv_ray.scoring.varlen import (
    SlimBert,
    checked_packed_forward,
    run_packed_heads,
    supports_packing,
    use_varlen_attention,
    varlen_logits,
)
from valuecsv_ray.taxonomy import Taxonomy
from valuecsv_ray.timing import format_phases, timed

log = logging.getLogger(__name__)

CUDA_DEFAULTS, CPU_DEFAULTS = CUDA_SCORING_DEFAULTS, CPU_SCORING_DEFAULTS  # 'auto' (config/scoring)
SCORE_CHUNK = 8192  # texts tokenised per step of Ensemble.score (the next step's overlap the GPU)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp8": torch.bfloat16}  # fp8: the GEMMs only


@dataclass(frozen=True)
class EnsembleScores:
    """Scores of n texts against the registry's values."""

    registry_id: str
    taxonomy: Taxonomy  # the registry's labels; value_ids follow its order
    probs: np.ndarray  # (n, n_values) float32
    labels: np.ndarray  # (n, n_values) bool: probs >= each value's threshold
    windows: np.ndarray  # (n,) windows each text was scored over

    @property
    def value_ids(self) -> tuple[str, ...]:
        return self.taxonomy.ids

    def group_means(self) -> dict[str, np.ndarray]:
        """Mean probability per group of the taxonomy (for the default one: per level)."""
        return {g: self.probs[:, cols].mean(axis=1) for g, cols in self.taxonomy.group_positions().items()}

    def to_records(self) -> list[dict]:
        groups = self.group_means()
        return [
            {
                "probs": {v: float(self.probs[i, j]) for j, v in enumerate(self.value_ids)},
                "labels": {v: bool(self.labels[i, j]) for j, v in enumerate(self.value_ids)},
                "groups": {name: float(m[i]) for name, m in groups.items()},
                "windows": int(self.windows[i]),
            }
            for i in range(len(self.probs))
        ]


class Ensemble:
    """A loaded registry, ready to score texts.

    `aggregate` and `stride` override the registry's recorded rule (for measurements); the
    thresholds were tuned under the recorded one.
    """

    def __init__(self, registry: Registry, device: str | None = None, token_budget: int | None = None,
                 stride: int | None = None, aggregate: str | None = None, forward: str = "auto",
                 compile: bool = False, attention: str = "auto", gelu: str = "auto", precision: str = "auto"):
        if aggregate is not None and aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
        asked = {"forward": forward, "attention": attention, "gelu": gelu, "precision": precision}
        if problems := scoring_choice_problems(asked, forward):  # unknown values
            raise ValueError("; ".join(problems))
        self.registry = registry
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        defaults = CUDA_DEFAULTS if self.device.type == "cuda" else CPU_DEFAULTS
        self.asked = asked
        self.forward, self.attention, self.gelu, self.precision = (
            defaults[k] if v == "auto" else v for k, v in asked.items())
        self.dtype = DTYPES[self.precision]
        self.token_budget = token_budget or defaults["token_budget"]
        self.compile = compile
        if problems := scoring_choice_problems(asked, self.forward):  # slim options on another forward
            raise ValueError(f"{'; '.join(problems)} (on {self.device.type}); use forward 'slim'")
        self.load_phases: dict[str, float] = dict(registry.load_phases)  # seconds per phase of loading
        with timed(self.load_phases, "tokenizer_load"):
            self.tokenizer = EnsembleTokenizer(registry, stride=stride)
        self.taxonomy, self.value_ids = self.tokenizer.taxonomy, self.tokenizer.value_ids
        self.max_length, self.stride = self.tokenizer.max_length, self.tokenizer.stride
        self.aggregates = [aggregate or how for how in self.tokenizer.aggregates]
        evaluators = [registry.manifest["evaluators"][v] for v in self.value_ids]
        self.thresholds = np.array([ev["threshold"] for ev in evaluators], dtype=np.float32)
        self.temperatures = np.array([ev.get("temperature", 1.0) for ev in evaluators], dtype=np.float32)
        try:
            self.groups = self._load_groups()
        except (ValueError, RuntimeError) as e:  # 'auto' on a model or GPU packing does not suit
            if forward != "auto" or self.forward == "padded":
                raise
            log.warning("engine: packed scoring is not available here (%s); scoring padded batches", e)
            self.forward = "padded"
            self.groups = self._load_groups()
        log.info("engine: %s loaded in %.1f s: %s", registry.registry_id, sum(self.load_phases.values()),
                 format_phases(self.load_phases))
        log.info("engine: %s, %s, forward %s%s, token budget %d, %s", registry.registry_id, self.device,
                 self.forward, " (compiled)" if compile else "", self.token_budget, self.precision)
        if self.forward == "slim":
            log.info("engine: slim forward: attention %s, gelu %s", self.attention, self.gelu)

    @classmethod
    def from_registry(cls, path: str | Path, **kwargs) -> Ensemble:
        return cls(load_registry(path), **kwargs)

    def _load_groups(self) -> list[dict]:
        with quiet_hf_progress():
            return [{**g, "heads": self._load_heads(g), "columns": [c for c, _, _ in g["folders"]]}
                    for g in self.tokenizer.groups]

    def _load_heads(self, group: dict) -> list[Head]:
        """The group's models, each loaded once (a multi-label model fills many columns)."""
        heads: dict[Path, Head] = {}
        for column, folder, output in group["folders"]:
            if folder not in heads:
                model = load_evaluator(folder, self.dtype, self.device, self.load_phases)
                multi = model.config.problem_type == "multi_label_classification"
                packed = None
                if self.forward != "padded":  # a packed forward is checked (and compiled) at load
                    with check_timed(self.load_phases):
                        packed = self._packed_forward(model, group["max_length"])
                heads[folder] = Head(model, [], [], multi, packed)
            heads[folder].columns.append(column)
            heads[folder].outputs.append(output)
        return list(heads.values())

    def _packed_forward(self, model: torch.nn.Module, max_length: int):
        """The model's packed forward for 'varlen'/'slim' (checked against its padded forward). An
        attention kernel chosen by 'auto' that fails its check falls back to flash, with a warning."""
        if (why := supports_packing(model)) is not None:
            raise ValueError(f"forward {self.forward!r}: {why}; use forward 'padded'")
        tolerance = FP8_TOLERANCE if self.precision == "fp8" else None
        try:
            return checked_packed_forward(model, self._make_packed, self.device, max_length, tolerance)
        except RuntimeError as e:
            if self.forward != "slim" or self.asked["attention"] != "auto" or self.attention == "flash":
                raise
            log.warning("engine: attention %r failed its load check (%s); using 'flash'", self.attention, e)
            self.attention = "flash"
            return checked_packed_forward(model, self._make_packed, self.device, max_length, tolerance)

    def _make_packed(self, model: torch.nn.Module):
        if self.forward == "varlen":
            return partial(varlen_logits, use_varlen_attention(model))
        slim = SlimBert(model, max_length=self.max_length if self.compile else None, attention=self.attention,
                        fuse_gelu=self.gelu == "fused", fp8=self.precision == "fp8").eval()
        return torch.compile(slim, dynamic=True) if self.compile else slim

    def score(self, texts: Sequence[str], chunk: int = SCORE_CHUNK) -> EnsembleScores:
        """Probabilities and labels for each text, in input order. Over `chunk` texts, the next
        chunk is tokenised in a background thread while this one is scored."""
        check_texts(texts)
        if len(texts) <= chunk:
            return self.score_encoded(self.tokenizer.encode(texts))
        parts = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            starts = range(0, len(texts), chunk)
            encoding = pool.submit(self.tokenizer.encode, texts[:chunk])
            for start in starts:
                encoded = encoding.result()
                if start + chunk < len(texts):
                    encoding = pool.submit(self.tokenizer.encode, texts[start + chunk : start + 2 * chunk])
                parts.append(self.score_encoded(encoded))
        probs, labels, windows = (np.concatenate([getattr(p, k) for p in parts])
                                  for k in ("probs", "labels", "windows"))
        return EnsembleScores(self.registry.registry_id, self.taxonomy, probs, labels, windows)

    def score_encoded(self, encoded: Encoded) -> EnsembleScores:
        """Scores from `EnsembleTokenizer.encode` output (same registry)."""
        n = len(encoded[0])
        probs = np.zeros((n, len(self.value_ids)), dtype=np.float32)
        windows = np.zeros(n, dtype=np.int64)
        for group, per_text in zip(self.groups, encoded, strict=True):
            owners = owners_of(per_text)
            window_ids = [w for text_windows in per_text for w in text_windows]
            if self.forward == "padded":
                group_margins = run_heads(group["heads"], window_ids, group["tokenizer"].pad_token_id,
                                          self.token_budget, self.device)
            else:
                group_margins = run_packed_heads(group["heads"], window_ids, self.token_budget, self.device)
            for how in sorted({self.aggregates[c] for c in group["columns"]}):
                cols = [c for c in group["columns"] if self.aggregates[c] == how]
                probs[:, cols] = text_probabilities(group_margins[:, cols], owners, n,
                                                    self.temperatures[cols], how)
            windows = np.maximum(windows, np.bincount(owners, minlength=n))
        return EnsembleScores(self.registry.registry_id, self.taxonomy, probs, probs >= self.thresholds,
                              windows)
