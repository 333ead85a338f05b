"""Registries as data from elsewhere: checksums, safe paths, and registries on object storage (moto S3)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from valuecsv_ray.registry.manifest import MANIFEST, RegistryError, load_registry
from valuecsv_ray.registry.store import COMPLETE, FULL_VERIFY_ENV, publish_registry, verification_file

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


# The verification cache: a node hashes a registry once, then only the files that changed since.


@pytest.fixture
def hashed(monkeypatch, cache) -> list[str]:
    """The files sha256_file hashes, in a private VALUECSV_CACHE."""
    from valuecsv_ray.registry import store as registry_store

    seen, real = [], registry_store.sha256_file
    monkeypatch.setattr(registry_store, "sha256_file", lambda path: seen.append(path.name) or real(path))
    monkeypatch.delenv(FULL_VERIFY_ENV, raising=False)
    return seen


def files_of(registry: Path) -> dict:
    return json.loads((registry / MANIFEST).read_text())["files"]


def test_a_second_load_hashes_nothing_and_a_full_verification_hashes_all(registry, hashed, monkeypatch):
    first = load_registry(registry)
    assert len(hashed) == len(files_of(registry))
    assert verification_file(registry, first.registry_id).is_file()
    hashed.clear()
    load_registry(registry)
    assert hashed == []
    load_registry(registry, full_verify=True)
    assert len(hashed) == len(files_of(registry))
    hashed.clear()
    monkeypatch.setenv(FULL_VERIFY_ENV, "1")
    load_registry(registry)
    assert len(hashed) == len(files_of(registry))


def test_only_a_touched_file_is_hashed_again(registry, hashed):
    load_registry(registry)
    hashed.clear()
    os.utime(weights(registry))  # same content, new mtime
    load_registry(registry)
    assert hashed == ["model.safetensors"]


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["new-mtime", "mtime-restored"])
def test_a_file_changed_after_it_was_verified_is_refused(registry, hashed, keep_mtime):
    load_registry(registry)
    target = weights(registry)
    before = target.stat()
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)  # same size
    if keep_mtime:  # an edit that hides behind the old mtime: the ctime still moves
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (target.stat().st_size, target.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(RegistryError, match="corrupted or swapped") as e:
        load_registry(registry)
    assert str(target) in str(e.value)


def test_weight_files_swapped_after_they_were_verified_are_refused(registry, hashed):
    load_registry(registry)
    a, b = sorted(registry.glob("evaluators/*/model.safetensors"))[:2]
    assert a.stat().st_size == b.stat().st_size and a.read_bytes() != b.read_bytes()
    parked = a.with_name("parked")
    os.replace(a, parked), os.replace(b, a), os.replace(parked, b)
    with pytest.raises(RegistryError, match="corrupted or swapped") as e:
        load_registry(registry)
    assert str(a) in str(e.value) and str(b) in str(e.value)


@pytest.mark.parametrize("junk", [b"{not json", b'{"registry_id": 3}', b"[]", b"\xff\xfe"])
def test_a_corrupt_verification_cache_is_ignored_and_rewritten(registry, hashed, junk):
    registry_id = load_registry(registry).registry_id
    record = verification_file(registry, registry_id)
    record.write_bytes(junk)
    hashed.clear()
    load_registry(registry)
    assert len(hashed) == len(files_of(registry))
    assert json.loads(record.read_text())["registry_id"] == registry_id


def test_a_cache_record_for_another_copy_is_not_trusted(registry, hashed, tmp_path):
    load_registry(registry)
    copy = Path(shutil.copytree(registry, tmp_path / "copy"))  # copy2 keeps sizes and mtimes
    hashed.clear()
    load_registry(copy)
    assert len(hashed) == len(files_of(copy))


def test_a_registry_fetched_from_s3_is_hashed_once_on_its_node(registry, s3, hashed):
    s3.create_dir("models")
    publish_registry(registry, "s3://models/runs/once")
    load_registry("s3://models/runs/once")  # fetched, checked, remembered
    assert sorted(hashed) == sorted(Path(rel).name for rel in files_of(registry))
    hashed.clear()
    local = load_registry("s3://models/runs/once")
    assert hashed == []
    target = weights(local.path)
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)  # the cached copy altered on the node
    with pytest.raises(RegistryError, match="corrupted or swapped"):
        load_registry("s3://models/runs/once")
