"""Synthetic audit scores for the leaderboard tests, over the default taxonomy and a toy one, and
audit / evaluation folders laid out as `valuecsv-ray audit` and `eval` write them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.audit.schema import label_column, prob_column
from valuecsv_ray.audit.stats import compute_stats, write_stats
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

TAX = load_taxonomy()
TOY = Taxonomy.from_dict({  # three values in two groups of unequal size; nothing else assumes twelve
    "name": "toy-virtues", "title": "Toy Virtues", "group_kind": "pillar", "groups": ["inner", "outer"],
    "labels": [
        {"id": "courage", "en": "Courage", "zh": "勇气", "group": "inner", "column": "c"},
        {"id": "patience", "en": "Patience", "zh": "耐心", "group": "inner", "column": "p"},
        {"id": "kindness", "en": "Kindness", "zh": "仁慈", "group": "outer", "column": "k"},
    ],
})


def synthetic_scores(taxonomy: Taxonomy, models: dict[str, float], n_prompts: int = 30, samples: int = 2,
                     seed: int = 0, noise: float = 0.1, skip: dict[str, int] | None = None) -> pd.DataFrame:
    """Each model answers `n_prompts` prompts `samples` times; P = prompt base + the model's offset
    (`models`) + noise, clipped to [0, 1]; `skip[model] = k` leaves out that model's last k prompts."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, size=(n_prompts, len(taxonomy.ids)))
    rows = []
    for model, offset in models.items():
        for q in range(n_prompts - (skip or {}).get(model, 0)):
            for _ in range(samples):
                probs = np.clip(base[q] + offset + rng.normal(0, noise, len(taxonomy.ids)), 0, 1)
                row = {"model": model, "prompt": f"q{q:03d}"}
                for v, p in zip(taxonomy.ids, probs, strict=True):
                    row |= {prob_column(v): np.float32(p), label_column(v): bool(p >= 0.5)}
                rows.append(row)
    return pd.DataFrame(rows)


def write_audit(root: Path, scores: pd.DataFrame, taxonomy: Taxonomy) -> Path:
    """An audit OUT folder: scores/part-0.parquet and stats/ (stats.parquet, coverage, taxonomy)."""
    (root / "scores").mkdir(parents=True)
    scores.to_parquet(root / "scores" / "part-0.parquet", index=False)
    stats, coverage = compute_stats(scores, taxonomy)
    write_stats(stats, coverage, taxonomy, root / "stats")
    return root


@pytest.fixture(scope="session")
def tax() -> Taxonomy:
    return TAX


@pytest.fixture(scope="session")
def toy() -> Taxonomy:
    return TOY


@pytest.fixture(params=["default", "toy"])
def taxonomy(request) -> Taxonomy:
    """The default taxonomy, then the toy one: tests using it run for both."""
    return {"default": TAX, "toy": TOY}[request.param]


@pytest.fixture(scope="session")
def make_scores():
    return synthetic_scores


@pytest.fixture(scope="session")
def make_audit():
    return write_audit


@pytest.fixture
def eval_dir(tmp_path) -> Path:
    """An evaluation folder EVAL whose EVAL/audit/ holds three models on the default taxonomy;
    通义千问 misses the last four prompts."""
    scores = synthetic_scores(TAX, {"qwen-7b": 0.05, "<gpt&4>": 0.0, "通义千问": -0.05}, skip={"通义千问": 4})
    write_audit(tmp_path / "eval" / "audit", scores, TAX)
    return tmp_path / "eval"
