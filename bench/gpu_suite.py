"""The GPU suite: one run on a rented H100 that times the engine, Ray Train, the audit and Serve
on the GPU, and prints one Markdown table last.

    bash bench/gpu_suite.sh                   # on the device, after source .device-pack/bootstrap.sh
    bash bench/gpu_suite.sh --dry-run         # here: CPU, tiny models, few texts, every part end to end
    python bench/gpu_suite.py --stage-data    # here, once: the two xlsx into .device-pack/data

Parts, each in its own process with its own time limit (taken from the suite's total, keeping the
minimum of every later part): train (b) while prep builds the random registry of 12 evaluators on
the CPU beside it, then engine (a), audit (c), serve (d); see bench/gpu_suite_parts/. A part that
fails or runs out of time keeps what it had written, what is left of its processes is ended, and
the next part runs.
$OUT (default ./gpu_suite_out) receives engine.json, train.json, audit.json, serve.json (each
rewritten after every step of its part), parts.log (every part's output), summary.json (statuses,
the table, prep's results); bench/gpu_suite.sh adds gpu_suite.log (this console): 7 files, as a
device run brings back at most 8. Large things (registry, checkpoints) stay in --work.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: gpu_suite_parts, engine_bench, serve_load

from gpu_suite_parts import processes  # noqa: E402
from gpu_suite_parts.common import MARK, PARTS, Budget, Plan, format_table, make_plan, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_FILES = ("ValueCSV5000.xlsx", "quest100.xlsx")
STAGED = REPO / ".device-pack" / "data"  # travels with .device-pack (the data beside the repo does not)
NEED_REGISTRY = ("engine", "audit", "serve")  # the parts that score with prep's registry
RUN_ORDER = ("prep", "train", "engine", "audit", "serve")  # train first: prep runs beside it (CPU only)
SESSION_FILE = "serve_session"  # as gpu_suite_parts.serve writes it: serve run's own session
LOG_KEEP = 2_500_000  # bytes of each part's log kept in parts.log (head and tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, tiny models, few texts (also GPU_SUITE_DRY_RUN=1)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_suite_out"))
    parser.add_argument("--work", type=Path, help="big files (registry, checkpoints); default: temp folder")
    parser.add_argument("--data", type=Path, help="folder with ValueCSV5000.xlsx and quest100.xlsx")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--total-s", type=float, help="the whole suite's time budget (default: the plan's)")
    parser.add_argument("--stage-data", action="store_true", help="copy the data into .device-pack/data")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # the runner starts each part so
    parser.add_argument("--budget-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage_data:
        stage_data()
        return
    dry = args.dry_run or os.environ.get("GPU_SUITE_DRY_RUN", "") not in ("", "0")
    plan = make_plan(dry, args.data or find_data())
    work = args.work or Path(tempfile.gettempdir()) / ("gpu_suite_dry" if dry else "gpu_suite_work")
    if args.part:
        run_part(args.part, plan, work, args.out, args.budget_s or plan.caps[args.part])
    else:
        suite(plan, work, args.out, [p for p in PARTS if p in args.parts.split(",")], args.total_s)


def find_data() -> Path:
    """$GPU_SUITE_DATA, ../shared/data (here), or .device-pack/data (on the device)."""
    given = os.environ.get("GPU_SUITE_DATA")
    candidates = [*([Path(given)] if given else []), REPO.parent / "shared" / "data", STAGED]
    for folder in candidates:
        if all((folder / f).is_file() for f in DATA_FILES):
            return folder
    print(f"{MARK} NO DATA: none of {[str(c) for c in candidates]} holds {DATA_FILES}; before a device "
          "run, run `python bench/gpu_suite.py --stage-data` here (copies them into .device-pack/data)",
          flush=True)
    return candidates[-1]


def stage_data() -> None:
    source = REPO.parent / "shared" / "data"
    STAGED.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        shutil.copyfile(source / name, STAGED / name)
    size = sum(f.stat().st_size for f in STAGED.iterdir())
    print(f"staged {DATA_FILES} into {STAGED} ({size / 2**20:.1f} MiB); it travels with .device-pack")


def run_part(name: str, plan: Plan, work: Path, out: Path, budget_s: float) -> None:
    """In the part's own process: SIGTERM (the runner's time limit) unwinds, so `finally` blocks
    shut Ray and `serve run` down."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"gpu_suite_parts.{name}")
    module.run(plan, work, out, Budget(budget_s))


