"""Training with RUNS_DIR on object storage (a local moto S3): Ray Train checkpoints go there, the
registry is built locally, published when complete, and loads (and scores) from its URI."""

import numpy as np
import pyarrow.fs as pafs
import pytest

from valuecsv_ray.config import load_train_config
from valuecsv_ray.registry.manifest import load_registry
from valuecsv_ray.train.runner import train_all

pytestmark = pytest.mark.ray


def test_training_publishes_a_registry_to_s3_that_loads_from_its_uri(
    ray_local, s3, shared_data, tmp_path, monkeypatch
):
    from valuecsv_ray.scoring.engine import Ensemble

    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "cache"))
    s3.create_dir("runs")
    cfg = load_train_config(
        None,
        dict(
            runs_dir="s3://runs/valuecsv",
            name="s3job",
            data=str(shared_data / "ValueCSV5000.xlsx"),
            limit_rows=160,
            values="prosperity,freedom",
            backbone="tiny",
            max_length=64,
            batch_size=16,
            learning_rate=1e-3,
            max_epochs=2,
            patience=5,
            resources_per_worker={"CPU": 0.5},
            max_concurrent=2,
            torch_threads=1,
        ),
    )
    assert cfg.ray_storage == "s3://runs/valuecsv/s3job/_ray"
    uri = train_all(cfg)
    assert uri == "s3://runs/valuecsv/s3job"
    listed = s3.get_file_info(pafs.FileSelector("runs/valuecsv/s3job", recursive=True))
    names = {info.path for info in listed}
    assert "runs/valuecsv/s3job/manifest.json" in names
    assert any("/_ray/" in n for n in names), "Ray Train's checkpoints are not on S3"
    registry = load_registry(uri)
    assert registry.taxonomy.ids == ("prosperity", "freedom")
    scores = Ensemble.from_registry(uri, device="cpu").score(["依法治国，人人自由。"]).probs
    assert scores.shape == (1, 2) and np.isfinite(scores).all()
    assert train_all(cfg) == uri  # a re-run finds the job finished and publishes the same registry
