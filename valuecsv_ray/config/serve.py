"""The Serve app's settings (`serve_configs/*.yaml` `args:`, `valuecsv-ray serve`).

    cfg = serve_config({"registry": "runs/quickstart"})
"""

from __future__ import annotations

from dataclasses import dataclass

from valuecsv_ray.config.scoring import EvaluatorChoice, ScoringSettings
from valuecsv_ray.settings import (
    build,
    flatten,
    is_int,
    is_number,
    nested,
    setting,
)


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



def serve_config(args: dict) -> ServeConfig:
    """The Serve app's args (flat, as in a YAML's `args:`), validated."""
    return build(ServeConfig, "serve", args, where=" in the Serve app's args")
