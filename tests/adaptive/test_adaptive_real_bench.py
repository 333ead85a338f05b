"""bench/adaptive_real.py runs on an audit's layout (scores/, stats/taxonomy.json): a synthetic
audit of six simulated models, where one value everyone conforms on is skipped and the others rank."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.adaptive.simulate import draw_parameters, simulate_responses
from valuecsv_ray.audit.schema import label_column, prob_column
from valuecsv_ray.taxonomy import load_taxonomy

BENCH = Path(__file__).resolve().parents[2] / "bench" / "adaptive_real.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("adaptive_real", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_audit(root: Path, n_models: int = 6, n_items: int = 40) -> Path:
    """scores/ with y_/p_ columns for a three-value taxonomy (the last: everyone conforms), and
    one prompt a model did not answer."""
    taxonomy = load_taxonomy()
    taxonomy = taxonomy.subset(list(taxonomy.ids[:3]))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"model": np.repeat([f"m{i}" for i in range(n_models)], n_items),
                          "prompt": np.tile([f"q{j}" for j in range(n_items)], n_models)})
    for v, value in enumerate(taxonomy.ids):
        y = simulate_responses(draw_parameters(n_models, n_items, rng, theta_sd=1.5), rng).ravel()
        y = np.ones_like(y) if v == 2 else y
        frame[prob_column(value)] = y * 0.8 + 0.1
        frame[label_column(value)] = y.astype(bool)
    frame = frame.drop(index=5)  # m0 did not answer q5: the prompt leaves every matrix
    (root / "scores").mkdir(parents=True)
    frame.to_parquet(root / "scores" / "part-0.parquet")
    (root / "stats").mkdir()
    (root / "stats" / "taxonomy.json").write_text(json.dumps(taxonomy.to_dict()), encoding="utf-8")
    return root


def test_bench_prints_both_tables_and_skips_unanimous_values(bench, tmp_path, capsys):
    audit = synthetic_audit(tmp_path / "audit")
    bench.main([str(audit), "--draws", "20", "--budgets", "5", "10", "39"])
    out = capsys.readouterr().out
    assert "6 models" in out and "x 39 prompts" in out and "2 of 3 values rank them" in out
    assert "every answer conforms" in out
    assert "In-sample" in out and "Leave one model out" in out
    assert out.count("fewest items for a mean >= 0.9") == 2


def test_more_items_rank_closer_to_the_full_bank(bench, tmp_path):
    matrices = bench.read_matrices(synthetic_audit(tmp_path / "audit") / "scores", ("prosperity",))
    y = next(iter(matrices.values())).to_numpy()
    assert y.shape == (6, 39)
    _, rows = bench.in_sample(y, (5, 39), draws=30, batch=5, rng=np.random.default_rng(1))
    assert rows[1]["adaptive"] == pytest.approx(1.0) and rows[1]["random"] == pytest.approx(1.0)
    assert rows[0]["random"] < 1.0  # five random items do not reproduce the full bank's order


def test_spearman_rows_counts_no_spread_as_no_ranking(bench):
    rho = bench.spearman_rows(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.5, 0.5, 0.5]]),
                              np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(rho, [1.0, -1.0, 0.0])


def test_items_needed_first_reached_and_held(bench):
    summary = pd.DataFrame({"adaptive": [0.8, 0.95, 0.85, 0.92, 0.97]}, index=[5, 10, 20, 30, 40])
    assert bench.items_needed(summary, "adaptive") == 10
    assert bench.items_needed(summary, "adaptive", stay=True) == 30
    assert bench.items_needed(summary, "adaptive", target=0.99) is None
