"""The Serve endpoint, for real: serve.run on 127.0.0.1, HTTP requests, many clients."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.serve import ServeArgs, app_builder
from valuecsv_ray.taxonomy import VALUE_IDS

pytestmark = pytest.mark.ray
PORT = 8431
TOKEN = "test-token-7f3a"
URL = f"http://127.0.0.1:{PORT}"
TEXTS = ["依法治国，公正司法。", "经济发展，国家富强。", "邻里互助，友善待人。"]
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "serve_configs").glob("*.yaml"))


def _request(path, body=None, token=TOKEN, raw=None, method=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            return e.code, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return e.code, payload.decode(errors="replace")


@pytest.fixture(scope="module")
def served(ray_local, tiny_registry):
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    app = app_builder({"registry": str(tiny_registry), "token": TOKEN, "max_texts_per_request": 8,
                       "max_body_bytes": 4096, "max_text_chars": 1000, "max_batch_size": 16,
                       "batch_wait_timeout_s": 0.02})
    serve.run(app, name="valuecsv", route_prefix="/")
    yield tiny_registry
    serve.shutdown()


def test_served_scores_equal_engine_scores(served):
    status, body = _request("/v1/score", {"texts": TEXTS})
    assert status == 200, body
    served_probs = np.array([[r["probs"][v] for v in VALUE_IDS] for r in body["results"]])
    engine = Ensemble.from_registry(served)
    np.testing.assert_allclose(served_probs, engine.score(TEXTS).probs, atol=1e-5)
    assert body["registry_id"] == engine.registry.registry_id
    assert set(body["results"][0]["levels"]) == {"national", "societal", "personal"}


def test_many_clients_are_batched_without_errors(served):
    def one(i):
        return _request("/v1/score", {"texts": [TEXTS[i % 3], f"第{i}个请求：诚信友善。"]})

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, range(200)))
    errors = [a for a in answers if a[0] != 200]
    assert not errors, errors[:3]
    batched = [body["batched_requests"] for _, body in answers]
    assert max(batched) > 1, "no two requests were ever scored together"
    for _, body in answers:  # each answer belongs to its own request
        assert len(body["results"]) == 2


def test_missing_or_wrong_token_is_401(served):
    assert _request("/v1/score", {"texts": TEXTS}, token=None)[0] == 401
    assert _request("/v1/score", {"texts": TEXTS}, token="wrong")[0] == 401
    assert _request("/v1/model", token=None)[0] == 401


def test_limits_are_413(served):
    assert _request("/v1/score", {"texts": ["短"] * 9})[0] == 413  # > 8 texts
    assert _request("/v1/score", {"texts": ["长" * 1001]})[0] == 413  # > 1000 characters
    assert _request("/v1/score", raw=b'{"texts": ["' + b"a" * 5000 + b'"]}')[0] == 413  # > 4096 bytes


@pytest.mark.parametrize("body", [{"texts": []}, {"texts": "not a list"}, {"text": ["x"]},
                                  {"texts": [1, 2]}, {"texts": ["  "]}])
def test_schema_errors_are_422(served, body):
    assert _request("/v1/score", body)[0] == 422


def test_info_routes(served):
    status, values = _request("/v1/values")
    assert status == 200 and [v["id"] for v in values] == list(VALUE_IDS)
    status, manifest = _request("/v1/model")
    assert status == 200 and manifest["values"] == list(VALUE_IDS)
    status, health = _request("/healthz", token=None)
    assert status == 200 and health["status"] == "ok" and health["inference_ms"] > 0
    with urllib.request.urlopen(URL + "/docs", timeout=30) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_serve_configs_validate(path):
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema(**config)
    assert schema.http_options.host == "127.0.0.1"
    for app in config["applications"]:
        assert app["import_path"] == "valuecsv_ray.serve:app_builder"
        args = ServeArgs(**app["args"])
        assert args.max_ongoing_requests >= args.max_batch_size, "batches could never fill"


def test_two_serve_configs_ship():
    assert {p.name for p in CONFIGS} == {"ensemble.yaml", "ensemble-gpu.yaml"}


def test_cli_score_queries_the_endpoint(served):
    from click.testing import CliRunner

    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["score", "--url", URL, "--token", TOKEN, *TEXTS[:2]])
    assert result.exit_code == 0, result.output
    assert "Rule of Law 法治" in result.output and "Friendliness 友善" in result.output
    denied = CliRunner().invoke(main, ["score", "--url", URL, "--token", "wrong", "文本"])
    assert denied.exit_code == 1 and "401" in denied.output


def test_serve_run_of_the_shipped_yaml(tiny_registry, tmp_path):
    """`serve run` of a copy of serve_configs/ensemble.yaml, as a deployer types it: Serve's own
    YAML import path calls the app builder with the `args:` mapping alone."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    config = yaml.safe_load((CONFIGS[0].parent / "ensemble.yaml").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config["http_options"]["port"] = port
    config["applications"][0]["args"] |= {"registry": str(tiny_registry), "token": TOKEN}
    (tmp_path / "ensemble.yaml").write_text(yaml.safe_dump(config))
    serve_bin = Path(sys.executable).with_name("serve")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(serve_bin), "run", "ensemble.yaml"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
                    health = resp.status
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        assert health == 200, (tmp_path / "serve.log").read_text()[-3000:]
        req = urllib.request.Request(url + "/v1/score", data=json.dumps({"texts": TEXTS}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
            assert len(json.loads(resp.read())["results"]) == len(TEXTS)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
