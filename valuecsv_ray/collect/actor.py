"""The collect actor: asks for a batch of rows concurrently and writes each answer as it arrives.

    ds.map_batches(Requester, fn_constructor_args=(endpoints, Secrets(keys), out, actors, Budget(), 2.0),
                   batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors))

Each actor keeps up to its share of every endpoint's cap on the wire (Gate) and runs several
batches at once on one event loop. Every answered row goes to the batch's PartWriter at once
(written within flush_s); rows the run's budget left unasked are not written. The table an actor
returns is a report for the driver's progress bar, not the data.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from dataclasses import fields
from datetime import datetime, timezone

import aiohttp
import pyarrow as pa

from valuecsv_ray.collect.budget import Budget
from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.requester import NOT_ASKED, Gate, Outcome, ask
from valuecsv_ray.collect.schema import RESPONSE_SCHEMA
from valuecsv_ray.collect.spool import PartWriter
from valuecsv_ray.storage import join

RESPONSES = "responses"
PLAN_COLUMNS = (
    "id",
    "model",
    "prompt_id",
    "suite",
    "prompt",
    "sample",
    "api_model",
    "base_url",
    "params",
    "meta",
)
OUTCOME_COLUMNS = tuple(f.name for f in fields(Outcome))  # status, response, error, attempts, usage ...
REPORT_COLUMNS = ("model", "status", "attempts", "prompt_tokens", "completion_tokens", "total_tokens")


class Secrets:
    """API keys on their way to the actors: never shown by repr, str or a log line."""

    def __init__(self, keys: dict[str, str | None]):
        self._keys = keys

    def get(self, name: str) -> str | None:
        return self._keys.get(name)

    def __repr__(self) -> str:
        return "<API keys hidden>"

    __str__ = __repr__


class Requester:
    """A collect actor (see the module docstring); returns REPORT_COLUMNS per row of the batch."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        keys: Secrets,
        out: str,
        actors: int,
        budget: Budget,
        flush_s: float,
        seed: int = 0,
    ):
        self.endpoints = {e.name: e for e in endpoints}
        self.keys, self.folder, self.budget, self.flush_s = keys, join(out, RESPONSES), budget, flush_s
        self.shares = {e.name: max(1, math.ceil(e.max_in_flight / actors)) for e in endpoints}
        self.rates = {
            e.name: e.requests_per_second / actors if e.requests_per_second else None for e in endpoints
        }
        self.rng = random.Random(seed)
        self._gates: dict[str, Gate] = {}

    async def __call__(self, batch: pa.Table) -> pa.Table:
        if not self._gates:  # made on the actor's event loop, shared by the batches it runs at once
            self._gates = {n: Gate(self.shares[n], self.rates[n]) for n in self.endpoints}
        rows = batch.to_pylist()
        ids = [r["id"] for r in rows]
        key = f"{ids[0]}\0{ids[-1]}\0{len(ids)}"
        writer = PartWriter(self.folder, key, self.flush_s, build=functools.partial(_answered, batch))
        earlier = await writer.written()  # a retried task: what its first try wrote stays
        skip = set(earlier["id"].to_pylist()) if earlier is not None else set()
        todo = [i for i, row_id in enumerate(ids) if row_id not in skip]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async with writer.flushing():
                outcomes = await asyncio.gather(*(self._row(session, i, rows[i], writer) for i in todo))
        return _report(batch.take(todo), outcomes, earlier)

    async def _row(self, session: aiohttp.ClientSession, i: int, row: dict, writer: PartWriter) -> Outcome:
        """Row i of the batch asked, and handed to the writer when answered (not when the budget
        left it unasked)."""
        endpoint = self.endpoints[row["model"]]
        outcome = await ask(
            session,
            endpoint,
            self.keys.get(row["model"]),
            row["prompt"],
            self._gates[row["model"]],
            self.rng,
            row["sample"],
            may_start=self.budget.may_start,
        )
        if outcome.status != NOT_ASKED:
            writer.add((i, outcome, datetime.now(timezone.utc)))
            await self.budget.charge(endpoint, outcome)
        return outcome


def response_table(
    planned: pa.Table, outcomes: list[Outcome], finished: list[datetime] | None = None
) -> pa.Table:
    """Planned rows and their outcomes as RESPONSE_SCHEMA rows; `finished` the times they were
    final (default: now)."""
    columns = {c: planned[c] for c in PLAN_COLUMNS}
    for name in OUTCOME_COLUMNS:
        columns[name] = pa.array([getattr(o, name) for o in outcomes], type=RESPONSE_SCHEMA.field(name).type)
    finished = finished or [datetime.now(timezone.utc)] * planned.num_rows
    columns["finished_at"] = pa.array(finished, type=RESPONSE_SCHEMA.field("finished_at").type)
    return pa.table(columns).select(RESPONSE_SCHEMA.names).cast(RESPONSE_SCHEMA)


def _answered(batch: pa.Table, done: list[tuple[int, Outcome, datetime]]) -> pa.Table:
    """The rows of `batch` answered (index, outcome, when), as RESPONSE_SCHEMA rows."""
    index, outcomes, finished = zip(*done, strict=True)
    return response_table(batch.take(list(index)), list(outcomes), list(finished))


def _report(asked: pa.Table, outcomes: list[Outcome], earlier: pa.Table | None) -> pa.Table:
    """REPORT_COLUMNS of the rows asked, and of the rows an earlier try wrote."""
    schema = pa.schema([pa.field(c, RESPONSE_SCHEMA.field(c).type) for c in REPORT_COLUMNS])
    columns = {"model": asked["model"], **{c: [getattr(o, c) for o in outcomes] for c in REPORT_COLUMNS[1:]}}
    report = pa.table(columns, schema=schema)
    return (
        report if earlier is None else pa.concat_tables([earlier.select(REPORT_COLUMNS).cast(schema), report])
    )
