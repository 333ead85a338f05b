"""What answers cost, and a run's budget: token usage priced per endpoint, and a stop at a limit.

    meter = ray.remote(num_cpus=0)(Meter).remote(max_total_tokens=200_000, max_cost=None)
    budget = Budget(meter)            # handed to every collect actor
    if await budget.may_start(): ...  # before each request; await budget.charge(endpoint, outcome) after

A row's tokens are its `usage` as the server reported it (total_tokens, else prompt + completion;
none reported: 0) and its cost is prompt tokens x the endpoint's input_price_per_million plus
completion tokens x output_price_per_million, over a million. The budget counts the answers this
run received, across all its actors (one `Meter` actor adds them up). Once it is reached no
request starts: rows not yet asked end NOT_ASKED (never written) and a later run asks them, while
the requests already on the wire finish and are written, so a run overshoots its budget by at
most what was in flight. No budget: no Meter, and no call to one.
"""

from __future__ import annotations

import pandas as pd

from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.requester import Outcome
from valuecsv_ray.collect.schema import EMPTY, OK, TRUNCATED

TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")
ANSWERED = (OK, EMPTY, TRUNCATED)  # statuses of a completion (the others never carry usage)


def row_tokens(prompt_tokens: int | None, completion_tokens: int | None, total_tokens: int | None) -> int:
    """Tokens a row counts toward a budget: total_tokens, else prompt + completion, else 0."""
    if total_tokens is not None:
        return total_tokens
    return (prompt_tokens or 0) + (completion_tokens or 0)


def row_cost(endpoint: Endpoint, prompt_tokens: int | None, completion_tokens: int | None) -> float:
    """What an answer cost at the endpoint's prices (0 where the endpoint has none)."""
    if not endpoint.priced():
        return 0.0
    return (
        (prompt_tokens or 0) * endpoint.input_price_per_million
        + (completion_tokens or 0) * endpoint.output_price_per_million
    ) / 1e6


def spend(frame: pd.DataFrame, endpoints: dict[str, Endpoint]) -> tuple[int, float]:
    """Tokens (as row_tokens counts them) and cost of the answers in `frame` (model and usage
    columns); endpoints without prices add no cost."""
    if not len(frame):
        return 0, 0.0
    prompt, completion = frame["prompt_tokens"].fillna(0), frame["completion_tokens"].fillna(0)
    tokens = int(frame["total_tokens"].fillna(prompt + completion).sum())
    cost = sum(
        row_cost(endpoints[m], int(p), int(c))
        for m, p, c in zip(frame["model"], prompt, completion, strict=True)
    )
    return tokens, float(cost)


def usage(frame: pd.DataFrame, endpoints: list[Endpoint]) -> dict:
    """Tokens and cost per endpoint and in total of the answers in `frame` (RESPONSE_SCHEMA rows);
    cost is None for an endpoint without prices, and the total counts priced endpoints only.
    `rows_without_usage`: completions the server reported no usage for (they count 0)."""
    named = {e.name: e for e in endpoints}
    by_endpoint = {}
    for model, rows in frame.groupby("model") if len(frame) else ():
        counts = {k: int(rows[k].fillna(0).sum()) for k in TOKENS}
        answered = rows["status"].isin(ANSWERED) if "status" in rows else True
        counts["rows_without_usage"] = int((rows[list(TOKENS)].isna().all(axis=1) & answered).sum())
        counts["cost"] = round(spend(rows, named)[1], 9) if model in named and named[model].priced() else None
        by_endpoint[model] = counts
    total = {k: sum(c[k] for c in by_endpoint.values()) for k in (*TOKENS, "rows_without_usage")}
    total["cost"] = round(sum(c["cost"] or 0.0 for c in by_endpoint.values()), 9)
    return {"by_endpoint": by_endpoint, "total": total}


class Meter:
    """This run's spend across its collect actors (run as a Ray actor): the tokens and cost of
    every answer received, and whether the budget still allows a request."""

    def __init__(self, max_total_tokens: int | None = None, max_cost: float | None = None):
        self.max_total_tokens, self.max_cost = max_total_tokens, max_cost
        self.tokens, self.cost, self.answers = 0, 0.0, 0

    def charge(self, tokens: int, cost: float) -> bool:
        """Add one answer; whether requests may still start."""
        self.tokens, self.cost, self.answers = self.tokens + tokens, self.cost + cost, self.answers + 1
        return self.is_open()

    def is_open(self) -> bool:
        return self.reason() is None

    def reason(self) -> str | None:
        """Why the run stopped starting requests, or None while it may go on."""
        if self.max_total_tokens is not None and self.tokens >= self.max_total_tokens:
            return (
                f"max_total_tokens {self.max_total_tokens} reached: this run's {self.answers} answers "
                f"used {self.tokens} tokens"
            )
        if self.max_cost is not None and self.cost >= self.max_cost:
            spent = f"this run's {self.answers} answers cost {self.cost:.6g}"
            return f"max_cost {self.max_cost:g} reached: {spent}"
        return None

    def state(self) -> dict:
        return {"tokens": self.tokens, "cost": self.cost, "answers": self.answers, "reason": self.reason()}


class Budget:
    """A collect actor's view of the run's budget: asks the Meter (a Ray actor handle, or None for
    no budget) and remembers once it is spent."""

    def __init__(self, meter=None):
        self._meter, self._spent = meter, False

    async def may_start(self) -> bool:
        if self._meter is None:
            return True
        if not self._spent:
            self._spent = not await self._meter.is_open.remote()
        return not self._spent

    async def charge(self, endpoint: Endpoint, outcome: Outcome) -> None:
        if self._meter is None:
            return
        tokens = row_tokens(outcome.prompt_tokens, outcome.completion_tokens, outcome.total_tokens)
        cost = row_cost(endpoint, outcome.prompt_tokens, outcome.completion_tokens)
        if tokens or cost:  # a failure costs nothing, and asks nothing of the Meter
            self._spent |= not await self._meter.charge.remote(tokens, cost)
