"""Suite part 'audit' (c): the Ray Data audit with one GPU actor against the engine's plain loop.

    run(plan, work, out, budget)   # writes out/audit.json after each step

A corpus of plan.audit_rows texts (ValueCSV5000 texts and quest100 answers, repeated under
distinct ids), the prep part's registry, the engine's default forward path for the device:
first `Ensemble.score` on its first plan.loop_rows in one process (enough for its rate), then
`run_audit` on all of it (read, check, tokenise, score in one actor with `gpus_per_actor: 1`,
write Parquet, statistics), its progress recorded every few seconds while it runs. Rows/s of
both and their ratio (target >= 0.9), and the largest probability difference on shared rows.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import numpy as np

from gpu_suite_parts.common import Budget, Plan, Results, at_least, start_ray
from gpu_suite_parts.prep import registry_dir

TARGET_RATIO = 0.9  # audit rows/s over the plain loop's
MODELS = ("model-a", "model-b", "model-c", "model-d")
POLL_S = 3.0  # how often a running audit's progress is recorded


def run(plan: Plan, work: Path, out: Path, budget: Budget) -> None:
    import engine_bench

    results = Results(out / "audit.json", budget, table=table)
    results.data["judge"] = not plan.dry_run
    texts = engine_bench.load_texts(Path(plan.data_dir), 0, seed=0)
    corpus = work / "audit" / "corpus.parquet"
    loop_probs = work / "audit" / "loop_probs.npy"
    rows = corpus_texts(texts, plan.audit_rows)
    results.step("corpus", 2, lambda: write_corpus(corpus, rows))
    results.step("plain_loop", 15, lambda: plain_loop(plan, registry_dir(work), rows[: plan.loop_rows],
                                                      loop_probs))
    if results.step("ray_init", 5, lambda: start_ray(plan)) is not None:
        try:
            results.step("audit", 25, lambda: audit_corpus(plan, registry_dir(work), corpus,
                                                           work / "audit" / "out", loop_probs,
                                                           lambda **kw: results.progress("audit", **kw)))
        finally:
            import ray

            ray.shutdown()


def table(data: dict) -> list[list]:
    done = {k: s for k, s in data["steps"].items() if s.get("status") == "ok"}
    loop, audit, rows = done.get("plain_loop"), done.get("audit"), []
    if loop:
        rows.append([f"plain loop Ensemble.score ({loop['forward']}), {loop['rows']} rows",
                     f"{loop['rows_per_s']:.1f} rows/s", "", None])
    if audit:
        dp = audit.get("max_abs_dp_vs_loop")
        rows.append([f"audit, 1 actor, gpus_per_actor {audit['gpus_per_actor']:g}",
                     f"{audit['rows_per_s']:.1f} rows/s (score pass {audit['score_s']:.0f} s, with stats "
                     f"{audit['total_s']:.0f} s); max dp vs loop {'n/a' if dp is None else f'{dp:.1e}'}",
                     "", None])
    if loop and audit:
        ratio = audit["rows_per_s"] / loop["rows_per_s"]
        rows.append(["audit / plain loop rows/s", f"{ratio:.2f}", f">= {TARGET_RATIO}",
                     at_least(ratio, TARGET_RATIO) if data.get("judge") else None])
    return rows


def corpus_texts(texts: list[str], n: int) -> list[str]:
    """`n` texts: the given ones cycled."""
    return [texts[i % len(texts)] for i in range(n)]


def write_corpus(path: Path, texts: list[str]) -> dict:
    """A long-layout Parquet corpus: distinct ids, four model names, prompts shared across models."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(texts)
    table = pa.table({"id": [f"row-{i:06d}" for i in range(n)],
                      "model": [MODELS[i % len(MODELS)] for i in range(n)],
                      "prompt": [f"prompt-{i // len(MODELS)}" for i in range(n)],
                      "response": texts})
    pq.write_table(table, path)
    return {"path": str(path), "rows": n, "mb": path.stat().st_size / 1e6}


SCORING = {"token_budget": None, "forward": "auto", "compile": False}  # both: the device's defaults


