"""The Ray Serve application: one deployment holding a registry's ensemble behind a FastAPI app.

    serve run serve_configs/ensemble.yaml          # import_path: valuecsv_ray.serve:app_builder
    curl -X POST 127.0.0.1:8000/v1/score -H "Authorization: Bearer $TOKEN" \
         -H 'Content-Type: application/json' -d '{"texts": ["一段文本"]}'

Each replica builds its FastAPI app when it starts (`__serve_build_asgi_app__`, `serve.api`), from
its settings (`config.ServeConfig`, the YAML's `args:`) and its registry, so /openapi.json states
what this server enforces: the registry's value ids and
groups, texts per request and characters per text (`maxItems`, `maxLength`: over them, 413),
non-blank texts (`pattern`: 422), the body-size limit (413) and, per route, every status it can
answer. Every error body has one shape, `Error` ({status, message, errors}).

Statuses: 401 without the Bearer token (when one is configured), 413 over a limit, 422 for a
malformed body, 400 for a body that is not UTF-8 JSON, 503 with Retry-After when the queue is full
(`max_queued_requests`) or the replica is restarting, 408 after `http_options.request_timeout_s`.
Serve's proxy answers 408/503 itself, in plain text, and drops a request whose replica dies (a
bare 500 from uvicorn); `serve.proxy` turns those into `Error` bodies and that 500 into a 503 with
Retry-After, once the Serve controller is started with `controller_options()` (the shipped
YAMLs' `controller_options:`, and `valuecsv-ray serve`).

Requests from many clients are gathered by `@serve.batch` (size and wait from the YAML's
`user_config`) into one `Ensemble.score` call.
"""

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from valuecsv_ray.config import ServeConfig, serve_config
from valuecsv_ray.registry.students import scorer_location
from valuecsv_ray.serve.api import HEALTH_TEXT, TOKEN_ENV, build_api
from valuecsv_ray.storage import is_uri

if TYPE_CHECKING:  # the engine (torch) loads in replicas only, not in Serve's proxy
    from valuecsv_ray.scoring.engine import Ensemble

_DEFAULTS = ServeConfig()


def score_requests(engine: "Ensemble", requests: list[list[str]]) -> list[tuple[list[dict], int]]:
    """Score several requests in one engine call; split the results back per request."""
    flat = [text for texts in requests for text in texts]
    records = engine.score(flat).to_records()
    out, start = [], 0
    for texts in requests:
        out.append((records[start : start + len(texts)], len(requests)))
        start += len(texts)
    return out


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress()
class EnsembleDeployment:
    """One replica holding all evaluators of a registry; its app comes from `build_api`."""

    def __init__(self, args: dict):
        from valuecsv_ray.cluster import worker_logging
        from valuecsv_ray.scoring.engine import Ensemble

        worker_logging()  # the engine's load phases and settings, in the replica's log
        self.args = serve_config(args)
        location = scorer_location(self.args.registry, **self.args.scorer.kwargs())  # or its student
        self.engine = Ensemble.from_registry(location, device=self.args.scoring.device,
                                             **self.args.scoring.engine_kwargs())
        self.token = self.args.token or os.environ.get(TOKEN_ENV) or None

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)

    def reconfigure(self, user_config: dict) -> None:
        """`user_config` in the YAML: max_batch_size, batch_wait_timeout_s (no restart)."""
        batching = serve_config({**self.args.to_dict(), **user_config}).batching()
        self.score_batch.set_max_batch_size(int(batching["max_batch_size"]))
        self.score_batch.set_batch_wait_timeout_s(float(batching["batch_wait_timeout_s"]))

    @serve.batch(max_batch_size=_DEFAULTS.max_batch_size, batch_wait_timeout_s=_DEFAULTS.batch_wait_timeout_s)
    async def score_batch(self, requests: list[list[str]]) -> list[tuple[list[dict], int]]:
        return score_requests(self.engine, requests)

    def check_health(self) -> None:
        """Serve's replica health check runs a real inference, so a stalled model shows."""
        self.engine.score([HEALTH_TEXT])


def app_builder(args: dict) -> Application:
    """Serve app builder: `import_path: valuecsv_ray.serve:app_builder` with `args:` (ServeConfig).

    Serve calls it with exactly one argument. Batching, the ongoing-request cap and the queue
    bound come from the same args as everything else, so `serve run` of a YAML and
    `valuecsv-ray serve` share one set of defaults; a YAML's `deployments:` entry still
    overrides them (its `user_config` changes batching without restarting replicas).
    """
    validated = serve_config(args)
    registry = Path(validated.registry).expanduser()
    if not is_uri(validated.registry) and not registry.is_absolute():  # relative to where `serve run` builds
        validated = dataclasses.replace(validated, registry=str(registry.resolve()))
    if validated.scorer.evaluators == "student":  # refused here, before any replica starts
        scorer_location(validated.registry, **validated.scorer.kwargs())
    deployment = EnsembleDeployment.options(
        max_ongoing_requests=validated.max_ongoing_requests,
        max_queued_requests=validated.max_queued_requests,
        user_config=validated.batching(),
    )
    return deployment.bind(validated.to_dict())
