"""The engine benchmark's reference path and the engine agree (so its ratio compares like with
like), and the random registries it times have the advertised shapes."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.testing.synthetic import base_config, random_registry

BENCH = Path(__file__).resolve().parents[1] / "bench" / "engine_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("engine_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_path_matches_engine_on_real_texts(bench, shared_data, tiny_registry):
    texts = bench.load_texts(shared_data, n=40, seed=1)
    assert len(texts) == 40 and all(isinstance(t, str) and t for t in texts)
    engine = Ensemble.from_registry(tiny_registry, device="cpu")
    scores = engine.score(texts)
    ref = bench.reference_scores(bench.reference_models(engine), texts, engine.max_length)
    single = scores.windows == 1
    assert single.sum() >= 20
    np.testing.assert_allclose(scores.probs[single], ref[single], atol=1e-5)


def test_base_config_is_bert_base_sized():
    cfg = base_config()
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (12, 768, 3072)
    assert 20_000 < cfg.vocab_size < 23_000


def test_random_registry_refuses_unknown_size(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        random_registry(tmp_path / "r", size="huge")
