"""The Serve endpoint, for real: serve.run on 127.0.0.1, HTTP requests, many clients; its schema
fuzzed with schemathesis; the client's retries against a real flaky server."""

import http.client
import http.server
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import schemathesis
import yaml

from valuecsv_ray.registry.manifest import load_registry
from valuecsv_ray.scoring.client import EndpointError, RetryPolicy, score_texts
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.serve import app_builder
from valuecsv_ray.serve.api import BLANK, NOT_BLANK
from valuecsv_ray.serve.proxy import controller_options

pytestmark = pytest.mark.ray
PORT = 8431
TOKEN = "test-token-7f3a"
URL = f"http://127.0.0.1:{PORT}"
TEXTS = ["依法治国，公正司法。", "经济发展，国家富强。", "邻里互助，友善待人。"]
LIMITS = {"max_texts_per_request": 8, "max_body_bytes": 4096, "max_text_chars": 1000}
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "serve_configs").glob("*.yaml"))
ERROR_KEYS = {"status", "message", "errors"}  # serve.Error: every error body
ERROR_REF = "#/components/schemas/Error"


def _request(path, body=None, token=TOKEN, raw=None, method=None, url=URL):
    """(status, decoded JSON body, headers) of one request; no retries."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null"), resp.headers
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            return e.code, json.loads(payload or b"null"), e.headers
        except json.JSONDecodeError:
            return e.code, payload.decode(errors="replace"), e.headers


@pytest.fixture(scope="module")
def served(ray_local, tiny_registry):
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": PORT}, controller_options=controller_options())
    app = app_builder({"registry": str(tiny_registry), "token": TOKEN, **LIMITS, "max_batch_size": 16,
                       "batch_wait_timeout_s": 0.02})
    serve.run(app, name="valuecsv", route_prefix="/")
    yield tiny_registry
    serve.shutdown()


@pytest.fixture(scope="module")
def taxonomy(served):
    return load_registry(served).taxonomy


def test_served_scores_equal_engine_scores(served, taxonomy):
    status, body, _ = _request("/v1/score", {"texts": TEXTS})
    assert status == 200, body
    served_probs = np.array([[r["probs"][v] for v in taxonomy.ids] for r in body["results"]])
    engine = Ensemble.from_registry(served)
    scores = engine.score(TEXTS)
    np.testing.assert_allclose(served_probs, scores.probs, atol=1e-5)
    assert body["registry_id"] == engine.registry.registry_id
    for served_record, record in zip(body["results"], scores.to_records(), strict=True):
        assert list(served_record["groups"]) == list(taxonomy.groups)
        assert served_record["groups"] == pytest.approx(record["groups"], abs=1e-5)
        assert served_record["labels"] == record["labels"]


def test_many_clients_are_batched_without_errors(served):
    def one(i):
        return _request("/v1/score", {"texts": [TEXTS[i % 3], f"第{i}个请求：邻里互助。"]})

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, range(200)))
    errors = [a[:2] for a in answers if a[0] != 200]
    assert not errors, errors[:3]
    batched = [body["batched_requests"] for _, body, _ in answers]
    assert max(batched) > 1, "no two requests were ever scored together"
    for _, body, _ in answers:  # each answer belongs to its own request
        assert len(body["results"]) == 2


def test_missing_or_wrong_token_is_401(served):
    for path, body, token in [("/v1/score", {"texts": TEXTS}, None), ("/v1/score", {"texts": TEXTS}, "wrong"),
                              ("/v1/model", None, None), ("/v1/values", None, "wrong")]:
        status, error, headers = _request(path, body, token=token)
        assert status == 401 and set(error) == ERROR_KEYS and error["status"] == 401, (path, error)
        assert headers["WWW-Authenticate"] == "Bearer"


def test_texts_over_the_limits_are_413(served):
    status, error, _ = _request("/v1/score", {"texts": ["短"] * 9})  # > 8 texts
    assert status == 413 and error["errors"][0]["loc"] == ["body", "texts"], error
    status, error, _ = _request("/v1/score", {"texts": ["短", "x" * 1001]})  # > 1000 characters
    assert status == 413 and error["errors"][0]["loc"] == ["body", "texts", 1], error


def test_body_over_max_body_bytes_is_413_from_the_body_limit(served):
    texts = ["a" * LIMITS["max_text_chars"]] * 5  # each text and their count within the limits
    raw = json.dumps({"texts": texts}).encode()
    assert len(raw) > LIMITS["max_body_bytes"]
    status, error, _ = _request("/v1/score", raw=raw)
    assert status == 413, error
    assert error["errors"][0]["type"] == "body_too_large" and "4096" in error["message"], error
    # the same body streamed without Content-Length (chunked) is counted as it arrives
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    conn.request("POST", "/v1/score", body=iter([raw[:2000], raw[2000:]]), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    error = json.loads(response.read())
    conn.close()
    assert response.status == 413 and error["errors"][0]["type"] == "body_too_large", error
    # just under the limit is scored
    fits = json.dumps({"texts": ["a" * 1000] * 3}).encode()
    assert len(fits) <= LIMITS["max_body_bytes"] and _request("/v1/score", raw=fits)[0] == 200


@pytest.mark.parametrize("body", [{"texts": []}, {"texts": "not a list"}, {"text": ["x"]}, {"texts": [1, 2]},
                                  {"texts": ["  "]}, {"texts": ["\u3000\n"]}, {"texts": ["\x1c\x85"]},
                                  {"texts": ["ok"], "extra": 1}])
def test_schema_errors_are_422(served, body):
    status, error, _ = _request("/v1/score", body)
    assert status == 422 and set(error) == ERROR_KEYS and error["errors"], error
    assert all(e["loc"][0] == "body" for e in error["errors"]), error


def test_malformed_bodies_are_answered_in_the_error_shape(served):
    for raw, expected in [(b'{"texts": [', 422), (b'{"texts": ["\xff\xfe"]}', 400),
                          (b'{"texts": ["\\ud800"]}', 422)]:
        status, error, _ = _request("/v1/score", raw=raw)
        assert status == expected and set(error) == ERROR_KEYS, (raw, error)
    status, error, headers = _request("/v1/score", method="GET")
    assert status == 405 and set(error) == ERROR_KEYS and "POST" in headers["Allow"]
    status, error, _ = _request("/v2/nothing")
    assert status == 404 and set(error) == ERROR_KEYS


def test_not_blank_is_what_str_strip_removes():
    """The schema's pattern and the engine's check (text.strip()) agree on every character."""
    assert set(BLANK) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert NOT_BLANK.startswith("[^") and NOT_BLANK.count("\\u") == len(BLANK)


def test_info_routes(served, taxonomy):
    status, values, _ = _request("/v1/values")
    assert status == 200 and values == taxonomy.to_dict()
    status, manifest, _ = _request("/v1/model")
    assert status == 200 and manifest["values"] == list(taxonomy.ids)
    status, health, _ = _request("/healthz", token=None)
    assert status == 200 and health["status"] == "ok" and health["inference_ms"] > 0
    with urllib.request.urlopen(URL + "/docs", timeout=30) as resp:
        assert resp.status == 200


def test_openapi_states_what_the_server_enforces(served, taxonomy):
    status, spec, _ = _request("/openapi.json", token=None)
    assert status == 200
    schemas = spec["components"]["schemas"]
    texts = schemas["ScoreRequest"]["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, LIMITS["max_texts_per_request"])
    assert (texts["items"]["minLength"], texts["items"]["maxLength"]) == (1, LIMITS["max_text_chars"])
    assert texts["items"]["pattern"] == NOT_BLANK and schemas["ScoreRequest"]["additionalProperties"] is False
    assert set(schemas["Probs"]["properties"]) == set(taxonomy.ids) == set(schemas["Probs"]["required"])
    assert set(schemas["Groups"]["properties"]) == set(taxonomy.groups)
    assert "HTTPValidationError" not in schemas
    expected = {"/v1/score": {"200", "400", "401", "408", "413", "422", "500", "503"},
                "/v1/values": {"200", "401", "408", "413", "500", "503"},
                "/v1/model": {"200", "401", "408", "413", "500", "503"},
                "/healthz": {"200", "408", "413", "500", "503"}}
    for path, statuses in expected.items():
        (operation,) = spec["paths"][path].values()
        assert set(operation["responses"]) == statuses, path
        for code, response in operation["responses"].items():
            if code != "200":
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
        assert ("security" in operation) == (path != "/healthz"), path
    score_responses = spec["paths"]["/v1/score"]["post"]["responses"]
    assert f"{LIMITS['max_body_bytes']} bytes" in score_responses["413"]["description"]
    assert "Retry-After" in score_responses["503"]["headers"]
    assert "WWW-Authenticate" in score_responses["401"]["headers"]


# ---- schema-driven fuzzing: what /openapi.json promises is what the running app answers

FUZZ_CONFIG = {  # as `st run --checks all`, bounded and deterministic
    "headers": {"Authorization": f"Bearer {TOKEN}"},
    "generation": {"max-examples": 40, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},  # the API has no links between operations
    # The schema states the per-request and per-text limits, and the server answers their violation
    # with 413 (documented): schemathesis expects 4xx but 413 for invalid data unless told.
    "checks": {
        "negative_data_rejection": {"expected-statuses": ["400", "401", "404", "405", "413", "415", "422"]},
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "413"]},  # see _413_for_limits
    },
}


@schemathesis.check
def _413_for_limits(ctx, response, case) -> None:
    """A 413 names the limit it enforces; for a body the schema allows, only the byte limit
    (which JSON Schema cannot state) may answer it."""
    if response.status_code != 413:
        return None
    kinds = {e["type"] for e in response.json()["errors"]}
    sent = len(response.request.body or b"")
    assert kinds and kinds <= {"too_long", "string_too_long", "body_too_large"}, kinds
    assert "body_too_large" not in kinds or sent > LIMITS["max_body_bytes"], f"413 for {sent} bytes"
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    assert negative or kinds == {"body_too_large"}, f"a schema-valid body got 413 for {kinds}"
    return None


def test_fuzzed_requests_get_documented_answers(served):
    """Every check schemathesis has (no 5xx; documented statuses, content types and headers;
    answers valid against the response schemas; valid data accepted, invalid data rejected; auth
    enforced; undocumented methods 405) on its coverage and fuzzing cases for each route."""
    from schemathesis.engine import Status, events, from_schema

    config = schemathesis.Config.from_dict(FUZZ_CONFIG)
    schema = schemathesis.openapi.from_url(URL + "/openapi.json", config=config)
    failures, statuses = [], []
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.value!r}")
        if isinstance(event, events.FatalError):
            failures.append(f"schemathesis failed: {event.exception!r}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        statuses += [i.response.status_code for i in event.recorder.interactions.values() if i.response]
        for check in (c for checks in event.recorder.checks.values() for c in checks):
            if check.status == Status.FAILURE:
                info = check.failure_info
                failures.append(f"{event.recorder.label} {check.name}: {info.failure.title}\n"
                                f"{info.failure.message}\n{info.code_sample[:500]}")
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert statuses.count(200) >= 20 and {401, 405, 413, 422} <= set(statuses), sorted(set(statuses))


def test_cli_score_queries_the_endpoint(served, taxonomy):
    from click.testing import CliRunner

    from valuecsv_ray.cli import main

    result = CliRunner().invoke(main, ["score", "--url", URL, "--token", TOKEN, *TEXTS[:2]])
    assert result.exit_code == 0, result.output
    assert all(v.name in result.output for v in taxonomy.labels), result.output
    denied = CliRunner().invoke(main, ["score", "--url", URL, "--token", "wrong", "文本"])
    assert denied.exit_code == 1 and "401" in denied.output and "--token" in denied.output


OTHER_TAXONOMY = {
    "name": "virtues", "title": "Three virtues", "group_kind": "facet", "groups": ["heart", "hand"],
    "labels": [{"id": "care", "en": "Care", "zh": "关怀", "group": "heart", "column": "care"},
               {"id": "candour", "en": "Candour", "zh": "坦诚", "group": "heart", "column": "cand"},
               {"id": "craft", "en": "Craft", "zh": "匠心", "group": "hand", "column": "craft"}],
}


@pytest.fixture(scope="module")
def other_app(served, tmp_path_factory):
    """A second app: a registry of another taxonomy, one request at a time and one waiting."""
    from ray import serve

    from valuecsv_ray.taxonomy import Taxonomy
    from valuecsv_ray.testing.synthetic import random_registry

    taxonomy = Taxonomy.from_dict(OTHER_TAXONOMY)
    registry = random_registry(tmp_path_factory.mktemp("other") / "virtues", taxonomy=taxonomy)
    app = app_builder({"registry": str(registry), **LIMITS, "max_batch_size": 1, "max_ongoing_requests": 1,
                       "max_queued_requests": 1})
    serve.run(app, name="other", route_prefix="/other")
    yield taxonomy
    serve.delete("other")


def test_the_api_follows_the_served_registrys_taxonomy(other_app):
    status, values, _ = _request("/other/v1/values")
    assert status == 200 and values == OTHER_TAXONOMY
    status, body, _ = _request("/other/v1/score", {"texts": TEXTS[:2]})
    assert status == 200 and len(body["results"]) == 2, body
    assert [list(r["probs"]) for r in body["results"]] == [["care", "candour", "craft"]] * 2
    assert list(body["results"][0]["groups"]) == ["heart", "hand"]
    spec = _request("/other/openapi.json")[1]["components"]["schemas"]
    assert list(spec["Probs"]["properties"]) == ["care", "candour", "craft"]
    assert list(spec["Groups"]["properties"]) == ["heart", "hand"]


def test_a_full_queue_answers_503_in_the_error_shape(other_app):
    """Serve's proxy answers a full queue (max_queued_requests) itself, in plain text; `ProxyErrors`
    (installed through controller_options) turns it into an Error body with Retry-After."""
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: _request("/other/v1/score", {"texts": TEXTS}), range(12)))
    busy = [(error, headers) for status, error, headers in answers if status == 503]
    assert busy and {status for status, _, _ in answers} <= {200, 503}, [a[:2] for a in answers]
    for error, headers in busy:
        assert set(error) == ERROR_KEYS and "max_queued_requests" in error["message"], error
        assert headers["Content-Type"] == "application/json" and int(headers["Retry-After"]) > 0


def test_killed_replica_answers_503_with_retry_after_and_clients_retry_through(served):
    """Serve's proxy drops the requests of a replica that dies (a bare 500); `ProxyErrors` answers
    them 503 + Retry-After while Serve restarts the replica, and retrying clients get through."""
    import ray

    def replica():
        (name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                   if a["name"].startswith("SERVE_REPLICA::valuecsv#")]
        return ray.get_actor(name, namespace="serve")

    body = {"texts": [f"text {i}: " + "neighbours help each other. " * 16 for i in range(8)]}  # < 4096 bytes
    stop, raw, retried = threading.Event(), [], []
    policy = RetryPolicy(attempts=10, base_delay_s=0.5, max_delay_s=5)

    def send_raw():  # no retries: what the server answers
        while not stop.is_set():
            status, _, headers = _request("/v1/score", body)
            raw.append((time.monotonic(), status, headers.get("Retry-After")))

    def send_retrying():  # what a client of scoring.client sees
        while not stop.is_set():
            retried.append(len(score_texts(URL, body["texts"], TOKEN, policy)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        running = [pool.submit(fn) for fn in (send_raw, send_raw, send_retrying, send_retrying)]
        # Only the requests running inside the replica when it dies get the 503; Serve holds the
        # ones not yet handed to it until the new replica is up. Which requests are inside at the
        # kill is timing (a loaded machine may have none there), so kill again, up to 3 times,
        # until a 503 is seen.
        for _ in range(3):
            time.sleep(1.0)
            killed = time.monotonic()
            ray.kill(replica(), no_restart=True)
            deadline = killed + 120
            while time.monotonic() < deadline and not any(t > killed + 1 and s == 200 for t, s, _ in raw):
                time.sleep(0.5)  # until a request sent after the kill is answered by the new replica
            if any(status == 503 for _, status, _ in raw):
                break
        stop.set()
        for future in running:
            future.result()  # a retrying client raised nothing
    statuses = {status for _, status, _ in raw}
    assert 500 not in statuses and statuses <= {200, 503}, statuses
    assert any(status == 503 and retry_after for _, status, retry_after in raw), raw
    assert retried and set(retried) == {8}


# ---- the client's retries, against a real flaky HTTP server on 127.0.0.1


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next step of the server's script: a status, or 'drop'."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        step = self.server.script.pop(0) if self.server.script else 200
        self.server.seen.append(step)
        if step == "drop":  # close the connection without an answer
            self.close_connection = True
            return
        status, retry_after = step if isinstance(step, tuple) else (step, None)
        if status == 200:
            result = {"probs": {"v": 0.5}, "labels": {"v": False}, "groups": {"g": 0.5}, "windows": 1}
            payload = {"registry_id": "r", "batched_requests": 1, "results": [result, result]}
        else:
            payload = {"status": status, "message": f"scripted {status}", "errors": []}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # /v1/values: the one value the scripted results hold
        label = {"id": "v", "en": "Vee", "zh": "维", "group": "g", "column": "v_col"}
        data = json.dumps({"name": "t", "title": "t", "group_kind": "group", "groups": ["g"],
                           "labels": [label]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.script, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=2)


def test_client_retries_503_no_sooner_than_retry_after(flaky):
    server, url = flaky
    server.script = [(503, "1"), 200]
    started = time.monotonic()
    assert len(score_texts(url, ["a", "b"], retry=FAST)) == 2
    assert time.monotonic() - started >= 1.0 and server.seen == [(503, "1"), 200]


def test_client_retries_a_dropped_connection(flaky):
    server, url = flaky
    server.script = ["drop", "drop", 200]
    assert len(score_texts(url, ["a", "b"], retry=FAST)) == 2 and server.seen == ["drop", "drop", 200]


def test_client_gives_up_after_bounded_attempts_and_says_what_to_do(flaky):
    server, url = flaky
    server.script = [(503, "0")] * 4
    with pytest.raises(EndpointError, match=r"503 \(scripted 503\), 4 times .*try again later") as e:
        score_texts(url, ["a"], retry=FAST)
    assert e.value.status == 503  # the last answer's status
    server.script = [(503, "3600")]  # asks for longer than the policy waits: not retried
    with pytest.raises(EndpointError, match="retry after 3600 s"):
        score_texts(url, ["a"], retry=FAST)
    server.script, server.seen = [401], []
    with pytest.raises(EndpointError, match="answered 401: scripted 401; pass the server's token") as e:
        score_texts(url, ["a"], retry=FAST)
    assert e.value.status == 401 and server.seen == [401]  # not retried
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    refused = f"{closed}/v1/score: cannot connect .* 4 times .*valuecsv-ray serve"
    with pytest.raises(EndpointError, match=refused):
        score_texts(closed, ["a"], retry=FAST)


def test_client_waits_within_the_backoff_window_and_honours_retry_after(flaky, caplog):
    """The waits the client asked for (its log line; the rule itself is tests/test_retry.py's): a
    drop waits within the first window, a 503 no less than its Retry-After; 429 is retried too."""
    server, url = flaky
    server.script = ["drop", (503, "1"), (429, "0"), 200]
    caplog.set_level("WARNING", logger="valuecsv_ray.scoring.client")
    assert len(score_texts(url, ["a", "b"], retry=RetryPolicy(attempts=4, base_delay_s=0.2))) == 2
    waits = [float(w) for w in re.findall(r"retrying in ([0-9.]+) s \(try (?:2|3|4) of 4\)", caplog.text)]
    assert len(waits) == 3 and waits[0] <= 0.2 and waits[1] >= 1.0 and waits[2] <= 0.8, caplog.text
    assert server.seen == ["drop", (503, "1"), (429, "0"), 200]


def test_cli_score_retries_a_503(flaky, caplog):
    from click.testing import CliRunner

    from valuecsv_ray.cli import main

    server, url = flaky
    server.script = [(503, "0"), 200]
    result = CliRunner().invoke(main, ["score", "--url", url, "a", "b"])
    assert result.exit_code == 0 and server.seen == [(503, "0"), 200], result.output
    assert "answered 503 (scripted 503); retrying" in caplog.text  # logged: a user sees why it waits
    assert "Vee 维" in result.output  # value names from the endpoint's /v1/values


def test_serve_run_of_the_shipped_yaml(tiny_registry, tmp_path, serve_run):
    """`serve run` of a copy of serve_configs/ensemble.yaml, as a deployer types it: Serve's own
    YAML import path calls the app builder with the `args:` mapping alone."""
    config = yaml.safe_load((CONFIGS[0].parent / "ensemble.yaml").read_text())
    config["applications"][0]["args"] |= {"registry": str(tiny_registry), "token": TOKEN}
    with serve_run(config, tmp_path) as url:
        assert len(score_texts(url, TEXTS, TOKEN)) == len(TEXTS)


def test_serve_run_loads_the_registry_from_s3(tiny_registry, tmp_path, serve_run, s3):
    """The shipped YAML with `registry: s3://...`: each replica fetches the registry into its cache."""
    from valuecsv_ray.registry.store import publish_registry

    s3.create_dir("serve-models")
    publish_registry(tiny_registry, "s3://serve-models/runs/tiny12")
    config = yaml.safe_load((CONFIGS[0].parent / "ensemble.yaml").read_text())
    config["applications"][0]["args"] |= {"registry": "s3://serve-models/runs/tiny12", "token": TOKEN}
    with serve_run(config, tmp_path) as url:
        assert len(score_texts(url, TEXTS, TOKEN)) == len(TEXTS)
