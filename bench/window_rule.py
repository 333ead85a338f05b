"""The window rule measured: how max and mean aggregation score long texts, from a registry.

    python bench/window_rule.py runs/valuecsv5000-tiny

Training records, per evaluator, figures on test texts joined 2-3 at a time (positive for a value
if any part is): F1 and the share labelled positive with `max` and with `mean` aggregation at
the threshold tuned on single texts, and F1 at a threshold tuned on validation texts joined the
same way; beside them the single-text F1 and positive rate. This prints them as one table with
macro means, the figures that chose the default aggregation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def window_rule_table(manifest: dict) -> pd.DataFrame:
    rows = []
    for value_id, ev in manifest["evaluators"].items():
        long = ev.get("long_texts")
        if not long:
            continue
        rows.append({
            "value": value_id, "windows": long["mean_windows"], "true_pos": long["true_positive_rate"],
            "F1 single": long["single"]["f1"], "pos single": long["single"]["positive_rate"],
            **{f"{key} {how}": long[how][field] for how in ("max", "mean") for key, field in (
                ("F1", "f1"), ("pos", "positive_rate"), ("F1 own-thr", "f1_own_threshold"))},
        })
    table = pd.DataFrame(rows)
    if not table.empty:
        table = pd.concat([table, table.drop(columns="value").mean().to_frame().T.assign(value="macro mean")],
                          ignore_index=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("registry", help="a trained registry folder")
    args = parser.parse_args()
    manifest = json.loads((Path(args.registry) / "manifest.json").read_text(encoding="utf-8"))
    table = window_rule_table(manifest)  # an incomplete registry still shows what it has
    if table.empty:
        raise SystemExit(f"{args.registry}: no long-text figures; run `valuecsv-ray registry evaluate` first")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
