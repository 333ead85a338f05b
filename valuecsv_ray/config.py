"""Every setting of valuecsv-ray, declared once (see `settings.py` for how they load).

    cfg = load_train_config("configs/train/quickstart.yaml", {"max_epochs": 3})
    cfg.hparams.learning_rate, cfg.registry_dir

- `TrainConfig`: a training job; it holds the `Hyperparameters` each evaluator run gets.
- `AuditConfig`: an audit; it holds an `InputSpec` (where the corpus columns are) and the
  `ScoringSettings` the engine runs with.
- `ServeConfig`: the Serve app's args (`serve_configs/*.yaml` `args:` and `valuecsv-ray serve`);
  it holds the same `ScoringSettings`. Both hold an `EvaluatorChoice` (ensemble or student).
- `DistillConfig`: a student distilled from a registry's ensemble; it holds `Hyperparameters`.
No torch, no Ray: the CLI builds its options from these classes at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valuecsv_ray.settings import (
    ConfigError,
    build,
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
AGGREGATIONS = ("max", "mean")  # as valuecsv_ray.scoring.core (which needs torch)
FORWARDS = ("auto", "padded", "varlen", "slim")  # as valuecsv_ray.scoring.engine
ATTENTIONS = ("auto", "flash", "cudnn")  # packed attention kernels (valuecsv_ray.scoring.varlen)
GELUS = ("auto", "separate", "fused")
SCORING_PRECISIONS = ("auto", "bf16", "fp8")
DEFAULT_TOKEN_BUDGET = 16384  # CPU
# What 'auto' means per device (the engine reads these; the CUDA ones come from the GPU suite's runs)
CPU_SCORING_DEFAULTS = {"forward": "padded", "token_budget": DEFAULT_TOKEN_BUDGET, "attention": "flash",
                        "gelu": "separate", "precision": "fp32"}
CUDA_SCORING_DEFAULTS = {"forward": "slim", "token_budget": 131072, "attention": "flash",
                         "gelu": "separate", "precision": "bf16"}
SLIM_ONLY = ("attention", "gelu", "precision")  # options of the slim forward alone
SCORING_CHOICES = {"forward": FORWARDS, "attention": ATTENTIONS, "gelu": GELUS,
                   "precision": SCORING_PRECISIONS}


def scoring_choice_problems(chosen: dict[str, str], forward: str) -> list[str]:
    """What is wrong with the scoring choices (`SCORING_CHOICES` keys) as asked for, with `forward`
    the forward they will run on: unknown values, and slim-only options with another forward.
    ScoringSettings and the engine (called directly) both check through here."""
    out = [f"{key} must be one of {allowed}, got {chosen[key]!r}"
           for key, allowed in SCORING_CHOICES.items() if chosen[key] not in allowed]
    slim_only = [f"{k} {chosen[k]!r}" for k in SLIM_ONLY if chosen[k] not in ("auto", "bf16")]
    if slim_only and forward in ("padded", "varlen"):
        out.append(f"{', '.join(slim_only)}: options of forward 'slim', not of forward {forward!r}")
    return out


@dataclass(frozen=True)
class ScoringSettings:
    """How the engine runs; no effect on a score beyond float rounding."""

    token_budget: int | None = setting(None, "engine tokens per forward batch (padded: rows x padded "
                                       "length; varlen/slim: real tokens); default "
                                       f"{CPU_SCORING_DEFAULTS['token_budget']} on CPU, "
                                       f"{CUDA_SCORING_DEFAULTS['token_budget']} on CUDA", identity=False)
    device: str | None = setting(None, "'cpu' or 'cuda'; default cuda when present (audit: when "
                                 "gpus_per_actor > 0)", identity=False)
    forward: str = setting("auto", "how the models run: 'padded' (SDPA over padded batches), 'varlen' "
                           "(one packed token stream, the HF model with varlen attention; CUDA), "
                           "'slim' (packed, fused QKV, last layer on [CLS] rows only; CUDA), 'auto' "
                           f"({CPU_SCORING_DEFAULTS['forward']} on CPU, {CUDA_SCORING_DEFAULTS['forward']} "
                           "on CUDA)", identity=False)
    compile: bool = setting(False, "torch.compile the slim forward (CUDA; first batches compile)",
                            identity=False)
    attention: str = setting("auto", "slim forward's attention kernel on CUDA: 'flash' (FlashAttention-2 "
                             "varlen), 'cudnn' (cuDNN SDPA over ragged batches), 'auto' "
                             f"({CUDA_SCORING_DEFAULTS['attention']}; another kernel that fails its load "
                             "check falls back to flash)", identity=False)
    gelu: str = setting("auto", "slim forward's GELU: 'fused' into the GEMM that produces it (cuBLASLt "
                        "epilogue, tanh approximation on CUDA), 'separate' (its own kernel), 'auto' "
                        f"({CUDA_SCORING_DEFAULTS['gelu']} on CUDA)", identity=False)
    precision: str = setting("auto", "model precision: 'auto' (fp32 on CPU, bf16 on CUDA), 'bf16', 'fp8' "
                             "(slim forward: the encoder's GEMMs in fp8 with per-row scales, Hopper; "
                             "checked at load against the padded forward)", identity=False)

    def problems(self) -> list[str]:
        out = [] if self.token_budget is None or is_int(self.token_budget, 512) else [
            f"token_budget must be an integer >= 512, got {self.token_budget!r}"]
        if self.device not in (None, "cpu", "cuda"):
            out.append(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        return out + scoring_choice_problems({k: getattr(self, k) for k in SCORING_CHOICES}, self.forward)

    def engine_kwargs(self) -> dict:
        """Keyword arguments of `Ensemble` (besides the device)."""
        return {"token_budget": self.token_budget, "forward": self.forward, "compile": self.compile,
                "attention": self.attention, "gelu": self.gelu, "precision": self.precision}


EVALUATOR_CHOICES = ("ensemble", "student")  # as valuecsv_ray.registry.students


@dataclass(frozen=True)
class EvaluatorChoice:
    """Which of a registry's scorers runs: its evaluators, or the student distilled from them."""

    evaluators: str = setting("ensemble", "'ensemble': the registry's evaluators; 'student': the student "
                              "distilled from them (REGISTRY/students/STUDENT, `valuecsv-ray distill`), "
                              "one encoder pass per window for all values")
    student: str = setting("student", "with evaluators 'student': which of the registry's students")
    min_agreement: float = setting(0.95, "with evaluators 'student': refuse a student whose decisions agree "
                                   "with the ensemble's on less than this share of held-out texts for "
                                   "any value", identity=False)

    def problems(self) -> list[str]:
        out = [] if self.evaluators in EVALUATOR_CHOICES else [
            f"evaluators must be one of {EVALUATOR_CHOICES}, got {self.evaluators!r}"]
        if not isinstance(self.student, str) or not self.student or "/" in self.student:
            out.append(f"student must be a plain name, got {self.student!r}")
        if not (is_number(self.min_agreement, 0) and self.min_agreement <= 1):
            out.append(f"min_agreement must be in [0, 1], got {self.min_agreement!r}")
        return out

    def kwargs(self) -> dict:
        """Keyword arguments of `registry.students.scorer_location` (besides the registry)."""
        return {"evaluators": self.evaluators, "student": self.student, "min_agreement": self.min_agreement}


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
        if self.resources_per_worker:
            return dict(self.resources_per_worker)
        return {"GPU": 1} if self.use_gpu else {"CPU": 1}

    def to_dict(self) -> dict:
        return flatten(self)


