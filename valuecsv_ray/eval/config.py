"""The settings of an evaluation (`valuecsv-ray eval`, YAML files under configs/eval/).

    cfg = load_eval_config("configs/eval/stub.yaml", {"out": "eval/run1"})
    cfg.collect.endpoints, cfg.registry, cfg.profiles

The collect settings are held (their keys are top-level in YAML and --set, as for `collect`);
the eval adds the registry that scores the answers and how the leaderboard ranks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.collect.config import CollectConfig
from valuecsv_ray.resampling import N_BOOT
from valuecsv_ray.settings import is_int, load_settings, nested, setting


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation: collect -> audit with `registry` -> leaderboard per profile -> report."""

    collect: CollectConfig = nested(CollectConfig, "how the answers are collected (prompts, endpoints, out)")
    registry: str = setting("", "registry that scores the answers: a folder written by `valuecsv-ray train`, "
                                "or its s3://, gs:// URI")
    profiles: list = setting(
        [],
        "leaderboard weight profiles: presets (`valuecsv-ray profiles` lists them) or YAML files; "
        "default: every preset of the registry's taxonomy",
        cli=False,
    )
    n_boot: int = setting(N_BOOT, "bootstrap resamples for the leaderboard's intervals", identity=False)

    @property
    def out(self) -> str:
        return self.collect.out

    def problems(self) -> list[str]:
        out = [] if self.registry else ["registry is required (--registry)"]
        if not (isinstance(self.profiles, list) and all(isinstance(p, str) and p for p in self.profiles)):
            out.append(f"profiles must be a list of preset names or YAML files, got {self.profiles!r}")
        if not is_int(self.n_boot, 1):
            out.append(f"n_boot must be a positive integer, got {self.n_boot!r}")
        return out


def load_eval_config(path: str | Path | None = None, overrides: dict | None = None) -> EvalConfig:
    return load_settings(EvalConfig, "eval", path, overrides)
