"""Every setting of valuecsv-ray, declared once (see `settings.py` for how they load), one module
per command that reads them:

    from valuecsv_ray.config import load_train_config
    cfg = load_train_config("configs/train/quickstart.yaml", {"max_epochs": 3})

- `scoring`: `ScoringSettings` (how the engine runs) and `EvaluatorChoice` (ensemble or student),
  held by the audit's and the Serve app's settings.
- `train`: `TrainConfig`, holding the `Hyperparameters` each evaluator run gets.
- `audit`: `AuditConfig`, holding an `InputSpec` (where the corpus columns are).
- `serve`: `ServeConfig`, the Serve app's args (`serve_configs/*.yaml` `args:`, `valuecsv-ray serve`).
- `distill`: `DistillConfig`, a student distilled from a registry's ensemble.
(The collect and eval settings live in their rooms: collect/config.py, eval/config.py.)
No torch, no Ray: the CLI builds its options from these classes at import time.
"""

from valuecsv_ray.config.audit import AUDIT_RUNTIME_KEYS, AuditConfig, InputSpec, load_audit_config
from valuecsv_ray.config.distill import DistillConfig, load_distill_config
from valuecsv_ray.config.scoring import (
    AGGREGATIONS,
    ATTENTIONS,
    CPU_SCORING_DEFAULTS,
    CUDA_SCORING_DEFAULTS,
    DEFAULT_TOKEN_BUDGET,
    EVALUATOR_CHOICES,
    FORWARDS,
    GELUS,
    SCORING_CHOICES,
    SCORING_PRECISIONS,
    SLIM_ONLY,
    EvaluatorChoice,
    ScoringSettings,
    scoring_choice_problems,
)
from valuecsv_ray.config.serve import ServeConfig, serve_config
from valuecsv_ray.config.train import (
    MODES,
    TRAIN_RUNTIME_KEYS,
    WEIGHTINGS,
    Hyperparameters,
    TrainConfig,
    load_train_config,
    task_ids,
)
from valuecsv_ray.settings import ConfigError

__all__ = ["AGGREGATIONS", "ATTENTIONS", "AUDIT_RUNTIME_KEYS", "CPU_SCORING_DEFAULTS",
           "CUDA_SCORING_DEFAULTS", "DEFAULT_TOKEN_BUDGET", "EVALUATOR_CHOICES", "FORWARDS", "GELUS",
           "MODES", "SCORING_CHOICES", "SCORING_PRECISIONS", "SLIM_ONLY", "TRAIN_RUNTIME_KEYS",
           "WEIGHTINGS", "AuditConfig", "ConfigError", "DistillConfig", "EvaluatorChoice",
           "Hyperparameters", "InputSpec", "ScoringSettings", "ServeConfig", "TrainConfig",
           "load_audit_config", "load_distill_config", "load_train_config", "scoring_choice_problems",
           "serve_config", "task_ids"]
