"""Collect LLM answers to prompt suites with Ray Data: prompts x endpoints x samples -> Parquet.

    result = run_collect(load_collect_config(None, {
        "suites": ["quest100"], "endpoints": "endpoints.yaml", "out": "eval/collect"}))
    result.summary["status_counts"]      # {"ok": 598, "timeout": 2}

Every (prompt, endpoint, sample) ends as exactly one row of `responses/` (RESPONSE_SCHEMA), with
a deterministic id from the endpoint, model, prompt, sample and parameters. Asynchronous actors
(`collect.actor.Requester`) keep up to each endpoint's `max_in_flight` requests on the wire
(split across the actors) and write each answer within `flush_s` of its arrival (small part
files per batch, `collect.spool`). Re-running the same command resumes: rows already written are
not asked again, a file cut off by an interruption is removed and redone, and nothing is written
twice. `redo_failed` asks the rows whose status is not ok again (`collect.redo`); a budget
(`max_total_tokens`, `max_cost`) stops the run from starting requests, CollectStopped, and a
rerun asks the rest (`collect.budget`). `collect.json` records what was planned (a rerun must
match it); `summary.json` the counts by endpoint and status, tokens and cost, and this run's part.
Output folder, a path (on several nodes, a shared mount):
    responses/     one row per (prompt, endpoint, sample): the long format `valuecsv-ray audit` reads
    superseded/    the failed rows `redo_failed` replaced (same schema)
    prompts.parquet   the prompts asked (PROMPT_SCHEMA)
    collect.json, summary.json
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
from tqdm import tqdm

from valuecsv_ray.collect.actor import PLAN_COLUMNS, RESPONSES, Requester, Secrets
from valuecsv_ray.collect.budget import Budget, Meter, spend, usage
from valuecsv_ray.collect.config import CollectConfig, Endpoint, load_endpoints
from valuecsv_ray.collect.redo import redo_summary, supersede_failed, superseded
from valuecsv_ray.collect.requester import NOT_ASKED
from valuecsv_ray.collect.schema import OK, RESPONSE_SCHEMA
from valuecsv_ray.collect.suites import load_suite, suite_table
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.parts import done_hashes, row_hashes
from valuecsv_ray.settings import ConfigError
from valuecsv_ray.storage import is_file, join, located, read_json, read_parquet, write_json, write_table

log = logging.getLogger(__name__)
PROMPTS, RECORD, SUMMARY = "prompts.parquet", "collect.json", "summary.json"
__all__ = ["RESPONSES", "CollectError", "CollectResult", "CollectStopped", "run_collect"]


class CollectError(ValuecsvError, RuntimeError):
    """A collect run that cannot start, or whose output does not add up."""


class CollectStopped(CollectError):
    """A run that stopped at its budget; what it received is written, and re-running resumes."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


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
    fields = [RESPONSE_SCHEMA.field(c) for c in PLAN_COLUMNS]
    return pa.Table.from_pylist(
        [dict(zip(PLAN_COLUMNS, r, strict=True)) for r in rows], schema=pa.schema(fields)
    )


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
        old = read_json(path)
        if old.get("plan_sha256") != ids:
            raise CollectError(
                f"{out} holds a collect run that asked other requests (suites, endpoints, models, samples or "
                f"parameters differ from {path}): resume with the same settings, or choose a new --out folder"
            )
        return
    write_json(path, record)


def run_collect(cfg: CollectConfig, progress: bool = True) -> CollectResult:
    """Ask every endpoint every prompt (resuming a previous run in cfg.out); the counts at the end.
    CollectStopped when the run's budget stopped it before every row was asked."""
    endpoints = load_endpoints(cfg.endpoints)
    if unpriced := cfg.unpriced(endpoints):
        raise ConfigError("invalid collect config:\n  " + "\n  ".join(unpriced))
    keys = Secrets({e.name: e.api_key() for e in endpoints})
    prompts = load_prompts(cfg)
    planned, out = plan(prompts, endpoints), cfg.out
    start_record(out, cfg, endpoints, planned)
    write_table(suite_table(prompts), join(out, PROMPTS))
    if cfg.redo_failed:
        supersede_failed(out)
    done = done_hashes(join(out, RESPONSES), column="id")
    todo = planned.filter(pa.array(~np.isin(row_hashes(planned["id"]), done))) if len(done) else planned
    log.info(
        "collect: %d rows planned, %d already done, %d to ask",
        planned.num_rows,
        planned.num_rows - todo.num_rows,
        todo.num_rows,
    )
    if todo.num_rows:
        this_run = _ask_all(todo, endpoints, keys, cfg, progress)
    else:
        this_run = {**_Tally({}, 0).counts(), "stopped": None}
    return CollectResult(located(out), _summarize(out, planned, endpoints, this_run))


