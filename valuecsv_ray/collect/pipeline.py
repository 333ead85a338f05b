"""Collect LLM answers to prompt suites with Ray Data: prompts x endpoints x samples -> Parquet.

    result = run_collect(load_collect_config(None, {
        "suites": ["quest100"], "endpoints": "endpoints.yaml", "out": "eval/collect"}))
    result.summary["status_counts"]      # {"ok": 598, "timeout": 2}

Every (prompt, endpoint, sample) ends as exactly one row of `responses/` (RESPONSE_SCHEMA), with
a deterministic id from the endpoint, model, prompt, sample and parameters. Asynchronous actors
(`Requester`) keep up to each endpoint's `max_in_flight` requests on the wire (split across the
actors) and write each batch's rows as one part file. Re-running the same command resumes: rows
already written are not asked again, a file cut off by an interruption is removed and redone,
and nothing is written twice. `collect.json` records what was planned (a rerun must match it);
`summary.json` the counts by endpoint and status. Output folder, a path (on several nodes, a
shared mount):
    responses/     one row per (prompt, endpoint, sample): the long format `valuecsv-ray audit` reads
    prompts.parquet   the prompts asked (PROMPT_SCHEMA)
    collect.json, summary.json
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pyarrow as pa
import ray
from tqdm import tqdm

from valuecsv_ray.collect.config import CollectConfig, Endpoint, load_endpoints
from valuecsv_ray.collect.requester import Gate, Outcome, ask
from valuecsv_ray.collect.schema import OK, RESPONSE_SCHEMA
from valuecsv_ray.collect.suites import load_suite, suite_table
from valuecsv_ray.parts import done_hashes, row_hashes, write_part
from valuecsv_ray.storage import is_file, join, located, read_parquet, read_text, write_table, write_text

log = logging.getLogger(__name__)
RESPONSES, PROMPTS, RECORD, SUMMARY = "responses", "prompts.parquet", "collect.json", "summary.json"
_PLAN_COLUMNS = (
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


class CollectError(RuntimeError):
    """A collect run that cannot start, or whose output does not add up."""


@dataclass(frozen=True)
class CollectResult:
    out: Path | str  # a Path, or a URI (object storage)
    summary: dict  # summary.json

    @property
    def responses_dir(self) -> Path:
        return located(join(self.out, RESPONSES))


def row_id(endpoint: Endpoint, prompt_id: str, prompt: str, sample: int) -> str:
    """The row's id: sha256 of the endpoint's name and model, the prompt (id and text), the sample
    and the parameters; the same request always gets the same id."""
    key = [endpoint.name, endpoint.model, prompt_id, prompt, sample, endpoint.params()]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]


def plan(prompts: pd.DataFrame, endpoints: list[Endpoint]) -> pa.Table:
    """One row per (prompt, endpoint, sample), prompts outermost so every batch spans all endpoints."""
    rows = [
        (
            row_id(e, p.prompt_id, p.prompt, s),
            e.name,
            p.prompt_id,
            p.suite,
            p.prompt,
            s,
            e.model,
            e.base_url,
            e.params_json(),
            p.meta,
        )
        for p in prompts.itertuples()
        for e in endpoints
        for s in range(e.samples)
    ]
    fields = [RESPONSE_SCHEMA.field(c) for c in _PLAN_COLUMNS]
    return pa.Table.from_pylist(
        [dict(zip(_PLAN_COLUMNS, r, strict=True)) for r in rows], schema=pa.schema(fields)
    )


class _Secret:
    """API keys on their way to the actors: never shown by repr, str or a log line."""

    def __init__(self, keys: dict[str, str | None]):
        self._keys = keys

    def get(self, name: str) -> str | None:
        return self._keys.get(name)

    def __repr__(self) -> str:
        return "<API keys hidden>"

    __str__ = __repr__


class Requester:
    """A collect actor: asks for every row of a batch concurrently (within its share of each
    endpoint's cap), writes the rows as one part file and returns their status and attempts."""

    def __init__(self, endpoints: list[Endpoint], keys: _Secret, out: str, actors: int, seed: int = 0):
        self.endpoints = {e.name: e for e in endpoints}
        self.keys, self.folder = keys, join(out, RESPONSES)
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
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            outcomes = await asyncio.gather(
                *(
                    ask(
                        session,
                        self.endpoints[r["model"]],
                        self.keys.get(r["model"]),
                        r["prompt"],
                        self._gates[r["model"]],
                        self.rng,
                        r["sample"],
                    )
                    for r in rows
                )
            )
        table = response_table(batch, outcomes)
        write_part(table, self.folder, f"{rows[0]['id']}\0{rows[-1]['id']}\0{len(rows)}")
        return table.select(["model", "status", "attempts"])


def response_table(batch: pa.Table, outcomes: list[Outcome]) -> pa.Table:
    """Planned rows and their outcomes as RESPONSE_SCHEMA rows."""
    now = datetime.now(timezone.utc)
    columns = {c: batch[c] for c in _PLAN_COLUMNS}
    for name in (
        "response",
        "status",
        "error",
        "http_status",
        "attempts",
        "latency_s",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    ):
        columns[name] = pa.array([getattr(o, name) for o in outcomes], type=RESPONSE_SCHEMA.field(name).type)
    columns["finished_at"] = pa.array([now] * batch.num_rows, type=RESPONSE_SCHEMA.field("finished_at").type)
    return pa.table(columns).select(RESPONSE_SCHEMA.names).cast(RESPONSE_SCHEMA)


def load_prompts(cfg: CollectConfig) -> pd.DataFrame:
    """The prompts of every suite of the run (the first `limit` of each), prompt ids unique."""
    frames = []
    for spec in cfg.suites:
        prompts, skipped = load_suite(spec, Path(cfg.data_dir))
        for row, reason in skipped:
            log.info("suite %s: row %d skipped (%s)", spec, row, reason)
        frames.append(prompts.head(cfg.limit) if cfg.limit else prompts)
    prompts = pd.concat(frames, ignore_index=True)
    repeated = prompts["prompt_id"][prompts["prompt_id"].duplicated()].unique()
    if len(repeated):
        raise CollectError(
            f"prompt id(s) {', '.join(map(str, repeated[:5]))} occur in two suites; give the "
            "suites distinct names (a user file's stem is its suite name)"
        )
    return prompts


def start_record(out: str, cfg: CollectConfig, endpoints: list[Endpoint], planned: pa.Table) -> None:
    """collect.json, or check that a resumed run plans the same requests."""
    ids = hashlib.sha256("\n".join(sorted(planned["id"].to_pylist())).encode()).hexdigest()
    record = {
        "suites": cfg.suites,
        "limit": cfg.limit,
        "rows_planned": planned.num_rows,
        "plan_sha256": ids,
        "endpoints": [{k: v for k, v in e.__dict__.items()} for e in endpoints],
    }
    path = join(out, RECORD)
    if is_file(path):
        old = json.loads(read_text(path))
        if old.get("plan_sha256") != ids:
            raise CollectError(
                f"{out} holds a collect run that asked other requests (suites, endpoints, models, samples or "
                f"parameters differ from {path}): resume with the same settings, or choose a new --out folder"
            )
        return
    write_text(path, json.dumps(record, indent=2, ensure_ascii=False))


def run_collect(cfg: CollectConfig, progress: bool = True) -> CollectResult:
    """Ask every endpoint every prompt (resuming a previous run in cfg.out); the counts at the end."""
    endpoints = load_endpoints(cfg.endpoints)
    keys = _Secret({e.name: e.api_key() for e in endpoints})
    prompts = load_prompts(cfg)
    planned, out = plan(prompts, endpoints), cfg.out
    start_record(out, cfg, endpoints, planned)
    write_table(suite_table(prompts), join(out, PROMPTS))
    done = done_hashes(join(out, RESPONSES), column="id")
    todo = planned.filter(pa.array(~np.isin(row_hashes(planned["id"]), done))) if len(done) else planned
    log.info(
        "collect: %d rows planned, %d already done, %d to ask",
        planned.num_rows,
        planned.num_rows - todo.num_rows,
        todo.num_rows,
    )
    if todo.num_rows:
        _ask_all(todo, endpoints, keys, cfg, progress)
    return CollectResult(located(out), _summarize(out, planned))


def _ask_all(
    todo: pa.Table, endpoints: list[Endpoint], keys: _Secret, cfg: CollectConfig, progress: bool
) -> None:
    from valuecsv_ray.cluster import connect

    connect()
    batch = cfg.batch_size or max(8, 2 * max(math.ceil(e.max_in_flight / cfg.actors) for e in endpoints))
    blocks = [todo.slice(i, batch) for i in range(0, todo.num_rows, batch)]
    ds = ray.data.from_arrow(blocks).map_batches(
        Requester,
        fn_constructor_args=(endpoints, keys, cfg.out, cfg.actors),
        batch_size=batch,
        batch_format="pyarrow",
        num_cpus=0.25,
        compute=ray.data.ActorPoolStrategy(
            size=cfg.actors, max_tasks_in_flight_per_actor=8, max_concurrent_calls_per_actor=8
        ),
    )
    bar = tqdm(total=todo.num_rows, unit="row", desc="collect", disable=not progress)
    errors = retries = 0
    for done in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        errors += int(np.sum(np.array(done["status"].to_pylist()) != OK))
        retries += int(np.sum(np.array(done["attempts"].to_pylist()) - 1))
        bar.update(done.num_rows)
        bar.set_postfix(errors=errors, retries=retries)
    bar.close()


def _summarize(out: str, planned: pa.Table) -> dict:
    """Counts from what is written; every planned row exactly once, or a CollectError."""
    table = read_parquet(join(out, RESPONSES), columns=["id", "model", "status", "attempts"])
    table = table if table is not None else pa.table({"id": pa.array([], pa.string())})
    frame = table.to_pandas()
    planned_ids = set(planned["id"].to_pylist())
    duplicates = int(frame["id"].duplicated().sum()) if len(frame) else 0
    missing = len(planned_ids - set(frame["id"])) if len(frame) else len(planned_ids)
    summary = {
        "rows_planned": planned.num_rows,
        "rows_written": len(frame),
        "duplicates": duplicates,
        "missing": missing,
        "status_counts": frame["status"].value_counts().to_dict() if len(frame) else {},
        "by_endpoint": {m: g["status"].value_counts().to_dict() for m, g in frame.groupby("model")}
        if len(frame)
        else {},
        "retries": int((frame["attempts"] - 1).sum()) if len(frame) else 0,
    }
    write_text(join(out, SUMMARY), json.dumps(summary, indent=2, ensure_ascii=False))
    if duplicates or missing:
        raise CollectError(
            f"{join(out, RESPONSES)}: {missing} planned rows missing and {duplicates} written twice "
            f"(see {join(out, SUMMARY)}); re-run the same command to ask the missing ones"
        )
    return summary
