"""Shared fixtures: the real data beside the checkout, loaded once."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before anything imports ray
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; skipped where absent (a fresh clone), a failure under CI=true."""
    if not (SHARED_DATA / "ValueCSV5000.xlsx").is_file():
        reason = f"{SHARED_DATA}/ValueCSV5000.xlsx not found: real-data tests need ../shared/data"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def valuecsv5000(shared_data):
    from valuecsv_ray.data import load_annotated

    return load_annotated(shared_data / "ValueCSV5000.xlsx")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance (2 CPUs, no dashboard), started once per test session."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 2**20,
             log_to_driver=False)
    yield ray
    ray.shutdown()


def build_tiny_registry(path: Path, seed: int = 0) -> Path:
    """A complete 12-evaluator registry of tiny BERTs (distinct random heads), written
    through the registry's own functions: for engine and serving tests, no training."""
    import time

    import torch

    from valuecsv_ray import registry as reg
    from valuecsv_ray.backbone import tiny_model, tiny_tokenizer
    from valuecsv_ray.values import VALUE_IDS

    job = {"config": {"name": path.name, "backbone": "tiny", "mode": "binary"},
           "data": {"sha256": "0" * 64, "source": "synthetic", "n_samples": 0},
           "split": {"seed": seed, "fractions": [0.7, 0.2, 0.1], "counts": {}},
           "versions": reg.versions(), "created": time.time()}
    reg.start_job(path, job)
    for i, value_id in enumerate(VALUE_IDS):
        model = tiny_model()
        generator = torch.Generator().manual_seed(seed * 100 + i)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
        model.config.id2label = {0: f"not_{value_id}", 1: value_id}
        model.config.label2id = {f"not_{value_id}": 0, value_id: 1}
        folder = path / "_build" / value_id
        model.save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
        metrics = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.5,
                   "n_test": 10, "n_test_positive": 5}
        result = {"evaluators": {value_id: {"threshold": 0.3 + 0.03 * i, "metrics": metrics}},
                  "train_start": 0.0, "train_end": 1.0, "epochs_run": 1, "best_epoch": 0,
                  "stopped_early": False, "attempts": [], "history": []}
        reg.add_evaluator(path, value_id, folder, result, job)
    reg.write_manifest(path, VALUE_IDS)
    return path


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    return build_tiny_registry(tmp_path_factory.mktemp("registry") / "tiny12")
