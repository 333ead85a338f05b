"""An audit's settings (`valuecsv-ray audit`, jobs/audit.py, configs/audit/): its inputs, where the
corpus columns are, the registry and how the engine scores.

    cfg = load_audit_config("configs/audit/cpu.yaml", {"inputs": ["answers.jsonl"], "out": "audit/run1"})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.config.scoring import EvaluatorChoice, ScoringSettings
from valuecsv_ray.settings import (
    flatten,
    is_int,
    is_number,
    load_settings,
    nested,
    runtime_keys,
    setting,
)
from valuecsv_ray.tables import SUPPORTED


@dataclass(frozen=True)
class InputSpec:
    """Where the columns of an LLM-output corpus are (`audit.readers`)."""

    text_column: str | None = setting(None, "text column; default 'response', else 'text'")
    model_column: str = setting("model", "column naming the LLM that wrote the text")
    prompt_column: str = setting("prompt", "column holding the prompt / question")
    id_column: str = setting("id", "column with a unique row id; default: derived from file and position")
    wide: bool = setting(False, "wide input: a question column and one answer column per LLM")
    question_column: str | None = setting(None, "wide input: the question column; default the first")
    default_model: str = setting("unknown", "model name for rows without a model column")
    sheet: str | None = setting(None, "xlsx inputs: the sheet to read; default the first")
    status_column: str = setting("status", "column with a collect status (valuecsv-ray collect); rows "
                                 "whose status is not 'ok' are quarantined with it, never scored")


@dataclass(frozen=True)
class AuditConfig:
    """Everything that decides what an audit does (`valuecsv-ray audit`, jobs/audit.py)."""

    inputs: list = setting([], f"corpus files ({SUPPORTED}), folders, globs or URIs", cli=False)
    registry: str = setting("", "registry folder or s3://, gs:// URI written by `valuecsv-ray train`")
    out: str = setting("", "output folder, a path or an s3://, gs:// URI (on several nodes: object "
                           "storage or a shared mount): scores/, quarantine/, stats/, summary.json; "
                           "re-running resumes", identity=False)
    input: InputSpec = nested(InputSpec, "where the corpus columns are")
    scorer: EvaluatorChoice = nested(EvaluatorChoice, "the registry's evaluators or its student")
    scoring: ScoringSettings = nested(ScoringSettings, "how the engine runs")
    batch_size: int = setting(256, "rows per scoring call of an actor", identity=False)
    actors: int = setting(1, "scoring actors (each holds all the registry's models)", identity=False)
    cpus_per_actor: float = setting(1.0, "CPUs reserved per scoring actor (also its torch threads)",
                                    identity=False)
    gpus_per_actor: float = setting(0.0, "GPUs per scoring actor; fractions pack several on one GPU",
                                    identity=False)
    read_chunk_rows: int = setting(5000, "rows per block read from a file", identity=False)
    all_prompts: bool = setting(False, "statistics over every row, not only the prompts every model "
                                "answered", identity=False)

    def problems(self) -> list[str]:
        out = []
        if not (isinstance(self.inputs, (list, tuple)) and self.inputs
                and all(isinstance(i, str) and i for i in self.inputs)):
            out.append("inputs: give at least one corpus file, folder, glob or URI")
        out += [f"{k} is required" for k in ("registry", "out") if not getattr(self, k)]
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in ("batch_size", "actors", "read_chunk_rows") if not is_int(getattr(self, k), 1)]
        out += [f"{k} must be a number >= 0, got {getattr(self, k)!r}"
                for k in ("cpus_per_actor", "gpus_per_actor") if not is_number(getattr(self, k), 0)]
        return out

    @property
    def device(self) -> str:
        return self.scoring.device or ("cuda" if self.gpus_per_actor > 0 else "cpu")

    def to_dict(self) -> dict:
        return flatten(self)



def load_audit_config(path: str | Path | None = None, overrides: dict | None = None) -> AuditConfig:
    """As load_train_config, for an audit."""
    return load_settings(AuditConfig, "audit", path, overrides)




AUDIT_RUNTIME_KEYS = runtime_keys(AuditConfig)
