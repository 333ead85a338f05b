"""OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): the default provider.

    provider: openai-chat        # in an endpoint entry; also what an entry without `provider:` gets

Speaks to vLLM, SGLang, OpenAI, DeepSeek, Qwen (DashScope) ... and the stub server
(`valuecsv_ray.testing.llm_stub`). The prompt goes as the user message, after the endpoint's
system_prompt if it has one; the answer is `choices[0].message.content`, where content given as a
list of content parts counts as its text parts joined (reasoning or image parts are not the answer).
"""

from __future__ import annotations

from valuecsv_ray.collect.providers.base import Endpoint, Provider, Reply, register_provider, usage_of


@register_provider("openai-chat")
class OpenAIChat(Provider):
    path = "/chat/completions"
    answer = "a chat completion"

    def payload(self, endpoint: Endpoint, prompt: str, sample: int) -> dict:
        system = [{"role": "system", "content": endpoint.system_prompt}] if endpoint.system_prompt else []
        messages = [*system, {"role": "user", "content": prompt}]
        return {"model": endpoint.model, "messages": messages, **self.sampling(endpoint, sample)}

    def reply(self, body: dict) -> Reply:
        choice = body["choices"][0]
        text = _content_text(choice["message"].get("content"))
        return Reply(text, choice.get("finish_reason"), **usage_of(body))


def _content_text(content: object) -> str | None:
    """A message's content as text: a string, None, or the text parts of a list joined; a
    TypeError for anything else."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(
            p["text"] for p in content if p.get("type", "text") == "text" and isinstance(p.get("text"), str)
        )
    raise TypeError(f"message content is {type(content).__name__}, not text or a list of content parts")
