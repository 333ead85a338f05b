"""Shared pieces of the GPU suite (bench/gpu_suite.py): the plan, time budgets, result files,
and the pure measures (padding fraction, kernel classes, run overlap, the Markdown table).

    plan = make_plan(dry_run=False, data_dir=Path("../shared/data"))
    budget = Budget(140)                     # seconds this part may take
    results = Results(out / "engine.json", budget, table=engine_table)  # table(data) -> rows
    results.step("padded", need_s=30, fn=lambda: {"texts_per_s": 412.0})  # written at once

No torch, no Ray here: the runner and the unit tests import it cheaply.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PARTS = ("prep", "engine", "train", "audit", "serve")  # (a)-(d) after prep; the table's order
MARK = "[gpu_suite]"  # lines a part prints with this prefix are echoed by the runner


@dataclass(frozen=True)
class Plan:
    """What the suite does: the device run, or the CPU dry run (tiny models, few texts)."""

    dry_run: bool
    data_dir: str  # folder with ValueCSV5000.xlsx and quest100.xlsx
    device: str  # "cuda" or "cpu"
    size: str  # random registry and backbone size: "base" or "tiny"
    n_texts: int  # engine part: texts timed per path
    compile_texts: int  # engine part: texts the compiled path is timed on (the dry run: one batch)
    n_reference: int  # engine part: texts the (slow) reference way scores
    profile_texts: int  # engine part: texts of the one profiled batch-run per path
    train_rows: int  # limit_rows: the train split is 70% of it
    audit_rows: int  # the audit's corpus
    loop_rows: int  # the plain loop's share of it (enough for its rate)
    audit_cpus: float  # cpus_per_actor of the audit's scoring actor
    serve_levels: tuple[tuple[int, int], ...]  # (concurrency, requests) per level
    total_s: float  # the whole suite, all parts
    caps: dict[str, float] = field(default_factory=dict)  # per part: at most this long
    minimums: dict[str, float] = field(default_factory=dict)  # per part: not started with less

    @property
    def gpus(self) -> float:
        return 0.0 if self.device == "cpu" else 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(dry_run: bool, data_dir: Path) -> Plan:
    """The device plan (one H100/H200, 7 minutes), or the CPU dry run (a few minutes here)."""
    if dry_run:
        return Plan(True, str(data_dir), "cpu", "tiny", n_texts=96, compile_texts=16, n_reference=24,
                    profile_texts=16,
                    train_rows=60, audit_rows=300, loop_rows=150, audit_cpus=1.0,
                    serve_levels=((1, 20), (16, 64), (64, 128)), total_s=900,
                    caps={"prep": 60, "engine": 420, "train": 240, "audit": 180, "serve": 150},
                    minimums={"prep": 10, "engine": 30, "train": 40, "audit": 30, "serve": 30})
    # 420 s on one GPU: train (prep beside it) 70, engine 190, audit 75, serve 80 (each a cap; a
    # part that ends early leaves its time to the later ones)
    return Plan(False, str(data_dir), "cuda", "base", n_texts=2048, compile_texts=2048, n_reference=128,
                profile_texts=128,
                train_rows=858, audit_rows=20_000, loop_rows=5_000, audit_cpus=4.0,
                serve_levels=((1, 150), (16, 480), (64, 960)), total_s=420,
                caps={"prep": 90, "engine": 190, "train": 70, "audit": 75, "serve": 80},
                minimums={"prep": 15, "engine": 60, "train": 45, "audit": 45, "serve": 45})


class Budget:
    """A deadline: how many seconds are left, and whether a step of a given length still fits."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.end = clock() + seconds

    def left(self) -> float:
        return max(0.0, self.end - self.clock())

    def allows(self, need_s: float) -> bool:
        return self.left() >= need_s

    def slot(self, cap: float, reserve: float = 0.0) -> float:
        """Seconds for the next part: at most `cap`, leaving `reserve` for the parts after it."""
        return max(0.0, min(cap, self.left() - reserve))


def say(message: str) -> None:
    """A line for the suite's console (the runner echoes it; everything else goes to parts.log)."""
    print(f"{MARK} {message}", flush=True)


def start_ray(plan: Plan) -> dict:
    """Ray started in this part's process (a small object store in the dry run); its start-up time
    and the resources it found."""
    import ray

    from valuecsv_ray.cluster import connect

    started = time.monotonic()
    connect(include_dashboard=False, **({"object_store_memory": 512 * 2**20} if plan.dry_run else {}))
    return {"ray_init_s": round(time.monotonic() - started, 1), "resources": ray.cluster_resources()}


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a part killed while writing leaves the previous version whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


