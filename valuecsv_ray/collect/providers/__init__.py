"""The LLM providers collect talks to, by name: each turns a prompt into one HTTP request and a
2xx answer back into text and token usage.

    provider = get_provider("openai-completions")       # what `provider:` of an endpoint names
    body = provider.payload(endpoint, "你好", sample=0)
    reply = provider.parse(text)                       # Reply(text, finish_reason, tokens) or NotAReply

Built in: `openai-chat` (the default: /chat/completions; the stub server speaks it) and
`openai-completions` (/completions). Adding a provider is one file in this folder: a `Provider`
subclass decorated with `@register_provider("name")` (see base.py); every module here is
imported the first time a provider is looked up, so nothing else needs to name it.
"""

from valuecsv_ray.collect.providers.base import (
    DEFAULT_PROVIDER,
    NotAReply,
    Provider,
    Reply,
    get_provider,
    provider_names,
    register_provider,
    usage_of,
)

__all__ = [
    "DEFAULT_PROVIDER", "NotAReply", "Provider", "Reply", "get_provider", "provider_names",
    "register_provider", "usage_of",
]
