"""Collect benchmark: requests/s against the stub server, as a share of the ideal cap / latency.

    python bench/collect_bench.py                      # 2,000 prompts, caps 16 and 64, 0% and 10% 429s
    python bench/collect_bench.py --prompts 500 --caps 8

One endpoint behind `valuecsv_ray.testing.llm_stub.StubLLM` with a fixed reply latency (default 200 ms);
with --rate-429 a share of prompts is answered 429 (Retry-After 1 s) on the first attempt. For each
(cap, 429 share) a fresh `run_collect` asks every prompt once. Printed per run:
- end to end: rows / wall time of `run_collect` (actor start-up and the last retries included);
- steady: requests / s the stub received between the 10th and 90th percentile of request starts;
- both as a share of the ideal, cap / latency (a 429 is answered at once, so it holds a slot
  for almost no time), and the stub's highest count of requests in flight (must not pass the cap).
Ray is started once before the runs (not timed). Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml


def write_inputs(folder: Path, prompts: int, cap: int, base_url: str) -> tuple[Path, Path]:
    suite = folder / "bench_prompts.jsonl"
    suite.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"第{i}题：请谈谈你对诚信的理解。"}, ensure_ascii=False) + "\n"
            for i in range(prompts)
        ),
        encoding="utf-8",
    )
    endpoints = folder / "endpoints.yaml"
    endpoints.write_text(
        yaml.safe_dump(
            {
                "endpoints": [
                    {
                        "name": "stub",
                        "base_url": base_url,
                        "model": "stub-a",
                        "api_key_env": "BENCH_STUB_KEY",
                        "max_in_flight": cap,
                        "timeout_s": 30,
                        "max_attempts": 5,
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    return suite, endpoints


def one_run(prompts: int, cap: int, rate_429: float, latency: float, folder: Path) -> dict:
    from valuecsv_ray.collect.config import load_collect_config
    from valuecsv_ray.collect.pipeline import run_collect
    from valuecsv_ray.testing.llm_stub import StubLLM

    with StubLLM(api_key="sk-bench", latency_s=latency, rate_429=rate_429, retry_after_s=1.0) as stub:
        suite, endpoints = write_inputs(folder, prompts, cap, stub.base_url)
        cfg = load_collect_config(
            None, {"suites": [str(suite)], "endpoints": str(endpoints), "out": str(folder / "out")}
        )
        start = time.perf_counter()
        result = run_collect(cfg, progress=False)
        wall = time.perf_counter() - start
        log = stub.requests()
    starts = np.sort([r.t_start for r in log])
    lo, hi = np.percentile(starts, [10, 90])
    steady = ((starts >= lo) & (starts <= hi)).sum() / (hi - lo)
    ideal = cap / latency
    return {
        "cap": cap,
        "rate_429": rate_429,
        "rows": prompts,
        "requests": len(log),
        "wall_s": round(wall, 2),
        "rows_per_s": round(prompts / wall, 1),
        "end_to_end_share": round(prompts / wall / ideal, 3),
        "steady_req_per_s": round(float(steady), 1),
        "steady_share": round(float(steady) / ideal, 3),
        "ideal_per_s": round(ideal, 1),
        "max_in_flight": stub.max_in_flight,
        "ok": result.summary["status_counts"].get("ok", 0),
        "retries": result.summary["retries"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--caps", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rates-429", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    os.environ["BENCH_STUB_KEY"] = "sk-bench"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rows = []
    for cap in args.caps:
        for rate in args.rates_429:
            folder = Path(tempfile.mkdtemp(prefix="collect_bench_"))
            try:
                rows.append(one_run(args.prompts, cap, rate, args.latency, folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            print(json.dumps(rows[-1]), flush=True)
    header = [
        "cap",
        "429s",
        "rows",
        "requests",
        "wall s",
        "rows/s",
        "e2e/ideal",
        "steady req/s",
        "steady/ideal",
        "max in flight",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print(
            f"| {r['cap']} | {r['rate_429']:.0%} | {r['rows']} | {r['requests']} | {r['wall_s']} | "
            f"{r['rows_per_s']} | {r['end_to_end_share']} | {r['steady_req_per_s']} | {r['steady_share']} | "
            f"{r['max_in_flight']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()