def suite(plan: Plan, work: Path, out: Path, parts: list[str], total_s: float | None) -> None:
    """Every part in turn (prep alongside train: it needs only the CPU), then the table."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (out / "parts.log").write_text("")
    budget = Budget(total_s or plan.total_s)
    title = "GPU suite" + (" (DRY RUN, CPU)" if plan.dry_run else "")
    print(f"{MARK} {title}: parts {parts}, {budget.left():.0f} s budget; out {out.resolve()}, work {work}, "
          f"data {plan.data_dir}", flush=True)
    statuses: dict[str, dict] = {}
    background = None
    sequence = [p for p in RUN_ORDER if p in parts and (p != "prep" or "train" not in parts)]
    if len(sequence) < len(parts):  # the registry is built while train has the GPU
        background = start("prep", plan, work, out, plan.caps["prep"])
    for i, name in enumerate(sequence):
        if background is not None and name in NEED_REGISTRY:
            statuses["prep"] = {**finish(background, out), "beside": "train"}
            background = None
        limit, why_not = decide(name, sequence[i + 1 :], budget, plan, statuses.get("prep", {}).get("status"))
        statuses[name] = {"status": "skipped", "reason": why_not} if why_not else finish(
            start(name, plan, work, out, limit), out)
    if background is not None:
        statuses["prep"] = {**finish(background, out), "beside": "train"}
    statuses = {p: statuses[p] for p in PARTS if p in statuses}
    rows = table_rows(out, statuses)
    total = time.monotonic() - started
    write_json(out / "summary.json", {"plan": plan.to_dict(), "parts": statuses, "rows": rows,
                                      "wall_s": total, "prep": fold(out / "prep.json")})
    print(f"\n{title}: {total:.0f} s; results in {out}\n", flush=True)
    print(format_table(rows), flush=True)


def decide(name: str, later: list[str], budget: Budget, plan: Plan,
           prep: str | None) -> tuple[float, str | None]:
    """A part's time limit (its cap, leaving the minimum of every later part), and why it must be
    skipped, if it must: too little time, or no registry (`prep`: the prep part's status)."""
    limit = budget.slot(plan.caps[name], sum(plan.minimums[p] for p in later))
    if name in NEED_REGISTRY and prep not in (None, "ok"):
        return limit, f"prep {prep}: no registry"
    if limit < plan.minimums[name]:
        return limit, f"time budget: {limit:.0f} s left for it, needs {plan.minimums[name]:.0f} s"
    return limit, None


def fold(path: Path) -> dict | None:
    """A small results file's content, the file removed: $OUT brings back at most 8 files."""
    for stray in path.parent.glob("*.tmp"):  # a part ended while writing
        stray.unlink()
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    path.unlink()
    return data


def start(name: str, plan: Plan, work: Path, out: Path, limit: float) -> processes.Running:
    """One part in its own process (this script with --part), planning to end MARGIN_S before `limit`."""
    command = [sys.executable, "-u", str(Path(__file__).resolve()), "--part", name, "--out", str(out),
               "--work", str(work), "--data", plan.data_dir, "--budget-s",
               f"{max(1.0, limit - processes.MARGIN_S):.0f}", *(["--dry-run"] if plan.dry_run else [])]
    print(f"{MARK} part {name}: start, limit {limit:.0f} s", flush=True)
    extra = [work / "serve" / SESSION_FILE] if name == "serve" else []
    return processes.start_part(name, command, REPO, work / "logs" / f"{name}.log", limit, extra)


def finish(running: processes.Running, out: Path) -> dict:
    status = processes.finish_part(running)
    _append_log(out / "parts.log", running.name, running.log_path)
    print(f"{MARK} part {running.name}: {status}", flush=True)
    return status


def _append_log(target: Path, name: str, log_path: Path) -> None:
    data = log_path.read_bytes()
    if len(data) > LOG_KEEP:
        data = data[: LOG_KEEP // 10] + b"\n[... cut ...]\n" + data[-(LOG_KEEP - LOG_KEEP // 10) :]
    with target.open("ab") as f:
        f.write(f"\n======== part {name} ({log_path}) ========\n".encode() + data)


def table_rows(out: Path, statuses: dict[str, dict]) -> list[list]:
    """Per part: its status, the rows its results file holds, and the steps that did not finish."""
    rows = []
    for name, st in statuses.items():
        word = st["status"] if st["status"] == "ok" else st["status"].upper()
        what = (f"{word}: {st['reason']}" if "reason" in st
                else f"{word} in {st['wall_s']:.0f} s (limit {st['limit_s']} s)")
        rows.append([name, "status", what, "", None])
        path = out / f"{name}.json"
        if "reason" in st or not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        rows += [[name, *row] for row in data.get("table", [])]
        unfinished = [f"{step}: {s['status']} ({_detail(s)})" for step, s in data.get("steps", {}).items()
                      if s["status"] != "ok"]
        if unfinished:
            rows.append([name, "steps not ok", "; ".join(unfinished), "", None])
    return rows


def _detail(step: dict) -> str:
    """Why a step did not finish; for one cut off while running, how far it got."""
    if step["status"] == "running":
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in step.items()
                         if k != "status")
    return (step.get("reason") or step.get("error") or "")[:90]


if __name__ == "__main__":
    main()
