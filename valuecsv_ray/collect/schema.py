"""The tables of response collection, defined once (every writer and reader uses these).

    import pyarrow.parquet as pq
    from valuecsv_ray.collect.schema import RESPONSE_SCHEMA, STATUSES
    table = pq.read_table("eval/collect/responses", schema=RESPONSE_SCHEMA)

- A prompt suite (`PROMPT_SCHEMA`): one row per prompt, with a stable `prompt_id` such as
  `quest100:17` or `cvalues:412` and the suite's own fields in `meta` (JSON).
- `responses/` (`RESPONSE_SCHEMA`): exactly one row per (prompt, endpoint, sample). It is the long
  format `valuecsv-ray audit` reads as it is: `id`, `model`, `prompt`, `response`; rows whose
  `status` is not "ok" carry no response and go to the audit's quarantine with their status.
No torch, no Ray.
"""

from __future__ import annotations

import pyarrow as pa

OK = "ok"
HTTP_ERROR = "http_error"  # a non-2xx answer: a 4xx other than 408/409/429 at once, else after retries
TIMEOUT = "timeout"  # no answer within the endpoint's timeout (or the connection failed) on every attempt
BAD_RESPONSE = "bad_response"  # 2xx whose body is not an OpenAI chat completion
EMPTY = "empty"  # a completion with null or blank content
TRUNCATED = "truncated"  # finish_reason "length": the answer was cut at max_tokens
STATUSES = (OK, HTTP_ERROR, TIMEOUT, BAD_RESPONSE, EMPTY, TRUNCATED)

PROMPT_SCHEMA = pa.schema(
    [
        pa.field("prompt_id", pa.string(), nullable=False),  # "<suite>:<id>", stable across runs
        pa.field("suite", pa.string(), nullable=False),  # suite name: quest100, cvalues, or the file's stem
        pa.field("prompt", pa.string(), nullable=False),  # the user message sent to the LLM
        pa.field(
            "meta", pa.string(), nullable=False
        ),  # JSON object of the suite's other fields (e.g. domain)
    ]
)

RESPONSE_SCHEMA = pa.schema(
    [
        pa.field(
            "id", pa.string(), nullable=False
        ),  # row id: sha256 of endpoint, model, prompt_id, sample, params
        pa.field("model", pa.string(), nullable=False),  # the endpoint's name (the LLM label in every table)
        pa.field("prompt_id", pa.string(), nullable=False),  # as in the prompt suite
        pa.field("suite", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),  # the user message
        pa.field("sample", pa.int32(), nullable=False),  # 0-based sample index for this prompt and endpoint
        pa.field("response", pa.string()),  # the answer text; null unless status is "ok"
        pa.field("status", pa.string(), nullable=False),  # one of STATUSES
        pa.field("error", pa.string()),  # what went wrong (null when ok), e.g. "HTTP 400: model not found"
        pa.field("http_status", pa.int32()),  # HTTP status of the last attempt; null if no answer came
        pa.field("attempts", pa.int32(), nullable=False),  # requests sent for this row (1 = no retry)
        pa.field("latency_s", pa.float64(), nullable=False),  # seconds from first request to final outcome
        pa.field("finish_reason", pa.string()),  # choices[0].finish_reason as the server gave it
        pa.field("prompt_tokens", pa.int64()),  # usage as the server reported it (null if absent)
        pa.field("completion_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("api_model", pa.string(), nullable=False),  # the `model` sent in the request body
        pa.field("base_url", pa.string(), nullable=False),  # the endpoint's base URL (never the API key)
        pa.field("params", pa.string(), nullable=False),  # JSON of the sampling parameters and system prompt
        pa.field("meta", pa.string(), nullable=False),  # the prompt's suite fields (JSON), e.g. domain
        pa.field("finished_at", pa.timestamp("ms", tz="UTC"), nullable=False),  # when the outcome was final
    ]
)