def _ask_all(
    todo: pa.Table, endpoints: list[Endpoint], keys: Secrets, cfg: CollectConfig, progress: bool
) -> dict:
    """Ask the rows of `todo` on Ray Data; what this run asked, received and spent."""
    from valuecsv_ray.cluster import connect

    connect()
    budgeted = cfg.max_total_tokens is not None or cfg.max_cost is not None
    meter = ray.remote(num_cpus=0)(Meter).remote(cfg.max_total_tokens, cfg.max_cost) if budgeted else None
    batch = cfg.batch_size or max(8, 2 * max(math.ceil(e.max_in_flight / cfg.actors) for e in endpoints))
    blocks = [todo.slice(i, batch) for i in range(0, todo.num_rows, batch)]
    ds = ray.data.from_arrow(blocks).map_batches(
        Requester,
        fn_constructor_args=(endpoints, keys, cfg.out, cfg.actors, Budget(meter), cfg.flush_s),
        batch_size=batch,
        batch_format="pyarrow",
        num_cpus=0.25,
        compute=ray.data.ActorPoolStrategy(
            size=cfg.actors, max_tasks_in_flight_per_actor=8, max_concurrent_calls_per_actor=8
        ),
    )
    tally = _Tally({e.name: e for e in endpoints}, todo.num_rows)
    bar = tqdm(total=todo.num_rows, unit="row", desc="collect", disable=not progress)
    for report in ds.iter_batches(batch_format="pandas", batch_size=None):
        bar.update(len(report))
        bar.set_postfix(tally.add(report))
    bar.close()
    this_run = {**tally.counts(), "stopped": None}
    if this_run["rows_not_asked"]:  # only a spent budget leaves rows unasked
        this_run["stopped"] = ray.get(meter.state.remote())["reason"]
    return this_run


class _Tally:
    """What this run's actors reported: rows asked (any status) and not asked, errors, retries, usage."""

    def __init__(self, endpoints: dict[str, Endpoint], rows_to_ask: int):
        self.endpoints, self.rows_to_ask = endpoints, rows_to_ask
        self.reports: list[pd.DataFrame] = []
        self.errors = self.retries = self.tokens = 0
        self.cost = 0.0

    def add(self, report: pd.DataFrame) -> dict:
        """Count one batch's report; the progress bar's postfix."""
        self.reports.append(report)
        asked = report[report["status"] != NOT_ASKED]
        self.errors += int((asked["status"] != OK).sum())
        self.retries += int((report["attempts"] - 1).clip(lower=0).sum())
        tokens, cost = spend(asked, self.endpoints)
        self.tokens, self.cost = self.tokens + tokens, self.cost + cost
        postfix = {"errors": self.errors, "retries": self.retries, "tokens": self.tokens}
        return postfix | (
            {"cost": f"{self.cost:.4g}"} if any(e.priced() for e in self.endpoints.values()) else {}
        )

    def counts(self) -> dict:
        frame = pd.concat(self.reports) if self.reports else pd.DataFrame(columns=["status"])
        not_asked = int((frame["status"] == NOT_ASKED).sum())
        return {
            "rows_to_ask": self.rows_to_ask,
            "rows_asked": len(frame) - not_asked,
            "rows_not_asked": not_asked,
            "tokens": self.tokens,
            "cost": round(self.cost, 9),
        }


def _summarize(out: str, planned: pa.Table, endpoints: list[Endpoint], this_run: dict) -> dict:
    """Counts from what is written; every planned row exactly once (CollectError otherwise), or
    CollectStopped when the budget left rows unasked."""
    columns = ["id", "model", "status", "attempts", "prompt_tokens", "completion_tokens", "total_tokens"]
    table = read_parquet(join(out, RESPONSES), columns=columns)
    frame = table.to_pandas() if table is not None else pd.DataFrame(columns=columns)
    planned_ids = set(planned["id"].to_pylist())
    duplicates = int(frame["id"].duplicated().sum())
    missing = len(planned_ids - set(frame["id"]))
    moved = superseded(out, columns)[columns]
    paid = pd.concat([frame, moved], ignore_index=True) if len(moved) else frame
    summary = {
        "rows_planned": planned.num_rows,
        "rows_written": len(frame),
        "duplicates": duplicates,
        "missing": missing,
        "status_counts": frame["status"].value_counts().to_dict(),
        "by_endpoint": {m: g["status"].value_counts().to_dict() for m, g in frame.groupby("model")},
        "retries": int((frame["attempts"] - 1).sum()),
        "usage": usage(paid, endpoints),
        "redo_failed": redo_summary(frame, out),
        "this_run": this_run,
        "stopped": this_run.get("stopped"),
    }
    write_json(join(out, SUMMARY), summary, default=int)
    if duplicates or (missing and not summary["stopped"]):
        raise CollectError(
            f"{join(out, RESPONSES)}: {missing} planned rows missing and {duplicates} written twice "
            f"(see {join(out, SUMMARY)}); re-run the same command to ask the missing ones"
        )
    if missing:
        raise CollectStopped(
            f"stopped at the budget ({summary['stopped']}); {missing} planned rows are not asked yet. "
            f"What was received is in {join(out, RESPONSES)} (see {join(out, SUMMARY)}); re-run the same "
            "command, with a larger or no budget, to ask the rest",
            summary,
        )
    return summary
