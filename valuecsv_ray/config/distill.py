"""A distillation's settings (`valuecsv-ray distill`, jobs/distill.py, configs/distill/): a student
with one encoder and a head per value, fitted to a registry's ensemble.

    cfg = load_distill_config("configs/distill/tiny.yaml", {"registry": "runs/valuecsv"})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.config.audit import InputSpec
from valuecsv_ray.config.train import Hyperparameters, worker_resources
from valuecsv_ray.settings import (
    flatten,
    is_int,
    is_number,
    load_settings,
    nested,
    setting,
)


@dataclass(frozen=True)
class DistillConfig:
    """A student distilled from a registry's ensemble (`valuecsv-ray distill`, train.distill)."""

    registry: str = setting("", "the registry whose evaluators teach (a folder written by `valuecsv-ray "
                            "train`); the student is written to REGISTRY/students/NAME")
    name: str = setting("student", "the student's name")
    corpus: list = setting([], "unlabeled texts the ensemble labels for the student: files, folders or "
                           "globs (collected answers, an audit input); the registry's annotated texts "
                           "are always used", cli=False)
    input: InputSpec = nested(InputSpec, "where the corpus columns are")
    data: str | None = setting(None, "the registry's annotated data; default the file its job.json records")
    gold_weight: float = setting(0.3, "share of the gold-label term in the loss on annotated texts (the "
                                 "rest: the ensemble's probabilities)")
    holdout_fraction: float = setting(0.1, "share of corpus rows held out for validation, and as much "
                                      "again for the agreement measurement")
    window_pieces: bool = setting(False, "also train on window-sized pieces of the training texts, "
                                  "labelled by the ensemble: the window function the engine's "
                                  "aggregation composes, not only each text's max or mean")
    raw_targets: bool = setting(False, "learn the ensemble's probabilities before its temperature "
                                "scaling (its own ranking, at full contrast); the student's temperature "
                                "and thresholds are still fitted to the calibrated ensemble")
    hparams: Hyperparameters = nested(Hyperparameters, "the student's training settings (backbone: "
                                      "it may be smaller than the evaluators')")
    num_workers: int = setting(1, "Ray Train workers (DDP when > 1)", identity=False)
    use_gpu: bool = setting(False, "train on GPUs", identity=False)
    resources_per_worker: dict | None = setting(None, "e.g. {CPU: 1} or {GPU: 1}; default 1 CPU or 1 GPU",
                                                identity=False, cli=False)
    max_failures: int = setting(2, "worker failures the run recovers from (from its last checkpoint)",
                                identity=False)
    teacher_actors: int = setting(1, "audit actors scoring the texts with the ensemble", identity=False)
    cpus_per_actor: float = setting(1.0, "CPUs per audit actor (also its torch threads)", identity=False)
    teacher_batch_size: int = setting(256, "rows per scoring call of an audit actor", identity=False)

    def problems(self) -> list[str]:
        out = ["registry is required"] if not self.registry else []
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name.startswith("."):
            out.append(f"name must be a plain folder name, got {self.name!r}")
        corpus = self.corpus
        if not (isinstance(corpus, (list, tuple)) and all(isinstance(c, str) and c for c in corpus)):
            out.append("corpus must be a list of files, folders or globs")
        if not (is_number(self.gold_weight, 0) and self.gold_weight <= 1):
            out.append(f"gold_weight must be in [0, 1], got {self.gold_weight!r}")
        if not (is_number(self.holdout_fraction, 0) and 0 < self.holdout_fraction <= 0.25):
            out.append(f"holdout_fraction must be in (0, 0.25], got {self.holdout_fraction!r}")
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in ("num_workers", "teacher_actors", "teacher_batch_size")
                if not is_int(getattr(self, k), 1)]
        if not is_number(self.cpus_per_actor, 0):
            out.append(f"cpus_per_actor must be a number >= 0, got {self.cpus_per_actor!r}")
        return out

    def worker_resources(self) -> dict:
        return worker_resources(self.resources_per_worker, self.use_gpu)

    def to_dict(self) -> dict:
        return flatten(self)


def load_distill_config(path: str | Path | None = None, overrides: dict | None = None) -> DistillConfig:
    """As load_train_config, for a student."""
    return load_settings(DistillConfig, "distill", path, overrides)
