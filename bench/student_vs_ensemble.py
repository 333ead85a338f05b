"""Registries side by side against the binary ensemble: gold metrics, agreement and speed.

    python bench/student_vs_ensemble.py --ensemble runs/valuecsv5000-tiny \
        --other runs/valuecsv5000-multilabel-tiny --other runs/valuecsv5000-tiny/students/student

Every registry scores the same texts through the engine (`Ensemble.score`, CPU by default): the
test part of the ensemble's split of its own data (the annotated file recorded in job.json, or
`--data`; its sha256 is checked). Per registry and value: F1 at the registry's own threshold,
ROC-AUC and ECE (15 bins) of its calibrated probabilities against the gold labels, and against
the ensemble on the same texts the decision agreement (share of texts where both say the same)
and the mean |p - p_ensemble|. Speed: texts/s of `Ensemble.score` on the same texts, best of
`--repeats` rounds after a warm-up (the registries take turns within a round, so a change in the
machine's load falls on all alike), one torch thread unless `--threads`.
Writes the rows as JSON (`--out`) and prints Markdown tables. Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.taxonomy import Taxonomy
from valuecsv_ray.train.annotated import load_annotated
from valuecsv_ray.train.metrics import binary_metrics, expected_calibration_error

FIGURES = ("f1", "auc", "ece", "agreement", "mean_abs_dp")


def gold_part(ensemble: Path, data: str | None, part: str) -> tuple[list[str], np.ndarray, Taxonomy]:
    """The texts and 0/1 labels (n, values) of one part of the ensemble registry's split."""
    job = json.loads((ensemble / "job.json").read_text(encoding="utf-8"))
    taxonomy = Taxonomy.from_dict(job["taxonomy"], "job.json")
    loaded = load_annotated(data or job["config"]["data"], taxonomy,
                            skip_bad_rows=job["config"].get("skip_bad_rows", False),
                            limit=job["config"].get("limit_rows"))
    if loaded.sha256 != job["data"]["sha256"]:
        raise SystemExit(f"{data or job['config']['data']} is not the data {ensemble} was trained on "
                         f"(sha256 {loaded.sha256[:12]} != {job['data']['sha256'][:12]}); pass --data")
    rows = json.loads((ensemble / "split.json").read_text(encoding="utf-8"))["indices"][part]
    return [loaded.texts[i] for i in rows], loaded.labels[rows], taxonomy


def timed_rounds(engines: list[Ensemble], texts: list[str], repeats: int) -> tuple[list, list[float]]:
    """Each engine's scores and best texts/s over `repeats` rounds; within a round the engines run
    one after another, so a change in the machine's load falls on all of them alike. One warm-up
    run on a few texts each first."""
    for engine in engines:
        engine.score(texts[:16])
    best, scores = [float("inf")] * len(engines), [None] * len(engines)
    for _ in range(repeats):
        for i, engine in enumerate(engines):
            start = time.perf_counter()
            scores[i] = engine.score(texts)
            best[i] = min(best[i], time.perf_counter() - start)
    return scores, [len(texts) / b for b in best]


def compare(reference, scores, thresholds: np.ndarray, gold: np.ndarray) -> list[dict]:
    """Per value: gold F1 (at `thresholds`), AUC and ECE of `scores`, and its decision agreement and
    mean |dp| with `reference` (the same texts)."""
    rows = []
    for j, value_id in enumerate(scores.value_ids):
        k = reference.value_ids.index(value_id)
        p, p_ref = scores.probs[:, j], reference.probs[:, k]
        metrics = binary_metrics(gold[:, j], p, float(thresholds[j]))
        rows.append({"value": value_id, "f1": metrics["f1"], "auc": metrics["roc_auc"],
                     "ece": expected_calibration_error(gold[:, j], p),
                     "agreement": float((scores.labels[:, j] == reference.labels[:, k]).mean()),
                     "mean_abs_dp": float(np.abs(p - p_ref).mean()),
                     "positive_rate": float(scores.labels[:, j].mean())})
    return rows


def measure(ensemble: Path, others: list[Path], data: str | None = None, part: str = "test",
            repeats: int = 3, device: str = "cpu") -> dict:
    """{"texts": n, "registries": {name: {"registry_id", "texts_per_s", "rows": [...]}}}."""
    texts, gold, taxonomy = gold_part(ensemble, data, part)
    paths = [ensemble, *others]
    engines = [Ensemble.from_registry(path, device=device) for path in paths]
    all_scores, rates = timed_rounds(engines, texts, repeats)
    out = {"texts": len(texts), "part": part, "repeats": repeats, "registries": {}}
    for path, engine, scores, rate in zip(paths, engines, all_scores, rates, strict=True):
        order = [scores.value_ids.index(v) for v in taxonomy.ids if v in scores.value_ids]
        columns = [taxonomy.ids.index(v) for v in scores.value_ids]
        rows = compare(all_scores[0], scores, engine.thresholds, gold[:, columns])
        out["registries"][str(path)] = {
            "registry_id": engine.registry.registry_id, "texts_per_s": rate,
            "backbone": engine.registry.manifest.get("backbone"), "rows": [rows[i] for i in order]}
    return out


def markdown(result: dict) -> str:
    """One table per registry (value, F1, AUC, ECE, agreement, mean |dp|) with a macro row, then
    texts/s of each and its ratio to the ensemble's."""
    lines, first = [], None
    for name, reg in result["registries"].items():
        first = first or reg
        lines += [f"\n{name} ({reg['registry_id']}, {reg['backbone']})\n",
                  "| value | F1 | AUC | ECE | agreement | mean abs dp |", "|---|---|---|---|---|---|"]
        for r in reg["rows"]:
            lines.append(f"| {r['value']} | {r['f1']:.3f} | {r['auc']:.3f} | {r['ece']:.3f} | "
                         f"{r['agreement']:.3f} | {r['mean_abs_dp']:.3f} |")
        macro = {k: np.mean([r[k] for r in reg["rows"]]) for k in FIGURES}
        lines.append(f"| macro | {macro['f1']:.3f} | {macro['auc']:.3f} | {macro['ece']:.3f} | "
                     f"{macro['agreement']:.3f} | {macro['mean_abs_dp']:.3f} |")
    lines += ["", f"speed on {result['texts']} {result['part']} texts:",
              "| registry | texts/s | x ensemble |", "|---|---|---|"]
    for name, reg in result["registries"].items():
        ratio = reg["texts_per_s"] / first["texts_per_s"]
        lines.append(f"| {name} | {reg['texts_per_s']:.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ensemble", required=True, type=Path, help="the binary registry (reference)")
    parser.add_argument("--other", action="append", default=[], type=Path,
                        help="a registry to compare (multilabel, a student); repeatable")
    parser.add_argument("--data", help="annotated file; default: the one in the ensemble's job.json")
    parser.add_argument("--part", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (each registry's best counts)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = measure(args.ensemble, args.other, args.data, args.part, args.repeats, args.device)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
