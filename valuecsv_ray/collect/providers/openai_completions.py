"""OpenAI-compatible text completions (`POST {base_url}/completions`): the prompt as it is, no
chat template.

    provider: openai-completions   # in an endpoint entry

For base models and servers that apply no chat template (vLLM and SGLang serve /v1/completions
too). The body carries `prompt` (a string) and the endpoint's sampling parameters; the answer is
`choices[0].text`, the token counts come from `usage`. A completion has no system message, so an
endpoint with `system_prompt` is refused when the file is read: put the instruction in the prompts.
"""

from __future__ import annotations

from valuecsv_ray.collect.providers.base import Endpoint, Provider, Reply, register_provider, usage_of


@register_provider("openai-completions")
class OpenAICompletions(Provider):
    path = "/completions"
    answer = "a text completion"

    def problems(self, endpoint: Endpoint) -> list[str]:
        if endpoint.system_prompt is None:
            return []
        return ["system_prompt: openai-completions sends the prompt alone (a completion has no system "
                "message); remove system_prompt, or use provider openai-chat"]

    def payload(self, endpoint: Endpoint, prompt: str, sample: int) -> dict:
        return {"model": endpoint.model, "prompt": prompt, **self.sampling(endpoint, sample)}

    def reply(self, body: dict) -> Reply:
        choice = body["choices"][0]
        text = choice["text"]
        if text is not None and not isinstance(text, str):
            raise TypeError(f"choices[0].text is {type(text).__name__}, not text")
        return Reply(text, choice.get("finish_reason"), **usage_of(body))
