"""What a provider is, and the named table of them.

    @register_provider("my-api")
    class MyApi(Provider):
        path = "/generate"
        answer = "a generation"

        def payload(self, endpoint, prompt, sample):
            return {"model": endpoint.model, "input": prompt, **self.sampling(endpoint, sample)}

        def reply(self, body):
            return Reply(body["output"], body.get("stop_reason"), **usage_of(body))

A provider fills in the hooks of one request (lm-evaluation-harness's TemplateAPI has the same
seam: `_create_payload`, `parse_generations`, `header`): the URL under the endpoint's base_url,
the headers that carry the key, the body, how a 2xx body becomes text and token usage, and the
message of an error body. The retries, the caps, the statuses (ok, empty, truncated ...) and the
key's redaction are the collector's, the same for every provider. The defaults here are the
OpenAI-compatible ones (Bearer key, `{"error": {"message": ...}}` bodies, `usage` counts).
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from valuecsv_ray.settings import ConfigError

DEFAULT_PROVIDER = "openai-chat"
_PROVIDERS: dict[str, type[Provider]] = {}
_PARSE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError)


class Endpoint(Protocol):
    """What a provider reads of an endpoint entry (collect.config.Endpoint, which validates its
    provider through this package, so the providers do not import it back)."""

    base_url: str
    model: str
    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None
    seed: int | None


@dataclass(frozen=True)
class Reply:
    """A 2xx answer, read: its text (None when the server sent none), why it ended, its tokens."""

    text: str | None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class NotAReply(Exception):
    """A 2xx body that is not the provider's answer (a proxy's error page, a cut-off body): the
    collector tries again, and records `bad_response` with this message after its last attempt."""


class Provider:
    """One request shape. Subclasses set `path` and `answer` and fill in `payload` and `reply`;
    the other hooks have OpenAI-compatible defaults."""

    name: ClassVar[str] = ""  # set by register_provider
    path: ClassVar[str] = ""  # appended to the endpoint's base_url
    answer: ClassVar[str] = "an answer"  # what a 2xx body should be, for the bad_response message

    def problems(self, endpoint: Endpoint) -> list[str]:
        """Settings of the endpoint this provider cannot send (reported with the file's other problems)."""
        return []

    def url(self, endpoint: Endpoint) -> str:
        return endpoint.base_url.rstrip("/") + self.path

    def headers(self, api_key: str | None) -> dict[str, str]:
        """The request's headers: the only place the API key goes."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def payload(self, endpoint: Endpoint, prompt: str, sample: int) -> dict:
        """The JSON body asking for one answer to `prompt` (sample `sample` of it)."""
        raise NotImplementedError

    def reply(self, body: dict) -> Reply:
        """A decoded 2xx body as a Reply; any KeyError, IndexError, TypeError, ValueError or
        AttributeError means the body was not an answer."""
        raise NotImplementedError

    def parse(self, text: str) -> Reply:
        """A 2xx body's text as a Reply; NotAReply when it is not one."""
        try:
            return self.reply(json.loads(text))
        except _PARSE_ERRORS as e:
            raise NotAReply(f"not {self.answer} ({type(e).__name__}): {text[:200]!r}") from None

    def error_message(self, text: str) -> str:
        """The message of an error body (`{"error": {"message": ...}}`), else the start of the body."""
        try:
            error = json.loads(text).get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])
        except (ValueError, AttributeError):
            pass
        return text.strip()[:200] or "(empty body)"

    @staticmethod
    def sampling(endpoint: Endpoint, sample: int) -> dict:
        """temperature, max_tokens and seed as OpenAI-compatible servers take them; with a seed,
        sample k sends seed + k, so samples differ but stay reproducible."""
        keys = ("temperature", "max_tokens")
        body = {k: getattr(endpoint, k) for k in keys if getattr(endpoint, k) is not None}
        if endpoint.seed is not None:
            body["seed"] = endpoint.seed + sample
        return body


def usage_of(body: dict) -> dict[str, int | None]:
    """prompt_tokens, completion_tokens and total_tokens of an OpenAI-style `usage` (None where
    a count is missing or not an integer)."""
    usage = body.get("usage") or {}
    return {
        k: usage.get(k) if isinstance(usage.get(k), int) else None
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def register_provider(name: str):
    """Class decorator: file the provider under `name` (the endpoints YAML's `provider:`)."""

    def register(cls: type[Provider]) -> type[Provider]:
        if name in _PROVIDERS and _PROVIDERS[name] is not cls:
            raise ValueError(f"provider {name!r} is registered twice: {_PROVIDERS[name]} and {cls}")
        cls.name = name
        _PROVIDERS[name] = cls
        return cls

    return register


def provider_names() -> list[str]:
    """The names of every provider: the modules of this folder, each registering its own."""
    _import_builtins()
    return sorted(_PROVIDERS)


def get_provider(name: str) -> Provider:
    """The provider called `name`; ConfigError naming the ones there are when none is."""
    names = provider_names()
    if name not in _PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}; available: {', '.join(names)}")
    return _PROVIDERS[name]()


@functools.cache
def _import_builtins() -> None:
    """Import every module beside this one (each registers its providers), once."""
    folder = Path(__file__).parent
    for module in pkgutil.iter_modules([str(folder)]):
        if module.name != "base":
            importlib.import_module(f"{__package__}.{module.name}")