class Results:
    """One part's results file, rewritten after every step, so a part cut short keeps what it did.

    `data["steps"][name]` holds each step's status ("running", "ok", "failed", "skipped"), wall
    seconds and what it measured; `data["table"]` the rows the runner prints, rebuilt from the
    data by `table(data)` (rows of measure, result, target, met) on every save."""

    def __init__(self, path: Path, budget: Budget, table: Callable[[dict], list] | None = None):
        self.path, self.budget, self.table = path, budget, table
        self.data: dict = {"steps": {}, "table": [], "notes": []}
        self.save()

    def save(self) -> None:
        if self.table is not None:
            try:
                self.data["table"] = self.table(self.data)
            except Exception as e:  # noqa: BLE001 - the results still get written
                self.data["table"] = [["table", f"not built: {type(e).__name__}: {e}", "", None]]
        write_json(self.path, self.data)

    def note(self, message: str) -> None:
        say(message)
        self.data["notes"].append(message)
        self.save()

    def progress(self, name: str, **fields) -> None:
        """Record how far a running step got (seen in the file if the part is ended mid-step)."""
        self.data["steps"][name] = {**self.data["steps"].get(name, {}), **fields}
        self.save()

    def step(self, name: str, need_s: float, fn: Callable[[], dict]) -> dict | None:
        """Run `fn` when `need_s` seconds are left; record its dict, or why it failed or was skipped."""
        if not self.budget.allows(need_s):
            reason = f"time budget: {self.budget.left():.0f} s left, needs about {need_s:.0f} s"
            self.data["steps"][name] = {"status": "skipped", "reason": reason}
            self.save()
            say(f"{name}: skipped ({reason})")
            return None
        say(f"{name}: start ({self.budget.left():.0f} s left)")
        self.data["steps"][name] = {"status": "running", "reason": f"{self.budget.left():.0f} s were left"}
        self.save()
        started = time.monotonic()
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - recorded: the other steps go on
            traceback.print_exc()
            self.data["steps"][name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                                        "wall_s": round(time.monotonic() - started, 1)}
            self.save()
            say(f"{name}: FAILED: {type(e).__name__}: {str(e)[:300]}")
            return None
        self.data["steps"][name] = {"status": "ok", "wall_s": round(time.monotonic() - started, 1), **value}
        self.save()
        say(f"{name}: ok in {time.monotonic() - started:.1f} s")
        return value

    def skip(self, name: str, reason: str) -> None:
        self.data["steps"][name] = {"status": "skipped", "reason": reason}
        self.save()
        say(f"{name}: skipped ({reason})")


# ---- pure measures


GEMM_NAMES = ("gemm", "cutlass", "xmma", "cublas", "matmul", "nvjet", "gemv", "splitkreduce", "addmm",
              "bmm", "aten::mm")
ATTENTION_NAMES = ("flash", "fmha", "attention", "sdpa", "varlen")
COPY_NAMES = ("memcpy", "memset")


def classify_kernel(name: str) -> str:
    """'attention', 'gemm', 'copy' or 'other' for a CUDA kernel (or CPU op) name. Attention is
    tested first: cutlass's attention kernels (fmha_cutlassF...) are attention, not GEMMs."""
    lowered = name.lower()
    if any(k in lowered for k in ATTENTION_NAMES):
        return "attention"
    if any(k in lowered for k in GEMM_NAMES):
        return "gemm"
    if any(lowered.startswith(k) for k in COPY_NAMES):
        return "copy"
    return "other"


def kernel_split(times: Iterable[tuple[str, float]]) -> dict:
    """Time per class (microseconds) and each class's share of kernel time (copies left out of the
    shares), plus the five longest kernels: from (name, microseconds) pairs."""
    totals = {"gemm": 0.0, "attention": 0.0, "other": 0.0, "copy": 0.0}
    by_name: dict[str, float] = {}
    for name, us in times:
        totals[classify_kernel(name)] += us
        by_name[name] = by_name.get(name, 0.0) + us
    kernels = totals["gemm"] + totals["attention"] + totals["other"]
    shares = {k: (totals[k] / kernels if kernels else math.nan) for k in ("gemm", "attention", "other")}
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:5]
    return {"us": {k: round(v, 1) for k, v in totals.items()}, "share": shares,
            "top": [[n[:120], round(us, 1)] for n, us in top]}


def split_text(split: dict | None) -> str:
    """'GEMM 70% / attn 9% / other 21%' from `kernel_split`'s result."""
    if not split or not all(math.isfinite(split["share"][k]) for k in ("gemm", "attention", "other")):
        return "n/a"
    share = split["share"]
    busy = f", GPU busy {split['busy_share']:.0%}" if split.get("busy_share") else ""
    return f"GEMM {share['gemm']:.0%} / attn {share['attention']:.0%} / other {share['other']:.0%}{busy}"


def overlap_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds two (start, end) intervals share."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def every_kth(n: int, rows: int = 10) -> list[int]:
    """About `rows` indices spread over range(n), first and last included."""
    if n <= 0:
        return []
    k = max(1, math.ceil((n - 1) / max(1, rows - 1)))
    picked = list(range(0, n, k))
    return picked if picked[-1] == n - 1 else [*picked, n - 1]


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation) of latencies in seconds, in ms."""
    return 1000 * float(np.percentile(latencies_s, q)) if len(latencies_s) else math.nan


def format_table(rows: Iterable[Sequence]) -> str:
    """A Markdown table of (part, measure, result, target, met) rows; met None prints blank."""
    lines = ["| part | measure | result | target | met |", "|---|---|---|---|---|"]
    for part, measure, result, target, met in rows:
        cells = [part, measure, result, target, "" if met is None else ("yes" if met else "NO")]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def at_least(value: float | None, target: float) -> bool | None:
    """Whether value >= target; None when there is no value to judge."""
    if value is None or not math.isfinite(value):
        return None
    return value >= target
