"""The endpoint's HTTP API: request and response models, one error shape, limits and token.

    api = build_api(replica)      # per replica, from its ServeConfig and registry

Each replica builds its FastAPI app when it starts, from its settings and its registry, so
/openapi.json states what this server enforces: the registry's value ids and groups, texts per
request and characters per text (`maxItems`, `maxLength`: over them, 413), non-blank texts
(`pattern`: 422), the body-size limit (413) and, per route, every status it can answer. Every
error body has one shape, `Error` ({status, message, errors}). No torch here. No
`from __future__ import annotations`: FastAPI resolves the routes' (local) body models at runtime.
"""

import hmac
import logging
import time
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import TypedDict

from valuecsv_ray.config import ServeConfig
from valuecsv_ray.taxonomy import Taxonomy

TOKEN_ENV = "VALUECSV_SERVE_TOKEN"
HEALTH_TEXT = "健康检查：这是一段用于检查模型能否推理的文本。"
# What str.strip() removes (Python's whitespace): a text must hold some other character.
BLANK = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
         "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in BLANK) + "]"  # portable: ECMA, Python, Rust
_LIMIT_ERRORS = {"too_long", "string_too_long"}  # over max_texts_per_request / max_text_chars
_BEARER = HTTPBearer(auto_error=False, description=f"the server's token (args.token or ${TOKEN_ENV})")
logger = logging.getLogger(__name__)


# ---- the API's models: errors (one shape), request and responses (built per registry and args)


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where, e.g. ['body', 'texts', 2]")
    msg: str = Field(description="what is wrong there")
    type: str = Field(description="kind, e.g. 'string_too_long', 'missing', 'body_too_large'")


class Error(BaseModel):
    """The body of every error answer."""

    status: int = Field(description="the HTTP status, repeated")
    message: str = Field(description="what went wrong and what to do")
    errors: list[FieldError] = Field(default_factory=list, description="per-field problems (413, 422)")


class ValueLabel(BaseModel):
    id: str = Field(description="key of this value in `probs` and `labels`")
    en: str
    zh: str
    group: str = Field(description="its group (see group_kind), a key of `groups`")
    column: str = Field(description="its 0/1 column in annotated data")


class Values(BaseModel):
    """The served registry's taxonomy: the values it scores, in order, and their groups."""

    name: str
    title: str
    group_kind: str = Field(description="what a group is, e.g. 'level'")
    groups: list[str]
    labels: list[ValueLabel]


class Health(BaseModel):
    status: Literal["ok"]
    registry_id: str
    inference_ms: float = Field(description="time of one test inference")
    load_phases: dict[str, float] = Field(default_factory=dict, description="seconds each phase of "
                                          "loading this replica's ensemble took (registry_resolve, "
                                          "checksum_verification, weight_load, ...)")


def request_model(args: ServeConfig) -> type[BaseModel]:
    """The /v1/score body, with this server's limits as schema constraints."""
    text = Annotated[str, StringConstraints(min_length=1, max_length=args.max_text_chars, pattern=NOT_BLANK)]
    return create_model(
        "ScoreRequest", __config__=ConfigDict(extra="forbid"),
        texts=(list[text], Field(min_length=1, max_length=args.max_texts_per_request,
                                 description="texts to score, each with a non-whitespace character")))


def response_model(taxonomy: Taxonomy) -> type[BaseModel]:
    """The /v1/score answer, keyed by this registry's value ids and groups."""
    prob = Annotated[float, Field(ge=0, le=1)]
    probs = TypedDict("Probs", {v.id: Annotated[prob, Field(title=v.name)] for v in taxonomy.labels})
    flags = TypedDict("Labels", {v.id: Annotated[bool, Field(title=v.name)] for v in taxonomy.labels})
    groups = TypedDict("Groups", {g: prob for g in taxonomy.groups})
    score = create_model(
        "TextScore", probs=(probs, Field(description="probability per value id")),
        labels=(flags, Field(description="probability >= the value's threshold")),
        groups=(groups, Field(description=f"mean probability per {taxonomy.group_kind}")),
        windows=(int, Field(ge=1, description="model windows the text was scored over")))
    return create_model(
        "ScoreResponse", registry_id=(str, ...), results=(list[score], Field(description="in input order")),
        batched_requests=(int, Field(ge=1, description="requests scored together with this one")))


