"""Scoring settings: how the engine runs (forward, token budget, kernels, precision) and which of a
registry's scorers runs (the ensemble or a distilled student); held by the audit's and the Serve
app's settings.

    ScoringSettings(forward="slim").engine_kwargs()
"""

from __future__ import annotations

from dataclasses import dataclass

from valuecsv_ray.settings import (
    is_int,
    is_number,
    setting,
)

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
