"""Shared fixtures: the real data beside the checkout, loaded once."""

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before anything imports ray
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# registry caches (fetched registries, verification records) of this session, not the user's
os.environ.setdefault("VALUECSV_CACHE", tempfile.mkdtemp(prefix="valuecsv-test-cache-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# The integration tier (`scripts/test.sh --quick` skips it): a test is in it when it is marked
# `integration` or `ray`, or uses one of these fixtures (directly or through another fixture).
RAY_FIXTURES = {"ray_local", "serve_run"}  # a local Ray instance, or `serve run` starting one
INTEGRATION_FIXTURES = RAY_FIXTURES | {"s3"}  # s3: a moto server in this process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts Ray `ray`, and every slow one (Ray, servers) `integration`."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & RAY_FIXTURES:
            item.add_marker(pytest.mark.ray)
        if used & INTEGRATION_FIXTURES or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.integration)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A local S3 endpoint (moto) for the s3:// tests. pyarrow reads AWS_ENDPOINT_URL, and Ray's
# workers get these variables from ray_local's runtime_env, so they must be fixed up front.
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"}


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
    from valuecsv_ray.train.annotated import load_annotated

    return load_annotated(shared_data / "ValueCSV5000.xlsx")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance (2 CPUs, no dashboard), started once per test session."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 2**20,
             log_to_driver=False, runtime_env={"env_vars": S3_ENV})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3():
    """A local S3 server (moto) at S3_ENV's endpoint; yields a pyarrow filesystem on it."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    port = int(S3_ENV["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    yield pafs.S3FileSystem(endpoint_override=S3_ENV["AWS_ENDPOINT_URL"], allow_bucket_creation=True)
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k)
        else:
            os.environ[k] = v


def build_tiny_registry(path: Path, seed: int = 0) -> Path:
    """A complete 12-evaluator registry of tiny BERTs (distinct random heads), written
    through the registry's own functions: for engine and serving tests, no training."""
    from valuecsv_ray.testing.synthetic import random_registry

    return random_registry(path, size="tiny", seed=seed)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    return build_tiny_registry(tmp_path_factory.mktemp("registry") / "tiny12")


def registry_on_sample(path: Path) -> Path:
    """A random tiny 12-evaluator registry recorded as trained on the shipped sample (its sha256
    and a split), so a student can take the sample's gold labels."""
    import json

    from valuecsv_ray.registry import manifest as reg
    from valuecsv_ray.testing.synthetic import random_registry
    from valuecsv_ray.train.annotated import load_annotated
    from valuecsv_ray.train.split import make_split

    random_registry(path, size="tiny", seed=1)
    data = load_annotated("sample")
    job = json.loads((path / reg.JOB_FILE).read_text(encoding="utf-8"))
    job["config"]["data"] = "sample"
    job["data"] |= {"sha256": data.sha256, "source": data.source, "n_samples": len(data)}
    reg.write_json(path / reg.JOB_FILE, job)
    reg.write_json(path / reg.SPLIT_FILE, make_split(data.labels, 0).to_json())
    reg.write_manifest(path, tuple(reg.load_registry(path).manifest["values"]))
    return path


@pytest.fixture(scope="session")
def teacher_on_sample():
    """`teacher_on_sample(path)`: a teacher registry for distillation tests (registry_on_sample)."""
    return registry_on_sample


@pytest.fixture(scope="module")
def one_torch_thread():
    """A tiny model runs fastest on one thread; more only contend with other work for the CPUs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def serve_run():
    """`serve_run(config, folder)`: a context manager running `serve run` of a Serve YAML."""
    return _serve_run


@contextlib.contextmanager
def _serve_run(config: dict, folder: Path, ready_path: str = "/healthz") -> Iterator[str]:
    """`serve run` of a Serve YAML (written into `folder` with an ephemeral port), as a deployer
    types it, in its own process group; yields the base URL once `ready_path` answers 200."""
    import signal
    import sys

    import yaml

    port = _free_port()
    config = {**config, "http_options": {**config.get("http_options", {}), "port": port}}
    (folder / "serve.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("serve")), "run", "serve.yaml"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with _process_group(command, url + ready_path, folder / "serve.log", env, ready_s=180, stop=signal.SIGINT,
                        cwd=folder):
        yield url


@pytest.fixture(scope="session")
def process_group():
    """`process_group(command, ready_url, log_path, env, ready_s, stop)`: a context manager running
    `command` in its own process group until `ready_url` answers 200 (see _process_group)."""
    return _process_group


@contextlib.contextmanager
def _process_group(command: list[str], ready_url: str, log_path: Path, env: dict, ready_s: float,
                   stop: int, cwd: Path | None = None) -> Iterator[None]:
    """Start `command` in a process group of its own (output to `log_path`), wait until `ready_url`
    answers 200 (failing with the log's tail after `ready_s`, or when it exits), yield; then stop
    the group with the signal `stop`, and SIGKILL it if it is still there after 60 s."""
    import signal
    import subprocess
    import time
    import urllib.error
    import urllib.request

    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline, ready = time.time() + ready_s, False
            while not ready and time.time() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(ready_url, timeout=10) as resp:
                        ready = resp.status == 200
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(1)
            assert ready, log_path.read_text()[-3000:]
            yield
        finally:
            os.killpg(proc.pid, stop)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
