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
    from valuecsv_ray.synthetic import random_registry

    return random_registry(path, size="tiny", seed=seed)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    return build_tiny_registry(tmp_path_factory.mktemp("registry") / "tiny12")
