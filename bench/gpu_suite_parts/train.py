"""Suite part 'train' (b): a Ray Train job of two evaluators sharing one GPU, in fp32 then bf16.

    run(plan, work, out, budget)   # writes out/train.json after each run

Both runs train the first two values of the taxonomy for one epoch from a random BERT backbone
folder (plan.size; written here), on the first plan.train_rows ValueCSV5000 rows (70% of them
train), `resources_per_worker: {GPU: 0.5}` and `max_concurrent: 2`, through `train_all` as the
CLI calls it. From each evaluator's history in the registry: samples/s, train seconds and the
per-step losses; from train_start/train_end: whether the two evaluators ran at the same time.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import fields
from pathlib import Path

from gpu_suite_parts.common import Budget, Plan, Results, every_kth, overlap_s, say, start_ray

PRECISIONS = ("fp32", "bf16")
HISTORY_KEYS = ("train_s", "samples_per_s", "step_losses")  # per-epoch history fields this part reads
NEED_S = 35  # one run on the device: Train start, one epoch of two BERT-base, evaluation, registry
BF16_SHARE = 0.8  # the bf16 run is started only with this share of the fp32 run's time left


def run(plan: Plan, work: Path, out: Path, budget: Budget) -> None:
    from valuecsv_ray.config import Hyperparameters

    results = Results(out / "train.json", budget, table=table)
    results.data["per_worker"] = "0.5 GPU" if plan.gpus else "1 CPU"
    backbone = work / "backbone"
    results.step("backbone", 5, lambda: write_backbone(backbone, plan.size))
    supported = "precision" in {f.name for f in fields(Hyperparameters)}
    if not supported:
        results.note("Hyperparameters has no 'precision' setting in this tree: the fp32 run uses the "
                     "training code's default numerics, and the bf16 run is skipped")
    if results.step("ray_init", 5, lambda: start_ray(plan)) is None:
        return
    try:
        for precision in PRECISIONS:
            if precision == "bf16" and not supported:
                results.skip(precision, "Hyperparameters has no 'precision' setting in this tree")
                continue
            before = results.data["steps"].get("fp32", {}).get("wall_s", 0) * BF16_SHARE
            results.step(precision, max(NEED_S, before),
                         lambda p=precision: train_once(plan, work, backbone, p if supported else None))
        print_curves(results.data)
    finally:
        import ray

        ray.shutdown()


def write_backbone(folder: Path, size: str) -> dict:
    """A randomly initialised BERT (base or tiny shape) and the character tokenizer, as an HF folder."""
    import torch
    from transformers import BertForSequenceClassification

    from valuecsv_ray.backbone import tiny_config, tiny_tokenizer
    from valuecsv_ray.testing.synthetic import base_config

    shutil.rmtree(folder, ignore_errors=True)
    config = base_config() if size == "base" else tiny_config(2, False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return {"path": str(folder), "layers": config.num_hidden_layers, "hidden": config.hidden_size,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def train_once(plan: Plan, work: Path, backbone: Path, precision: str | None) -> dict:
    """One training job (two evaluators) through `train_all`; what their results say."""
    from valuecsv_ray.config import load_train_config
    from valuecsv_ray.taxonomy import load_taxonomy
    from valuecsv_ray.train.runner import train_all

    values = list(load_taxonomy().ids[:2])
    name = f"gpu-suite-{precision or 'default'}"
    shutil.rmtree(work / "train" / name, ignore_errors=True)
    data = Path(plan.data_dir) / "ValueCSV5000.xlsx"
    overrides = {"name": name, "runs_dir": str(work / "train"), "data": str(data),
                 "values": ",".join(values), "limit_rows": plan.train_rows, "backbone": str(backbone),
                 "max_epochs": 1, "patience": 1, "use_gpu": plan.gpus > 0, "num_workers": 1,
                 "resources_per_worker": {"GPU": 0.5} if plan.gpus else {"CPU": 1}, "max_concurrent": 2,
                 "max_failures": 0, "checkpoints_to_keep": 1}
    if precision:
        overrides["precision"] = precision
    cfg = load_train_config(None, overrides)
    started = time.monotonic()
    path = Path(train_all(cfg))
    wall = time.monotonic() - started
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return {"train_all_s": round(wall, 1), "split": manifest["split"]["counts"], **read_run(manifest, values)}


def read_run(manifest: dict, values: list[str]) -> dict:
    """Per evaluator its last epoch's throughput and losses, and how much the two runs overlapped."""
    evaluators = {}
    for value in values:
        ev = manifest["evaluators"][value]
        last = (ev.get("history") or [{}])[-1]
        attempt = (ev.get("attempts") or [{}])[-1]
        evaluators[value] = {"train_start": ev["train_start"], "train_end": ev["train_end"],
                             "precision": attempt.get("precision"), "train_loss": last.get("train_loss"),
                             "val_loss": last.get("val_loss"), "missing_history": [k for k in HISTORY_KEYS
                                                                                   if k not in last],
                             **{k: last.get(k) for k in HISTORY_KEYS}}
    spans = [(e["train_start"], e["train_end"]) for e in evaluators.values()]
    shared = overlap_s(spans[0], spans[1]) if len(spans) == 2 else 0.0
    shortest = min(end - start for start, end in spans)
    rates = [e["samples_per_s"] for e in evaluators.values()]
    return {"evaluators": evaluators, "overlap_s": round(shared, 1),
            "overlap_share": shared / shortest if shortest > 0 else None,
            "samples_per_s_sum": sum(rates) if all(r is not None for r in rates) else None}


