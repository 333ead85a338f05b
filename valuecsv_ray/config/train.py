"""A training job's settings (`valuecsv-ray train`, jobs/train_all.py, configs/train/).

    cfg = load_train_config("configs/train/quickstart.yaml", {"max_epochs": 3})
    cfg.hparams.learning_rate, cfg.registry_dir
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.config.scoring import AGGREGATIONS, DEFAULT_TOKEN_BUDGET
from valuecsv_ray.settings import (
    flatten,
    is_int,
    is_number,
    load_settings,
    nested,
    runtime_keys,
    setting,
)
from valuecsv_ray.storage import cache_root, is_uri
from valuecsv_ray.tables import SUPPORTED
from valuecsv_ray.taxonomy import DEFAULT_TAXONOMY, Taxonomy, TaxonomyError, load_taxonomy

MODES = ("binary", "multilabel")
WEIGHTINGS = ("balanced", "none")


@dataclass(frozen=True)
class Hyperparameters:
    """What one evaluator's Ray Train run needs besides its data (TaskSpec holds it)."""

    PRECISIONS = ("auto", "bf16", "fp32")  # a class constant, not a setting (no annotation)

    backbone: str = setting("tiny", "HF model name or folder (bert-base-chinese), or 'tiny' (offline)")
    max_length: int = setting(512, "tokens per window: training truncates here, scoring windows long texts")
    stride: int | None = setting(None, "tokens between window starts for long texts; default half a window")
    aggregate: str = setting("max", "how window probabilities make a text's: 'max' (some passage "
                             "expresses the value) or 'mean'")
    batch_size: int = setting(16, "texts per batch per worker")
    learning_rate: float = setting(2e-5, "AdamW peak learning rate")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    warmup_ratio: float = setting(0.1, "share of steps with linear learning-rate warm-up")
    max_epochs: int = setting(20, "upper bound on epochs")
    patience: int = setting(5, "stop after this many epochs without a lower validation loss")
    class_weighting: str = setting("balanced", "'balanced': classes weighted by inverse frequency; 'none'")
    seed: int = setting(42, "seed for model init order and batch shuffling")
    precision: str = setting("auto", "'auto' (bf16 autocast on CUDA when the GPU supports bf16, fp32 "
                             "elsewhere), 'bf16', 'fp32' (no autocast, no TF32: the reference)")
    torch_threads: int | None = setting(None, "torch CPU threads per worker; default from Ray's CPU share",
                                        identity=False)
    eval_token_budget: int = setting(DEFAULT_TOKEN_BUDGET, "tokens per batch when scoring validation "
                                     "and test texts", identity=False, cli=False)

    def problems(self) -> list[str]:
        positive = ("max_length", "batch_size", "max_epochs", "patience", "eval_token_budget")
        out = [f"{k} must be a positive integer, got {getattr(self, k)!r}"
               for k in positive if not is_int(getattr(self, k), 1)]
        out += [f"seed must be an integer >= 0, got {self.seed!r}"] if not is_int(self.seed, 0) else []
        if self.stride is not None and not (is_int(self.stride, 1) and (
                not is_int(self.max_length, 3) or self.stride <= self.max_length - 2)):
            out.append(f"stride must be a positive integer <= max_length - 2 (windows would skip text), "
                       f"got {self.stride!r}")
        if self.aggregate not in AGGREGATIONS:
            out.append(f"aggregate must be one of {AGGREGATIONS}, got {self.aggregate!r}")
        if self.class_weighting not in WEIGHTINGS:
            out.append(f"class_weighting must be one of {WEIGHTINGS}, got {self.class_weighting!r}")
        if self.precision not in self.PRECISIONS:
            out.append(f"precision must be one of {self.PRECISIONS}, got {self.precision!r}")
        if not (is_number(self.learning_rate, 0) and 0 < self.learning_rate < 1):
            out.append(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not (is_number(self.warmup_ratio, 0) and self.warmup_ratio < 1):
            out.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if is_int(self.max_length, 513) and self.backbone == "tiny":
            out.append("max_length must be <= 512 for the tiny backbone (its position table)")
        return out


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training job does; written into every manifest."""

    name: str = setting("valuecsv", "job name; the registry is RUNS_DIR/NAME, re-running resumes it")
    runs_dir: str = setting("runs", "folder or s3://, gs:// URI holding one registry per job name",
                            identity=False)
    data: str = setting("sample", f"annotated data ({SUPPORTED}), or 'sample' (shipped)")
    taxonomy: str = setting(DEFAULT_TAXONOMY, "the value set: a built-in name or a taxonomy YAML file")
    values: str = setting("all", "'all' or a comma list of value ids to train (binary mode)")
    mode: str = setting("binary", "'binary': one evaluator per value; 'multilabel': one model, all outputs")
    split_seed: int = setting(42, "seed of the train/validation/test split")
    split_fractions: list = setting([0.7, 0.2, 0.1], "train/validation/test fractions", cli=False)
    limit_rows: int | None = setting(None, "use only the first N valid rows (quick runs)")
    skip_bad_rows: bool = setting(False, "leave bad rows out (reported in bad_rows.csv) instead of failing")
    hparams: Hyperparameters = nested(Hyperparameters, "each evaluator's training settings")
    num_workers: int = setting(1, "Ray Train workers per evaluator (DDP when > 1)", identity=False)
    use_gpu: bool = setting(False, "train on GPUs", identity=False)
    resources_per_worker: dict | None = setting(None, "e.g. {CPU: 1} or {GPU: 0.5}; default 1 CPU or 1 GPU",
                                                identity=False, cli=False)
    max_concurrent: int = setting(4, "evaluators training at the same time (each run holds a controller)",
                                  identity=False)
    max_failures: int = setting(2, "worker failures each run recovers from (from its last checkpoint)",
                                identity=False)
    checkpoints_to_keep: int = setting(2, "checkpoints kept per evaluator run", identity=False)
    storage_path: str | None = setting(None, "Ray Train storage, shared on multi-node; default "
                                       "RUNS_DIR/NAME/_ray", identity=False)

    @property
    def registry_uri(self) -> str | None:
        """RUNS_DIR/NAME when RUNS_DIR is on object storage (s3://, gs://), else None."""
        return f"{self.runs_dir.rstrip('/')}/{self.name}" if is_uri(self.runs_dir) else None

    @property
    def registry_dir(self) -> Path:
        """Where the registry is built: RUNS_DIR/NAME, or for object storage a local staging
        folder ($VALUECSV_CACHE/staging/NAME) published to RUNS_DIR/NAME when complete."""
        if self.registry_uri:
            return cache_root().parent / "staging" / self.name
        return Path(self.runs_dir) / self.name

    @property
    def ray_storage(self) -> str:
        if self.storage_path:
            return self.storage_path
        return f"{self.registry_uri}/_ray" if self.registry_uri else str(self.registry_dir / "_ray")

    @property
    def task_ids(self) -> tuple[str, ...]:
        """One Ray Train run per task: a value id each, or 'multilabel'."""
        return task_ids(self.mode, self.values, load_taxonomy(self.taxonomy))

    def problems(self) -> list[str]:
        """Every invalid setting, each naming its key."""
        out = [f"{k} must be a positive integer, got {getattr(self, k)!r}"
               for k in ("max_concurrent", "checkpoints_to_keep") if not is_int(getattr(self, k), 1)]
        out += [f"{k} must be an integer >= 0, got {getattr(self, k)!r}"
                for k in ("num_workers", "max_failures", "split_seed") if not is_int(getattr(self, k), 0)]
        if self.mode not in MODES:
            out.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.limit_rows is not None and not is_int(self.limit_rows, 10):
            out.append(f"limit_rows must be an integer >= 10, got {self.limit_rows!r}")
        fractions = self.split_fractions
        if not (isinstance(fractions, (list, tuple)) and len(fractions) == 3
                and all(is_number(f, 0) and f > 0 for f in fractions) and abs(sum(fractions) - 1) < 1e-6):
            out.append(f"split_fractions must be 3 positive numbers summing to 1, got {fractions!r}")
        try:
            load_taxonomy(self.taxonomy).parse(self.values)
        except TaxonomyError as e:
            out.append(f"taxonomy: {e}")
        except KeyError as e:
            out.append(f"values: {e.args[0]}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            out.append(f"name must be a plain folder name, got {self.name!r}")
        resources = self.resources_per_worker
        if resources is not None and not (
                isinstance(resources, dict) and all(is_number(v, 0) for v in resources.values())):
            out.append("resources_per_worker must be a mapping such as {CPU: 1} or {GPU: 0.5}")
            resources = None
        gpus = (resources or {}).get("GPU", 1 if self.use_gpu else 0)
        if is_int(self.num_workers, 2) and 0 < gpus < 1:
            out.append("fractional GPUs work only with num_workers: 1 (NCCL needs a whole GPU per rank)")
        return out

    def worker_resources(self) -> dict:
        return worker_resources(self.resources_per_worker, self.use_gpu)

    def to_dict(self) -> dict:
        return flatten(self)


def task_ids(mode: str, values: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    """The training tasks of a job: one per chosen value (binary mode), or 'multilabel'."""
    if mode == "multilabel":
        return ("multilabel",)
    return tuple(label.id for label in taxonomy.parse(values))



def worker_resources(resources_per_worker: dict | None, use_gpu: bool) -> dict:
    """A Ray Train worker's resources: the ones given, else one GPU or one CPU."""
    if resources_per_worker:
        return dict(resources_per_worker)
    return {"GPU": 1} if use_gpu else {"CPU": 1}


def load_train_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then overrides; raises ConfigError listing every problem."""
    return load_settings(TrainConfig, "training", path, overrides)




TRAIN_RUNTIME_KEYS = runtime_keys(TrainConfig)
