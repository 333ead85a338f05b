"""Registries as data from elsewhere: checksums, safe paths, and registries on object storage (moto S3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from valuecsv_ray.registry import MANIFEST, RegistryError, load_registry
from valuecsv_ray.registry_store import COMPLETE, publish_registry

TEXTS = ["人人平等，依法办事。", "他诚实守信，热心帮助邻居。", "今天天气很好。"]


@pytest.fixture
def registry(tiny_registry, tmp_path) -> Path:
    """A private copy of the tiny registry, free to break."""
    return Path(shutil.copytree(tiny_registry, tmp_path / "reg"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "registries"


def weights(registry: Path) -> Path:
    return next(registry.glob("evaluators/*/model.safetensors"))


def test_the_manifest_records_every_evaluator_file_and_the_id_pins_them(registry):
    manifest = json.loads((registry / MANIFEST).read_text())
    assert manifest["format_version"] == 3
    files = manifest["files"]
    assert weights(registry).relative_to(registry).as_posix() in files
    assert all(len(h) == 64 for h in files.values()) and len(files) >= 12 * 4
    load_registry(registry)  # intact: loads


def test_a_swapped_weight_file_is_refused_naming_it(registry):
    target = weights(registry)
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(RegistryError, match="corrupted or swapped") as e:
        load_registry(registry)
    assert str(target) in str(e.value)


def test_a_pickle_added_to_an_evaluator_folder_is_refused(registry):
    extra = weights(registry).with_name("pytorch_model.bin")
    extra.write_bytes(b"not loaded, ever")
    with pytest.raises(RegistryError, match="not part of the registry"):
        load_registry(registry)


def test_paths_that_leave_the_registry_are_refused(registry, tmp_path):
    manifest = json.loads((registry / MANIFEST).read_text())
    value = next(iter(manifest["evaluators"]))
    manifest["evaluators"][value]["path"] = "../elsewhere"
    (registry / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="leaves the registry folder"):
        load_registry(registry)


def test_a_symlink_out_of_the_registry_is_refused(registry, tmp_path):
    target = weights(registry)
    outside = tmp_path / "outside.safetensors"
    shutil.move(target, outside)
    target.symlink_to(outside)
    with pytest.raises(RegistryError, match="outside the registry folder"):
        load_registry(registry)


def test_a_registry_on_s3_is_fetched_once_checked_and_scores_like_the_local_one(registry, s3, cache):
    from valuecsv_ray.scoring.engine import Ensemble

    s3.create_dir("models")
    publish_registry(registry, "s3://models/runs/tiny")
    remote = load_registry("s3://models/runs/tiny")
    assert remote.registry_id == load_registry(registry).registry_id
    assert remote.path == cache / remote.registry_id and (remote.path / COMPLETE).is_file()
    local_scores = Ensemble.from_registry(registry, device="cpu").score(TEXTS).probs
    remote_scores = Ensemble.from_registry("s3://models/runs/tiny", device="cpu").score(TEXTS).probs
    np.testing.assert_allclose(remote_scores, local_scores, atol=1e-6)
    # a second load copies nothing: it works with the remote weights gone
    s3.delete_file(f"models/runs/tiny/{weights(registry).relative_to(registry).as_posix()}")
    assert load_registry("s3://models/runs/tiny").path == remote.path


def test_an_altered_file_on_s3_is_refused_and_nothing_is_cached(registry, s3, cache):
    s3.create_dir("models")
    relative = weights(registry).relative_to(registry).as_posix()
    publish_registry(registry, "s3://models/runs/bad")
    with s3.open_output_stream(f"models/runs/bad/{relative}") as f:
        f.write(b"swapped")
    with pytest.raises(RegistryError, match="corrupted or swapped"):
        load_registry("s3://models/runs/bad")
    assert not cache.exists() or not any(cache.iterdir())


def test_a_missing_registry_on_s3_says_where_it_looked(s3, cache):
    with pytest.raises(RegistryError, match="s3://models/runs/none"):
        load_registry("s3://models/runs/none")
