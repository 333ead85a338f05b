"""The tokenising half of the engine: a registry's tokenizers and window rules, no models.

    tokenizer = EnsembleTokenizer.from_registry("runs/quickstart")
    encoded = tokenizer.encode(["一段文本"])   # [tokenizer group][text][window] -> token ids
    Ensemble(...).score_encoded(encoded)      # the models' half (valuecsv_ray.scoring.engine)

Light enough for a CPU stage of a pipeline (no torch models), so tokenising can overlap scoring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from valuecsv_ray.registry.manifest import Registry, load_registry
from valuecsv_ray.scoring.core import check_texts, default_stride, split_windows

Encoded = list[list[list[list[int]]]]  # [tokenizer group][text][window] -> token ids


def window_rule(registry: Registry, value_id: str, folder: Path, tokenizer) -> tuple[int, int, str]:
    """(max_length, stride, aggregate) an evaluator was evaluated under; registries written before
    the rule was recorded used the model's full window, half-window stride and max."""
    recorded = registry.manifest["evaluators"][value_id].get("window") or {}
    limit = min(AutoConfig.from_pretrained(folder).max_position_embeddings, tokenizer.model_max_length)
    max_length = int(recorded.get("max_length") or limit)
    stride = int(recorded.get("stride") or default_stride(max_length))
    return max_length, stride, recorded.get("aggregate", "max")


class EnsembleTokenizer:
    """The tokenising half of the engine: a registry's tokenizers, no models.

    Tokenises each text once per distinct tokenizer and window rule (one group for a usual
    registry) into windows, [CLS]/[SEP] included. Light enough for a CPU stage of a pipeline,
    so that tokenising overlaps with scoring. `stride` overrides the registry's rule.
    """

    def __init__(self, registry: Registry, stride: int | None = None):
        self.registry = registry
        self.taxonomy = registry.taxonomy
        self.value_ids = self.taxonomy.ids
        self.groups: list[dict] = []  # tokenizer, max_length, stride, folders: [(column, folder, output)]
        self.aggregates: list[str] = []  # per column
        tokenizers: dict[str, object] = {}  # by tokenizer fingerprint: each loaded once
        groups: dict[tuple, dict] = {}  # by (fingerprint, max_length, stride)
        for column, value_id in enumerate(self.value_ids):
            ev = registry.manifest["evaluators"][value_id]
            folder = registry.path / ev["path"]
            fingerprint = _tokenizer_fingerprint(folder)
            if fingerprint not in tokenizers:
                tokenizers[fingerprint] = AutoTokenizer.from_pretrained(folder)
            tokenizer = tokenizers[fingerprint]
            max_length, recorded_stride, how = window_rule(registry, value_id, folder, tokenizer)
            key = (fingerprint, max_length, stride or recorded_stride)
            if key not in groups:
                groups[key] = {"tokenizer": tokenizer, "max_length": max_length, "stride": key[2],
                               "folders": []}
                self.groups.append(groups[key])
            groups[key]["folders"].append((column, folder, ev["output_index"]))
            self.aggregates.append(how)
        self.max_length = min(g["max_length"] for g in self.groups)
        self.stride = min(g["stride"] for g in self.groups)

    @classmethod
    def from_registry(cls, path: str | Path, **kwargs) -> EnsembleTokenizer:
        return cls(load_registry(path), **kwargs)

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Token windows per tokenizer group and text; refuses empty or non-string texts."""
        check_texts(texts)
        return [split_windows(g["tokenizer"], texts, g["max_length"], g["stride"]) for g in self.groups]


def _tokenizer_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (folder / name).is_file():
            h.update(name.encode() + (folder / name).read_bytes())
    return h.hexdigest()