def error_response(status: int, message: str, errors: list[FieldError] | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(Error(status=status, message=message, errors=errors or []).model_dump(),
                        status_code=status, headers=headers)


def _statuses(args: ServeConfig, authed: bool, body: bool = False) -> dict:
    """OpenAPI `responses` of a route (all with the Error body): every status it can answer."""
    limits = f"a body over {args.max_body_bytes} bytes"
    if body:
        limits = (f"more than {args.max_texts_per_request} texts, a text over {args.max_text_chars} "
                  f"characters, or {limits}")
    said = {
        400: ("the body is not UTF-8 JSON", None),
        401: ("missing or wrong Bearer token", {"WWW-Authenticate": "Bearer"}),
        408: ("the request waited longer than the server's request_timeout_s; retry later", None),
        413: (f"over this server's limits: {limits}", None),
        422: ("the body does not match the request schema; `errors` says where", None),
        500: ("an unexpected error in the server (a bug: see the replica's log)", None),
        503: ("busy (queue full) or restarting: retry after Retry-After seconds", {"Retry-After": "seconds"}),
    }
    out = {}
    for code in sorted({408, 413, 500, 503} | ({401} if authed else set()) | ({400, 422} if body else set())):
        description, headers = said[code]
        out[code] = {"model": Error, "description": description}
        if headers:
            out[code]["headers"] = {k: {"description": v, "schema": {"type": "string"}}
                                    for k, v in headers.items()}
    return out


# ---- behaviour shared by every route: errors in one shape, body limit, token


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "errors", None), exc.headers)


def _validation_error(args: ServeConfig):
    async def handle(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(loc=list(e["loc"]), type=e["type"], msg=_message(e)) for e in exc.errors()]
        if errors and all(e.type in _LIMIT_ERRORS for e in errors):
            return error_response(413, f"over this server's limits ({args.max_texts_per_request} texts per "
                                       f"request, {args.max_text_chars} characters per text): send fewer or "
                                       "shorter texts", errors)
        return error_response(422, "the body does not match the request schema (see /openapi.json)", errors)
    return handle


def _message(error: dict) -> str:
    if error["type"] == "string_pattern_mismatch":  # pydantic's message spells out NOT_BLANK
        return "must hold a non-whitespace character"
    if error["type"] == "json_invalid":
        return f"not JSON: {error.get('ctx', {}).get('error', 'decode error')}"
    return error["msg"]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"unexpected error ({type(exc).__name__}); see the replica's log")


class BodyTooLarge(HTTPException):
    def __init__(self, size: int, max_bytes: int):
        super().__init__(413, f"request body of {size}+ bytes; this server takes at most {max_bytes}: "
                              "send fewer texts")
        self.errors = [FieldError(loc=["body"], msg=self.detail, type="body_too_large")]


class BodyLimit:
    """413 for a request body over `max_bytes`, declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            answer = await _http_error(Request(scope), BodyTooLarge(int(declared), self.max_bytes))
            return await answer(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # FastAPI re-raises HTTPExceptions from reading the body
                raise BodyTooLarge(seen, self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _token_guard(expected: str | None) -> list:
    """Route dependencies: none for an open server, else a Bearer check (in the schema too)."""
    if not expected:
        return []

    def require_token(given: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]) -> None:
        if given is None or not hmac.compare_digest(given.credentials.encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong Bearer token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})

    return [Depends(require_token)]


class Replica(Protocol):
    """What the app needs of the replica that hosts it (serve.EnsembleDeployment)."""

    args: ServeConfig
    engine: Any  # scoring.engine.Ensemble (torch is not imported here)
    token: str | None

    async def score_batch(self, requests: list[list[str]]) -> list[tuple[list[dict], int]]: ...


def build_api(replica: Replica) -> FastAPI:
    """The replica's FastAPI app: its routes, limits, token and schema follow its args and registry."""
    args, registry = replica.args, replica.engine.registry
    taxonomy = registry.taxonomy
    body_model, answer_model = request_model(args), response_model(taxonomy)
    api = FastAPI(title="valuecsv-ray", version="1",
                  description=f"{taxonomy.title}: {len(taxonomy.labels)} evaluators of registry "
                              f"{registry.registry_id}, as one ensemble.")
    api.add_middleware(BodyLimit, max_bytes=args.max_body_bytes)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error(args))
    api.add_exception_handler(Exception, _unexpected)
    guard = _token_guard(replica.token)

    @api.post("/v1/score", response_model=answer_model, dependencies=guard,
              responses=_statuses(args, bool(guard), body=True))
    async def score(body: body_model) -> dict:
        """Probabilities, labels and group means of each text."""
        records, together = await replica.score_batch(body.texts)
        return {"registry_id": registry.registry_id, "results": records, "batched_requests": together}

    @api.get("/v1/values", response_model=Values, dependencies=guard, responses=_statuses(args, bool(guard)))
    async def values() -> dict:
        """The taxonomy of the served registry."""
        return taxonomy.to_dict()

    @api.get("/v1/model", dependencies=guard, responses=_statuses(args, bool(guard)))
    async def model() -> dict:
        """The served registry's manifest (values, thresholds, metrics, backbone, data)."""
        return registry.manifest

    @api.get("/healthz", response_model=Health, responses=_statuses(args, False))
    async def healthz() -> dict:
        """A real inference on a short text; 503 when the model fails it."""
        started = time.perf_counter()
        try:
            replica.engine.score([HEALTH_TEXT])
        except Exception as e:
            raise HTTPException(503, f"the model failed a test inference ({e}); see the replica's log") from e
        return {"status": "ok", "registry_id": registry.registry_id,
                "inference_ms": round(1000 * (time.perf_counter() - started), 2),
                "load_phases": {k: round(v, 3) for k, v in replica.engine.load_phases.items()}}

    return api


