"""Training configuration: one frozen dataclass, loaded from YAML plus `key=value` overrides.

    cfg = load_train_config("configs/quickstart.yaml", {"max_epochs": "3"})

Every problem in a config is reported at once, naming the key (or flag) and the fix.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from valuecsv_ray.taxonomy import VALUE_IDS, parse_values

MODES = ("binary", "multilabel")
WEIGHTINGS = ("balanced", "none")


def _f(default, help_: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help_}, **kw)
    return field(default=default, metadata={"help": help_}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training job does; written into every manifest."""

    name: str = _f("valuecsv", "job name; the registry is RUNS_DIR/NAME, re-running resumes it")
    runs_dir: str = _f("runs", "folder holding one registry per job name")
    data: str = _f("sample", "annotated xlsx/csv/jsonl/parquet, or 'sample' (shipped)")
    values: str = _f("all", "'all' or a comma list of value ids to train (binary mode)")
    mode: str = _f("binary", "'binary': one evaluator per value; 'multilabel': one model, 12 outputs")
    backbone: str = _f("tiny", "HF model name or folder (bert-base-chinese), or 'tiny' (offline)")
    max_length: int = _f(512, "max tokens per text in training; longer texts are truncated")
    batch_size: int = _f(16, "texts per batch per worker")
    learning_rate: float = _f(2e-5, "AdamW peak learning rate")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "share of steps with linear learning-rate warm-up")
    max_epochs: int = _f(20, "upper bound on epochs")
    patience: int = _f(5, "stop after this many epochs without a lower validation loss")
    class_weighting: str = _f("balanced", "'balanced': classes weighted by inverse frequency; 'none'")
    seed: int = _f(42, "seed for model init order and batch shuffling")
    split_seed: int = _f(42, "seed of the train/validation/test split")
    split_fractions: list = _f([0.7, 0.2, 0.1], "train/validation/test fractions")
    limit_rows: int | None = _f(None, "use only the first N valid rows (quick runs)")
    skip_bad_rows: bool = _f(False, "leave bad rows out (reported in bad_rows.csv) instead of failing")
    num_workers: int = _f(1, "Ray Train workers per evaluator (DDP when > 1)")
    use_gpu: bool = _f(False, "train on GPUs")
    resources_per_worker: dict | None = _f(None, "e.g. {CPU: 1} or {GPU: 0.5}; default 1 CPU or 1 GPU")
    max_concurrent: int = _f(4, "evaluators training at the same time (each run holds a controller)")
    max_failures: int = _f(2, "worker failures each run recovers from (from its last checkpoint)")
    checkpoints_to_keep: int = _f(2, "checkpoints kept per evaluator run")
    storage_path: str | None = _f(None, "Ray Train storage, shared on multi-node; default RUNS_DIR/NAME/_ray")
    torch_threads: int | None = _f(None, "torch CPU threads per worker; default from Ray's CPU share")

    @property
    def registry_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def ray_storage(self) -> str:
        return self.storage_path or str(self.registry_dir / "_ray")

    @property
    def task_ids(self) -> tuple[str, ...]:
        """One Ray Train run per task: a value id each, or 'multilabel'."""
        if self.mode == "multilabel":
            return ("multilabel",)
        return tuple(v.id for v in parse_values(self.values))

    def problems(self) -> list[str]:
        """Every invalid setting, each naming its key."""
        out = []
        positive = ("max_length", "batch_size", "max_epochs", "patience", "max_concurrent",
                    "checkpoints_to_keep")
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in positive if not _is_int(getattr(self, k), 1)]
        out += [f"{k} must be an integer >= 0, got {getattr(self, k)!r}"
                for k in ("num_workers", "max_failures", "seed", "split_seed")
                if not _is_int(getattr(self, k), 0)]
        if self.mode not in MODES:
            out.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.class_weighting not in WEIGHTINGS:
            out.append(f"class_weighting must be one of {WEIGHTINGS}, got {self.class_weighting!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            out.append(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not (isinstance(self.warmup_ratio, (int, float)) and 0 <= self.warmup_ratio < 1):
            out.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if _is_int(self.max_length, 513) and self.backbone == "tiny":
            out.append("max_length must be <= 512 for the tiny backbone (its position table)")
        if self.limit_rows is not None and not _is_int(self.limit_rows, 10):
            out.append(f"limit_rows must be an integer >= 10, got {self.limit_rows!r}")
        fractions = self.split_fractions
        if not (isinstance(fractions, (list, tuple)) and len(fractions) == 3
                and all(isinstance(f, (int, float)) and f > 0 for f in fractions)
                and abs(sum(fractions) - 1) < 1e-6):
            out.append("split_fractions must be 3 positive numbers summing to 1, "
                       f"got {self.split_fractions!r}")
        try:
            parse_values(self.values)
        except KeyError as e:
            out.append(f"values: {e.args[0]}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            out.append(f"name must be a plain folder name, got {self.name!r}")
        resources = self.resources_per_worker
        if resources is not None and not (
            isinstance(resources, dict)
            and all(isinstance(v, (int, float)) and v >= 0 for v in resources.values())
        ):
            out.append("resources_per_worker must be a mapping such as {CPU: 1} or {GPU: 0.5}")
            resources = None
        gpus = (resources or {}).get("GPU", 1 if self.use_gpu else 0)
        if _is_int(self.num_workers, 2) and 0 < gpus < 1:
            out.append("fractional GPUs work only with num_workers: 1 (NCCL needs a whole GPU per rank)")
        return out

    def worker_resources(self) -> dict:
        if self.resources_per_worker:
            return dict(self.resources_per_worker)
        return {"GPU": 1} if self.use_gpu else {"CPU": 1}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AuditConfig:
    """Everything that decides what an audit does (`valuecsv-ray audit`, jobs/audit.py)."""

    inputs: list = _f([], "corpus files, folders, globs or URIs (jsonl, csv, parquet, xlsx)")
    registry: str = _f("", "registry folder written by `valuecsv-ray train`")
    out: str = _f("", "output folder (a path; on several nodes a shared mount): scores/, quarantine/, "
                      "summary.json; re-running resumes")
    text_column: str | None = _f(None, "text column; default 'response', else 'text'")
    model_column: str = _f("model", "column naming the LLM that wrote the text")
    prompt_column: str = _f("prompt", "column holding the prompt / question")
    id_column: str = _f("id", "column with a unique row id; default: derived from file and position")
    wide: bool = _f(False, "wide input: a question column and one answer column per LLM")
    question_column: str | None = _f(None, "wide input: the question column; default the first")
    default_model: str = _f("unknown", "model name for rows without a model column")
    batch_size: int = _f(256, "rows per scoring call of an actor")
    actors: int = _f(1, "scoring actors (each holds the twelve models)")
    cpus_per_actor: float = _f(1.0, "CPUs reserved per scoring actor (also its torch threads)")
    gpus_per_actor: float = _f(0.0, "GPUs per scoring actor; fractions pack several on one GPU")
    device: str | None = _f(None, "'cpu' or 'cuda'; default cuda when gpus_per_actor > 0")
    token_budget: int = _f(16384, "engine tokens per forward batch")
    read_chunk_rows: int = _f(5000, "rows per block read from a file")

    def problems(self) -> list[str]:
        out = []
        if not (isinstance(self.inputs, (list, tuple)) and self.inputs
                and all(isinstance(i, str) and i for i in self.inputs)):
            out.append("inputs: give at least one corpus file, folder, glob or URI")
        out += [f"{k} is required" for k in ("registry", "out") if not getattr(self, k)]
        if "://" in (self.out or ""):
            out.append(f"out must be a folder path, got the URI {self.out!r}: the audit writes its "
                       "output to a file system (on several nodes, a mount they all share, e.g. NFS); "
                       "copy it to object storage afterwards")
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in ("batch_size", "actors", "token_budget", "read_chunk_rows")
                if not _is_int(getattr(self, k), 1)]
        for key in ("cpus_per_actor", "gpus_per_actor"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
                out.append(f"{key} must be a number >= 0, got {value!r}")
        if self.device not in (None, "cpu", "cuda"):
            out.append(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


_FLOAT_KEYS = ("learning_rate", "weight_decay", "warmup_ratio", "cpus_per_actor", "gpus_per_actor")


def changed_settings(old: dict, new: dict, runtime_keys: tuple[str, ...]) -> list[str]:
    """Keys whose values differ between two resolved configs, leaving out `runtime_keys`
    (settings a resumed job may change); what a resume refuses."""
    return [k for k in sorted(set(old) | set(new)) if k not in runtime_keys and old.get(k) != new.get(k)]


class ConfigError(ValueError):
    """One or more invalid settings; the message lists all of them."""


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict:
    """'key=value' strings into a dict; values are parsed as YAML (3 -> int, [a, b] -> list)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set max_epochs=3")
        out[key.strip()] = _scalar(yaml.safe_load(raw)) if raw.strip() else None
    return out


def _scalar(value):
    """YAML 1.1 reads '1e-3' as a string; read number-like strings as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_train_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then overrides; raises ConfigError listing every problem."""
    return _load(TrainConfig, "training", path, overrides)


def load_audit_config(path: str | Path | None = None, overrides: dict | None = None) -> AuditConfig:
    """As load_train_config, for an audit."""
    return _load(AuditConfig, "audit", path, overrides)


def _load(cls, kind: str, path: str | Path | None, overrides: dict | None):
    settings: dict = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        settings.update(loaded)
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = {k: _scalar(v) if k in _FLOAT_KEYS else v for k, v in settings.items()}
    known = [f.name for f in fields(cls)]
    errors = []
    for key in settings:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            where = f" in {path}" if path else ""
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            errors.append(f"unknown setting {key!r}{where}{suggestion}")
    if "values" in settings and isinstance(settings["values"], (list, tuple)):
        settings["values"] = ",".join(map(str, settings["values"]))
    cfg = cls(**{k: v for k, v in settings.items() if k in known})
    errors += cfg.problems()
    if errors:
        raise ConfigError(f"invalid {kind} config:\n  " + "\n  ".join(errors))
    return cfg


__all__ = ["TrainConfig", "AuditConfig", "ConfigError", "load_train_config", "load_audit_config",
           "parse_overrides", "changed_settings", "VALUE_IDS"]