def task_ids(mode: str, values: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    """The training tasks of a job: one per chosen value (binary mode), or 'multilabel'."""
    if mode == "multilabel":
        return ("multilabel",)
    return tuple(label.id for label in taxonomy.parse(values))


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


@dataclass(frozen=True)
class ServeConfig:
    """The Serve app's args (`args:` in serve_configs/*.yaml, `valuecsv-ray serve` options)."""

    registry: str = setting("", "registry folder or s3://, gs:// URI written by `valuecsv-ray train`")
    token: str | None = setting(None, "Bearer token; default: $VALUECSV_SERVE_TOKEN, none = open", cli=False)
    max_texts_per_request: int = setting(64, "more texts in one request: 413")
    max_body_bytes: int = setting(1_000_000, "larger request bodies: 413")
    max_text_chars: int = setting(100_000, "longer single texts: 413")
    scorer: EvaluatorChoice = nested(EvaluatorChoice, "the registry's evaluators or its student")
    scoring: ScoringSettings = nested(ScoringSettings, "how the engine runs")
    max_batch_size: int = setting(32, "requests gathered into one engine call")
    batch_wait_timeout_s: float = setting(0.01, "how long a batch waits to fill")
    max_ongoing_requests: int = setting(128, "requests a replica holds at once (>= max_batch_size)")
    max_queued_requests: int = setting(256, "requests waiting beyond this get 503")

    def problems(self) -> list[str]:
        out = ["registry is required"] if not self.registry else []
        out += [f"{k} must be a positive integer, got {getattr(self, k)!r}"
                for k in ("max_texts_per_request", "max_text_chars", "max_batch_size",
                          "max_ongoing_requests", "max_queued_requests") if not is_int(getattr(self, k), 1)]
        if not is_int(self.max_body_bytes, 1024):
            out.append(f"max_body_bytes must be an integer >= 1024, got {self.max_body_bytes!r}")
        if not is_number(self.batch_wait_timeout_s, 0):
            out.append(f"batch_wait_timeout_s must be a number >= 0, got {self.batch_wait_timeout_s!r}")
        if not out and self.max_ongoing_requests < self.max_batch_size:
            out.append(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                       f"({self.max_batch_size}), or batches never fill")
        return out

    def batching(self) -> dict:
        """The deployment's user_config: changeable by `serve deploy` without a restart."""
        return {"max_batch_size": self.max_batch_size, "batch_wait_timeout_s": self.batch_wait_timeout_s}

    def to_dict(self) -> dict:
        return flatten(self)


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
        if self.resources_per_worker:
            return dict(self.resources_per_worker)
        return {"GPU": 1} if self.use_gpu else {"CPU": 1}

    def to_dict(self) -> dict:
        return flatten(self)


def load_distill_config(path: str | Path | None = None, overrides: dict | None = None) -> DistillConfig:
    """As load_train_config, for a student."""
    return load_settings(DistillConfig, "distill", path, overrides)


def load_train_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then overrides; raises ConfigError listing every problem."""
    return load_settings(TrainConfig, "training", path, overrides)


def load_audit_config(path: str | Path | None = None, overrides: dict | None = None) -> AuditConfig:
    """As load_train_config, for an audit."""
    return load_settings(AuditConfig, "audit", path, overrides)


def serve_config(args: dict) -> ServeConfig:
    """The Serve app's args (flat, as in a YAML's `args:`), validated."""
    return build(ServeConfig, "serve", args, where=" in the Serve app's args")


TRAIN_RUNTIME_KEYS = runtime_keys(TrainConfig)
AUDIT_RUNTIME_KEYS = runtime_keys(AuditConfig)

__all__ = ["TrainConfig", "Hyperparameters", "AuditConfig", "InputSpec", "ScoringSettings", "ServeConfig",
           "EvaluatorChoice", "DistillConfig", "load_distill_config",
           "ConfigError", "load_train_config", "load_audit_config", "serve_config", "TRAIN_RUNTIME_KEYS",
           "AUDIT_RUNTIME_KEYS"]
