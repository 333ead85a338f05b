"""The settings of the adaptive loop (`valuecsv-ray adaptive run`), declared once.

    cfg = load_adaptive_config(None, {"bank": "bank.parquet", "endpoints": "endpoints.yaml",
                                      "generator": "writer", "registry": "runs/x", "out": "adaptive/run1"})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.adaptive.cat import StopRule
from valuecsv_ray.adaptive.generate import AdmitRules
from valuecsv_ray.settings import is_int, is_number, load_settings, setting


@dataclass(frozen=True)
class AdaptiveConfig:
    """Rounds of adaptive testing with items written by a generator LLM."""

    bank: str = setting("", "item bank (Parquet, `valuecsv-ray items init`); left as it is: the evolved "
                            "bank is OUT/bank.parquet")
    endpoints: str = setting("", "YAML file of LLM endpoints: the generator and the models under test")
    generator: str = setting("", "name of the endpoint that writes new items (the others are tested)")
    registry: str = setting("", "registry whose thresholds decide conforming answers")
    out: str = setting("", "output folder: one round-NN/ folder per round; re-running resumes",
                       identity=False)
    rounds: int = setting(3, "adaptive rounds after the seed calibration (round 0)", identity=False)
    values: list = setting([], "value ids tested (--value, repeatable); default the values the bank's "
                               "items target, else every value of the registry", cli=False)
    batch: int = setting(10, "items per model and value per round, by Fisher information")
    target_se: float = setting(0.3, "a model's test of a value stops at this ability SE")
    max_items: int = setting(100, "item budget per model and value")
    new_items: int = setting(4, "items asked of the generator per (value, target difficulty)")
    examples: int = setting(3, "bank items shown to the generator as examples")
    spacing: float = setting(0.3, "abilities closer than this share one target difficulty")
    a_floor: float = setting(0.3, "a new item is admitted with discrimination at least this")
    max_se_b: float = setting(1.5, "... and a difficulty standard error at most this")
    max_infit: float = setting(2.0, "... and an infit mean square at most this")

    def problems(self) -> list[str]:
        out = [f"{k} is required (--{k})" for k in ("bank", "endpoints", "generator", "registry", "out")
               if not getattr(self, k)]
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in ("batch", "max_items", "new_items") if not is_int(getattr(self, k), 1)]
        out += [f"{k} must be an integer >= 0, got {getattr(self, k)!r}"
                for k in ("rounds", "examples") if not is_int(getattr(self, k), 0)]
        out += [f"{k} must be a positive number, got {getattr(self, k)!r}"
                for k in ("target_se", "spacing", "max_se_b", "max_infit")
                if not (is_number(getattr(self, k), 0) and getattr(self, k) > 0)]
        out += [] if is_number(self.a_floor, 0) else [f"a_floor must be a number >= 0, got {self.a_floor!r}"]
        if not (isinstance(self.values, list) and all(isinstance(v, str) and v for v in self.values)):
            out.append(f"values must be a list of value ids, got {self.values!r}")
        return out

    @property
    def stop_rule(self) -> StopRule:
        return StopRule(target_se=self.target_se, max_items=self.max_items, batch=self.batch)

    @property
    def admit_rules(self) -> AdmitRules:
        return AdmitRules(a_floor=self.a_floor, max_se_b=self.max_se_b, max_infit=self.max_infit)


def load_adaptive_config(path: str | Path | None = None, overrides: dict | None = None) -> AdaptiveConfig:
    return load_settings(AdaptiveConfig, "adaptive", path, overrides)