def curves(data: dict) -> dict[str, dict[str, list[float]]]:
    """Per precision that finished, per evaluator: its per-step training losses."""
    runs = {p: data["steps"][p] for p in PRECISIONS if data["steps"].get(p, {}).get("status") == "ok"}
    return {p: {v: e["step_losses"] for v, e in run["evaluators"].items() if e.get("step_losses")}
            for p, run in runs.items()}


def compared(data: dict) -> tuple[list[str], int, dict]:
    """The evaluators with curves in both precisions, their common step count, and the curves."""
    found = curves(data)
    if set(found) != set(PRECISIONS):
        return [], 0, found
    values = [v for v in found["fp32"] if v in found["bf16"]]
    n = min((len(found[p][v]) for p in PRECISIONS for v in values), default=0)
    return values, n, found


def print_curves(data: dict) -> None:
    """Every k-th step's loss, both precisions side by side (the full curves are in train.json)."""
    values, n, found = compared(data)
    if not n:
        return
    say("loss per step, fp32 vs bf16 (full curves: train.json, steps.<precision>.evaluators):")
    say("step | " + " | ".join(f"{p} {v}" for v in values for p in PRECISIONS))
    for i in every_kth(n):
        say(f"{i + 1:4d} | " + " | ".join(f"{found[p][v][i]:.4f}" for v in values for p in PRECISIONS))


def table(data: dict) -> list[list]:
    rows = [[f"{p}: samples/s (2 evaluators at {data.get('per_worker')} each)", run_result(data["steps"][p]),
             "", None]
            for p in PRECISIONS if data["steps"].get(p, {}).get("status") == "ok"]
    values, n, found = compared(data)
    for v in values if n else []:
        a, b = found["fp32"][v][:n], found["bf16"][v][:n]
        gap = max(abs(x - y) for x, y in zip(a, b, strict=True))
        result = f"first {a[0]:.3f} / {b[0]:.3f}, last {a[-1]:.3f} / {b[-1]:.3f}, max gap {gap:.3f}"
        rows.append([f"loss curve {v}, fp32 vs bf16 ({n} steps)", result, "", None])
    return rows


def run_result(step: dict) -> str:
    """One table cell: summed samples/s (each evaluator's), overlap of the two, their precision."""
    evs = step["evaluators"]
    missing = sorted({k for e in evs.values() for k in e["missing_history"]})
    share = step.get("overlap_share")
    overlap = f"overlap {share:.0%}" if share is not None and math.isfinite(share) else "overlap n/a"
    ran = "/".join(sorted({str(e.get("precision")) for e in evs.values()}))
    if missing:
        return f"history lacks {', '.join(missing)} (not in this tree); {overlap}; ran {ran}"
    each = " + ".join(f"{e['samples_per_s']:.0f}" for e in evs.values())
    return f"{step['samples_per_s_sum']:.0f} ({each}); {overlap}; ran {ran}; job {step['train_all_s']:.0f} s"
