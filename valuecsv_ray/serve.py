"""The Ray Serve application: one deployment holding the ensemble behind a FastAPI ingress.

    serve run serve_configs/ensemble.yaml          # import_path: valuecsv_ray.serve:app_builder
    curl -X POST 127.0.0.1:8000/v1/score -H 'Authorization: Bearer $TOKEN' \
         -d '{"texts": ["一段文本"]}'

Requests from many clients are gathered by `@serve.batch` (size and wait from the YAML's
`user_config`) into one `Ensemble.score` call. Bearer-token auth when a token is configured
(401 otherwise), body-size (FastAPI's max_body_size), text-length and texts-per-request
limits (413), schema errors (422); the
queue bound (503) and request timeout come from the YAML (`max_queued_requests`,
`http_options.request_timeout_s`).
"""

import hmac
import os
import time
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.taxonomy import VALUES

TOKEN_ENV = "VALUECSV_SERVE_TOKEN"
HEALTH_TEXT = "健康检查：依法治国，诚信友善。"


class ServeArgs(BaseModel):
    """Arguments of the app builder (`args:` in serve_configs/*.yaml); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    registry: str = Field(description="registry folder written by `valuecsv-ray train`")
    token: str | None = Field(None, description=f"Bearer token; default: ${TOKEN_ENV}, none = open")
    max_texts_per_request: int = Field(64, ge=1, description="more texts in one request: 413")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies: 413")
    max_text_chars: int = Field(100_000, ge=1, description="longer single texts: 413")
    token_budget: int = Field(16384, ge=512, description="tokens per forward batch in the engine")
    device: str | None = Field(None, description="'cpu', 'cuda'; default: cuda when present")
    max_batch_size: int = Field(32, ge=1, description="requests gathered into one engine call")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="how long a batch waits to fill")
    max_ongoing_requests: int = Field(128, ge=1, description="requests a replica holds at once "
                                      "(>= max_batch_size, so batches can fill)")
    max_queued_requests: int = Field(256, ge=1, description="requests waiting beyond this get 503")

    @model_validator(mode="after")
    def _batches_can_fill(self) -> "ServeArgs":
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= "
                             f"max_batch_size ({self.max_batch_size}), or batches never fill")
        return self

    def batching(self) -> dict:
        """The deployment's user_config: changeable by `serve deploy` without a restart."""
        return {"max_batch_size": self.max_batch_size, "batch_wait_timeout_s": self.batch_wait_timeout_s}


class ScoreRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="texts to score (non-empty strings)")


class TextScore(BaseModel):
    probs: dict[str, float]
    labels: dict[str, bool]
    levels: dict[str, float]
    windows: int


class ScoreResponse(BaseModel):
    registry_id: str
    results: list[TextScore]
    batched_requests: int = Field(description="requests scored together with this one")


api = FastAPI(title="valuecsv-ray", description="Core Socialist Values evaluators, as one ensemble",
              version="1")


def require_token(request: Request) -> None:
    expected = getattr(request.app.state, "token", None)  # set by the replica serving it
    if not expected:
        return
    given = request.headers.get("authorization", "")
    if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), expected.encode())):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def score_requests(engine: Ensemble, requests: list[list[str]]) -> list[tuple[list[dict], int]]:
    """Score several requests in one engine call; split the results back per request."""
    flat = [text for texts in requests for text in texts]
    records = engine.score(flat).to_records()
    out, start = [], 0
    for texts in requests:
        out.append((records[start : start + len(texts)], len(requests)))
        start += len(texts)
    return out


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class EnsembleDeployment:
    """One replica holding all evaluators of a registry."""

    def __init__(self, args: dict):
        self.args = ServeArgs(**args)
        self.engine = Ensemble.from_registry(self.args.registry, device=self.args.device,
                                             token_budget=self.args.token_budget)
        api.state.token = self.args.token or os.environ.get(TOKEN_ENV) or None
        api.max_body_size = self.args.max_body_bytes  # FastAPI's own limit (413), set before
        # the first request builds the middleware stack; also covers chunked bodies

    def reconfigure(self, user_config: dict) -> None:
        """`user_config` in the YAML: max_batch_size, batch_wait_timeout_s (no restart)."""
        batching = ServeArgs(**{**self.args.model_dump(), **user_config}).batching()
        self.score_batch.set_max_batch_size(int(batching["max_batch_size"]))
        self.score_batch.set_batch_wait_timeout_s(float(batching["batch_wait_timeout_s"]))

    @serve.batch(max_batch_size=ServeArgs.model_fields["max_batch_size"].default,
                 batch_wait_timeout_s=ServeArgs.model_fields["batch_wait_timeout_s"].default)
    async def score_batch(self, requests: list[list[str]]) -> list[tuple[list[dict], int]]:
        return score_requests(self.engine, requests)

    @api.post("/v1/score", response_model=ScoreResponse, dependencies=[Depends(require_token)])
    async def score(self, body: ScoreRequest) -> ScoreResponse:
        self._check(body.texts)
        records, together = await self.score_batch(body.texts)
        return ScoreResponse(registry_id=self.engine.registry.registry_id, results=records,
                             batched_requests=together)

    def _check(self, texts: list[str]) -> None:
        if len(texts) > self.args.max_texts_per_request:
            raise HTTPException(413, f"{len(texts)} texts; at most {self.args.max_texts_per_request}"
                                " per request")
        for i, text in enumerate(texts):
            if not text.strip():
                raise HTTPException(422, f"texts[{i}] is empty")
            if len(text) > self.args.max_text_chars:
                raise HTTPException(413, f"texts[{i}] has {len(text)} characters; at most "
                                         f"{self.args.max_text_chars}")

    @api.get("/v1/values", dependencies=[Depends(require_token)])
    async def values(self) -> list[dict]:
        return [{"id": v.id, "en": v.en, "zh": v.zh, "level": v.level.value, "column": v.column}
                for v in VALUES]

    @api.get("/v1/model", dependencies=[Depends(require_token)])
    async def model(self) -> dict:
        return self.engine.registry.manifest

    @api.get("/healthz")
    async def healthz(self) -> dict:
        started = time.perf_counter()
        self.engine.score([HEALTH_TEXT])
        return {"status": "ok", "registry_id": self.engine.registry.registry_id,
                "inference_ms": round(1000 * (time.perf_counter() - started), 2)}

    def check_health(self) -> None:
        """Serve's replica health check runs a real inference, so a stalled model shows."""
        self.engine.score([HEALTH_TEXT])


def app_builder(args: dict) -> Application:
    """Serve app builder: `import_path: valuecsv_ray.serve:app_builder` with `args:` (ServeArgs).

    Serve calls it with exactly one argument. Batching, the ongoing-request cap and the queue
    bound come from the same args as everything else, so `serve run` of a YAML and
    `valuecsv-ray serve` share one set of defaults; a YAML's `deployments:` entry still
    overrides them (its `user_config` changes batching without restarting replicas).
    """
    validated = ServeArgs(**args)
    registry = Path(validated.registry).expanduser()
    if not registry.is_absolute():  # relative to where `serve run` / `serve deploy` builds
        validated = validated.model_copy(update={"registry": str(registry.resolve())})
    deployment = EnsembleDeployment.options(
        max_ongoing_requests=validated.max_ongoing_requests,
        max_queued_requests=validated.max_queued_requests,
        user_config=validated.batching(),
    )
    return deployment.bind(validated.model_dump())