def plain_loop(plan: Plan, registry: Path, texts: list[str], probs_file: Path) -> dict:
    import engine_bench
    import torch

    from valuecsv_ray.scoring.engine import Ensemble

    device = torch.device(plan.device)
    engine = Ensemble.from_registry(registry, device=plan.device, **SCORING)
    engine.score(texts[:256])  # warm-up
    seconds, scores = engine_bench.timed(lambda: engine.score(texts), device)
    probs_file.parent.mkdir(parents=True, exist_ok=True)
    np.save(probs_file, scores.probs)
    forward = engine.forward
    engine.groups.clear()  # the models: free the GPU for the audit's actor
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"rows": len(texts), "seconds": round(seconds, 2), "rows_per_s": len(texts) / seconds,
            "forward": forward}


def audit_corpus(plan: Plan, registry: Path, corpus: Path, out: Path, loop_probs: Path,
                 progress: Callable[..., None]) -> dict:
    """run_audit on the corpus; every few seconds while it runs, its progress (the summary's, and
    the rows in its scores/ files) goes to `progress`, so a part cut short still has its rate."""
    from valuecsv_ray.audit.pipeline import run_audit
    from valuecsv_ray.config import load_audit_config

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_audit_config(None, {"inputs": [str(corpus)], "registry": str(registry), "out": str(out),
                                   "actors": 1, "gpus_per_actor": plan.gpus,
                                   "cpus_per_actor": plan.audit_cpus, **SCORING})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run_audit, cfg)
        while not _wait(running, POLL_S):
            progress(**audit_progress(out, time.monotonic() - started))
        result = running.result()
    total = time.monotonic() - started
    summary = result.summary
    score_s = float(summary.get("wall_s") or total)
    return {"rows_in": summary["rows_in"], "rows_scored": summary["rows_scored"],
            "rows_quarantined": summary["rows_quarantined"], "batch_size": cfg.batch_size,
            "gpus_per_actor": cfg.gpus_per_actor,
            "score_s": score_s, "total_s": round(total, 2), "rows_per_s": summary["rows_scored"] / score_s,
            "rows_per_s_with_stats": summary["rows_scored"] / total,
            "max_abs_dp_vs_loop": max_difference(out, loop_probs, registry)}


def max_difference(out: Path, loop_file: Path, registry: Path) -> float | None:
    """Largest |audit probability - plain loop probability| over all rows and values (by row id)."""
    import pyarrow.parquet as pq

    from valuecsv_ray.audit.schema import prob_column

    if not loop_file.is_file():
        return None
    manifest = json.loads((registry / "manifest.json").read_text(encoding="utf-8"))
    columns = [prob_column(v) for v in manifest["values"]]  # the registry's values, in taxonomy order
    table = pq.read_table(out / "scores", columns=["row_id", *columns]).to_pandas()
    position = table["row_id"].str.removeprefix("row-").astype(int).to_numpy()
    loop = np.load(loop_file)  # the first rows of the corpus
    both = position < len(loop)
    return float(np.abs(table[columns].to_numpy()[both] - loop[position[both]]).max()) if both.any() else None


def audit_progress(out: Path, elapsed_s: float) -> dict:
    """How far a running audit got: rows in its written scores/ files (Parquet footers only), and
    the progress its summary.json records, if it records one."""
    import pyarrow.parquet as pq

    rows = 0
    for part in (out / "scores").glob("*.parquet") if (out / "scores").is_dir() else []:
        try:
            rows += pq.ParquetFile(part).metadata.num_rows
        except Exception:  # noqa: BLE001 - a file being replaced: counted next time
            continue
    found = {"elapsed_s": round(elapsed_s, 1), "rows_in_scores": rows,
             "rows_per_s_so_far": rows / elapsed_s if elapsed_s else 0.0}
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found
    return {**found, "summary_progress": summary.get("progress")}


def _wait(future, seconds: float) -> bool:
    try:
        future.result(timeout=seconds)
    except FuturesTimeout:
        return False
    except Exception:  # noqa: BLE001 - raised again by the caller's result()
        return True
    return True
