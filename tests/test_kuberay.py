"""deploy/kuberay: the KubeRay manifests, checked offline.

    python -m pytest tests/test_kuberay.py -q

Each manifest is validated against the openAPIV3Schema (v1) of the vendored KubeRay v1.7.0 CRD in
deploy/kuberay/crds, made as strict as `kubectl apply` (unknown fields are errors). Not checked:
the CRDs' CEL rules (`x-kubernetes-validations`, on fields these manifests leave out), list-map
key uniqueness, and what only a running operator does. The RayService's serveConfigV2 goes
through Ray Serve's own schema and the app's ServeConfig; the RayJobs' entrypoints through the
repository and the CLI. Then the safety rules: token auth on every cluster, nothing exposed
outside Kubernetes, no credential written into a manifest. Nothing here talks to Kubernetes or
starts Ray.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before anything imports ray

import functools  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jsonschema  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from valuecsv_ray.cli import main as cli  # noqa: E402
from valuecsv_ray.cli.options import given  # noqa: E402
from valuecsv_ray.config import load_audit_config, load_train_config, serve_config  # noqa: E402
from valuecsv_ray.fetch import KNOWN_FILES  # noqa: E402
from valuecsv_ray.serve.api import TOKEN_ENV  # noqa: E402
from valuecsv_ray.settings import parse_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kuberay"
CRDS = DEPLOY / "crds"
MANIFESTS = ("rayjob-train.yaml", "rayjob-audit.yaml", "rayservice-ensemble.yaml")
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml.gz", "RayService": "ray.io_rayservices.yaml.gz"}
RAY_IMAGE = "rayproject/ray:2.60.0-py311-gpu"
RAY_VERSION = "2.60.0"
EXPOSED = ("LoadBalancer", "NodePort")
# Names of environment variables that hold credentials: only ever from a Secret.
SENSITIVE_ENV = re.compile(r"^AWS_|_(API_)?KEY$|_TOKEN$|SECRET|PASSWORD")
# Literal credentials: AWS access key ids, OpenAI-style API keys, private keys.
LITERAL_SECRET = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bsk-[A-Za-z0-9_-]{16,}"
                            r"|-----BEGIN [A-Z ]*PRIVATE KEY")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def cluster_spec(manifest: dict) -> dict:
    """The RayCluster spec inside a RayJob or a RayService."""
    return manifest["spec"]["rayClusterSpec" if manifest["kind"] == "RayJob" else "rayClusterConfig"]


def pod_specs(manifest: dict) -> Iterator[tuple[str, dict]]:
    spec = cluster_spec(manifest)
    yield "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]["spec"]


def containers(manifest: dict) -> Iterator[tuple[str, dict]]:
    for group, pod in pod_specs(manifest):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            yield f"{group}/{container['name']}", container


def worker_group(manifest: dict) -> dict:
    (group,) = cluster_spec(manifest)["workerGroupSpecs"]
    return group


def cpus(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


# --- the CRD schema, as strict as the API server --------------------------------------------------

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def structural(schema: dict) -> dict:
    """A Kubernetes structural schema as plain JSON Schema.

    `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` admits null, and an object
    with declared properties refuses others unless `x-kubernetes-preserve-unknown-fields` (the
    API server's strict field validation, `kubectl apply`'s default). Other `x-kubernetes-*`
    keys (CEL rules, list types) are dropped: jsonschema cannot evaluate them.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = structural(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [structural(sub) for sub in value]
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            out[key] = value
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return {"anyOf": [{"type": "null"}, out]} if schema.get("nullable") else out


@functools.cache
def crd(kind: str) -> dict:
    return yaml.safe_load(gzip.decompress((CRDS / CRD_FILES[kind]).read_bytes()))


@functools.cache
def validator(kind: str) -> jsonschema.Draft4Validator:
    (v1,) = [v for v in crd(kind)["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft4Validator(structural(v1["schema"]["openAPIV3Schema"]), format_checker=FORMATS)


def schema_errors(manifest: dict) -> list[str]:
    """Every schema violation as 'json/path: message' (empty: valid)."""
    errors = validator(manifest["kind"]).iter_errors(manifest)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def test_vendored_crds_are_the_v1_7_0_files() -> None:
    notice = (CRDS / "NOTICE").read_text(encoding="utf-8")
    assert "v1.7.0" in notice and (CRDS / "LICENSE").is_file() and (CRDS / "README.md").is_file()
    sums = dict(reversed(m.groups()) for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", notice, re.M))
    assert set(sums) == set(CRD_FILES.values())
    for kind, name in CRD_FILES.items():
        assert hashlib.sha256((CRDS / name).read_bytes()).hexdigest() == sums[name], f"{name} changed"
        assert crd(kind)["spec"]["names"]["kind"] == kind and crd(kind)["spec"]["group"] == "ray.io"


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_for_its_crd(name: str) -> None:
    manifest = load(name)
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] in CRD_FILES
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", manifest["metadata"]["name"])
    assert schema_errors(manifest) == []


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(manifest: dict) -> None:
        *parents, last = path.split("/")
        node = manifest
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _set:
            del node[last]
        else:
            node[last] = value
    return mutate


SPEC = "spec/rayClusterSpec"
BROKEN = {  # a mutation of rayjob-train.yaml, and what its error must say ('path: message')
    "wrong type": (_set(f"{SPEC}/workerGroupSpecs/0/maxReplicas", "four"), "workerGroupSpecs/0/maxReplicas"),
    "required field missing": (_set(f"{SPEC}/workerGroupSpecs/0/groupName", _set),
                               "'groupName' is a required property"),
    "misspelt field": (_set(f"{SPEC}/headGroupSpec/rayStartParam", {"num-cpus": "0"}),
                       "'rayStartParam' was unexpected"),
    "value not in enum": (_set(f"{SPEC}/authOptions/mode", "on"), "authOptions/mode"),
    "int32 overflow": (_set("spec/ttlSecondsAfterFinished", 2**31), "ttlSecondsAfterFinished"),
    "bad quantity": (_set(f"{SPEC}/workerGroupSpecs/0/template/spec/containers/0/resources/limits/cpu",
                          "six cores"), "resources/limits/cpu"),
    "string map value": (_set(f"{SPEC}/headGroupSpec/rayStartParams/num-cpus", 0), "rayStartParams/num-cpus"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_schema_rejects_a_broken_manifest(case: str) -> None:
    mutate, where = BROKEN[case]
    manifest = load("rayjob-train.yaml")
    mutate(manifest)
    errors = schema_errors(manifest)
    assert errors and any(where in e for e in errors), errors


def test_rayservice_without_its_cluster_is_rejected() -> None:
    manifest = load("rayservice-ensemble.yaml")
    del manifest["spec"]["rayClusterConfig"]
    assert any("'rayClusterConfig' is a required property" in e for e in schema_errors(manifest))


def test_structural_schema_extensions() -> None:
    check = jsonschema.Draft4Validator(structural({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "free": {"type": "object", "properties": {"a": {"type": "string"}},
                 "x-kubernetes-preserve-unknown-fields": True},
        "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
        "maybe": {"type": "string", "nullable": True},
    }}))
    for good in ({"port": 80}, {"port": "http"}, {"free": {"a": "x", "b": 1}}, {"maybe": None}):
        assert check.is_valid(good), good
    for bad in ({"port": 1.5}, {"port": [80]}, {"closed": {"b": 1}}, {"maybe": 3}, {"other": 1}):
        assert not check.is_valid(bad), bad


# --- security ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_token_authentication_is_on(name: str) -> None:
    spec = cluster_spec(load(name))
    assert spec["authOptions"] == {"mode": "token", "secretName": "valuecsv-ray-auth"}
    assert spec["rayVersion"] == RAY_VERSION  # authOptions needs Ray >= 2.52


@pytest.mark.parametrize("name", MANIFESTS)
def test_nothing_is_exposed_outside_kubernetes(name: str) -> None:
    manifest = load(name)
    head = cluster_spec(manifest)["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") not in EXPOSED
    assert head.get("headService", {}).get("spec", {}).get("type", "ClusterIP") not in EXPOSED
    assert not head.get("enableIngress", False)
    assert manifest["spec"].get("serveService", {}).get("spec", {}).get("type", "ClusterIP") not in EXPOSED
    for where, pod in pod_specs(manifest):
        assert not pod.get("hostNetwork", False), where
    for where, container in containers(manifest):
        assert not any("hostPort" in port for port in container.get("ports", [])), where


@pytest.mark.parametrize("name", MANIFESTS)
def test_dashboard_listens_where_the_operator_calls_it(name: str) -> None:
    """The operator submits and polls RayJobs and deploys Serve apps through the head Service's
    port 8265: on 127.0.0.1 it never gets an answer. Token auth and ClusterIP keep it private."""
    params = cluster_spec(load(name))["headGroupSpec"]["rayStartParams"]
    assert params.get("dashboard-host") == "0.0.0.0"


def secret_findings(manifest: dict, text: str) -> list[str]:
    """Credentials written into a manifest: literal keys anywhere, sensitive env not from a Secret."""
    found = [f"literal credential {m.group()[:8]}..." for m in LITERAL_SECRET.finditer(text)]
    for where, container in containers(manifest):
        for env in container.get("env", []):
            if SENSITIVE_ENV.search(env["name"]) and ("value" in env or "secretKeyRef" not in env.get(
                    "valueFrom", {})):
                found.append(f"{where}: {env['name']} is not read from a Secret")
    runtime_env = yaml.safe_load(manifest["spec"].get("runtimeEnvYAML") or "{}")
    found += [f"runtimeEnvYAML env_vars: {name}" for name in runtime_env.get("env_vars", {})
              if SENSITIVE_ENV.search(name)]
    return found


@pytest.mark.parametrize("name", MANIFESTS)
def test_no_credential_is_written_into_a_manifest(name: str) -> None:
    manifest = load(name)
    assert secret_findings(manifest, (DEPLOY / name).read_text(encoding="utf-8")) == []
    aws = [env for _, c in containers(manifest) for env in c.get("env", []) if env["name"].startswith("AWS_")]
    assert {env["name"] for env in aws} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_secret_check_catches_literal_credentials() -> None:
    manifest = load("rayjob-train.yaml")
    worker = worker_group(manifest)["template"]["spec"]["containers"][0]
    worker["env"] = [*worker["env"],  # a new list: the file shares one list between head and worker
                     {"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
                     {"name": "STUB_API_KEY", "value": "placeholder"}]
    manifest["spec"]["runtimeEnvYAML"] = "env_vars: {OPENAI_API_KEY: x}"
    found = secret_findings(manifest, "key: AKIAIOSFODNN7EXAMPLE\napi: sk-proj-0123456789abcdefABCD")
    assert len(found) == 5, found


def test_llm_key_example_in_the_readme_reads_a_secret() -> None:
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme(), re.S) if "STUB_API_KEY" in b]
    manifest = load("rayjob-train.yaml")
    head = cluster_spec(manifest)["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"] = yaml.safe_load(block)
    assert secret_findings(manifest, block) == []


# --- what runs on the nodes ------------------------------------------------------------------------


def dockerfile() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    field = {key: re.search(rf"^{key} (\S+)$", text, re.M)[1] for key in ("FROM", "WORKDIR")}
    return {**field, "text": text}


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_pod_runs_the_project_image(name: str) -> None:
    images = {c["image"] for _, c in containers(load(name))}
    assert len(images) == 1, images
    (image,) = images
    assert dockerfile()["FROM"] == RAY_IMAGE and RAY_IMAGE.split(":")[1].startswith(RAY_VERSION)
    assert f"ray[serve,data,train]=={RAY_VERSION}" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f"docker build -f deploy/kuberay/Dockerfile -t {image} ." in readme()


@pytest.mark.parametrize("name", MANIFESTS)
def test_gpu_workers_autoscale_from_zero(name: str) -> None:
    manifest = load(name)
    spec, group = cluster_spec(manifest), worker_group(manifest)
    assert spec["enableInTreeAutoscaling"] is True
    assert group["minReplicas"] == 0 and group.get("replicas", 0) == 0 and group["maxReplicas"] >= 1
    resources = group["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 == resources["requests"]["nvidia.com/gpu"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in head["limits"]


def in_repo(token: str) -> str:
    """A path in the image (Dockerfile WORKDIR) as the same path in this checkout."""
    image_root = dockerfile()["WORKDIR"] + "/"
    return str(ROOT / token[len(image_root):]) if token.startswith(image_root) else token


def entrypoint(name: str) -> tuple[str, dict]:
    """The CLI command a RayJob's entrypoint runs and its parsed options (paths as in this checkout)."""
    python, script, *args = shlex.split(load(name)["spec"]["entrypoint"])
    script = Path(in_repo(script))
    assert python == "python" and script.parent == ROOT / "jobs" and script.is_file()
    command = re.search(r'main\(\["(\w+)"', script.read_text(encoding="utf-8"))[1]
    args = [in_repo(a) for a in args]
    for arg in args:
        path = Path(arg)
        if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / "data"):
            assert path.is_file(), f"{name}: {arg} is not in the repository"
    return command, cli.commands[command].make_context(command, args).params


def test_train_entrypoint() -> None:
    command, params = entrypoint("rayjob-train.yaml")
    assert command == "train"
    data = Path(params["data"])
    assert data.parent == ROOT / "data" and data.name == KNOWN_FILES["valuecsv5000"].filename
    assert "valuecsv-ray data fetch --dest data" in dockerfile()["text"]  # the image holds the data
    config_path, overrides = params.pop("config_path"), parse_overrides(params.pop("overrides"))
    cfg = load_train_config(config_path, {**given(params), **overrides})
    group, per_worker = worker_group(load("rayjob-train.yaml")), cfg.worker_resources()
    assert cfg.use_gpu and per_worker["GPU"] == 1 and cfg.max_concurrent == group["maxReplicas"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert per_worker["CPU"] <= cpus(limits["cpu"])
    assert cfg.runs_dir.startswith("s3://")
    assert cfg.registry_uri == f"{cfg.runs_dir.rstrip('/')}/{cfg.name}"  # published there when complete
    assert cfg.ray_storage.startswith("s3://")  # Ray Train checkpoints on shared storage


def test_audit_entrypoint() -> None:
    command, params = entrypoint("rayjob-audit.yaml")
    assert command == "audit"
    assert params["registry"] == trained_registry() and params["out"].startswith("s3://")
    inputs = list(params.pop("inputs"))
    assert inputs and all(i.startswith("s3://") for i in inputs)
    config_path, overrides = params.pop("config_path"), parse_overrides(params.pop("overrides"))
    settings = {**given(params), **overrides, "inputs": inputs}
    cfg = load_audit_config(config_path, {**settings, "out": "audit-out"})
    group = worker_group(load("rayjob-audit.yaml"))
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert cfg.gpus_per_actor == 1 and cfg.actors <= group["maxReplicas"]
    assert cfg.cpus_per_actor <= cpus(limits["cpu"])
    assert load_audit_config(config_path, settings).out.startswith("s3://")  # --out on object storage


def trained_registry() -> str:
    """RUNS_DIR/NAME of the training job, as a URI."""
    _, params = entrypoint("rayjob-train.yaml")
    name = yaml.safe_load(Path(params["config_path"]).read_text(encoding="utf-8"))["name"]
    return f"{params['runs_dir'].rstrip('/')}/{name}"


# --- Serve ------------------------------------------------------------------------------------------


def serve_configs() -> tuple[dict, dict]:
    """(serveConfigV2 of the RayService, serve_configs/ensemble.yaml)."""
    embedded = load("rayservice-ensemble.yaml")["spec"]["serveConfigV2"]
    assert isinstance(embedded, str)
    return yaml.safe_load(embedded), yaml.safe_load((ROOT / "serve_configs" / "ensemble.yaml").read_text())


def test_serve_config_passes_ray_serves_schema() -> None:
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    config, _ = serve_configs()
    ServeDeploySchema.model_validate(config)
    assert set(config) <= set(ServeDeploySchema.model_fields)  # Serve ignores unknown keys here
    for app in config["applications"]:
        assert set(app) <= set(ServeApplicationSchema.model_fields)
        for deployment in app["deployments"]:
            assert set(deployment) <= set(DeploymentSchema.model_fields)


def test_serve_config_has_the_shape_of_ensemble_yaml() -> None:
    config, shipped = serve_configs()
    assert config["proxy_location"] == shipped["proxy_location"]
    assert config["controller_options"] == shipped["controller_options"]
    assert set(config["http_options"]) == set(shipped["http_options"])
    (app,), (model,) = config["applications"], shipped["applications"]
    for key in ("name", "route_prefix", "import_path"):
        assert app[key] == model[key]
    assert set(app["args"]) == set(model["args"])
    assert [d["name"] for d in app["deployments"]] == [d["name"] for d in model["deployments"]]
    cfg = serve_config(app["args"])  # the app's own validation of its args
    assert cfg.token is None and "token" not in app["args"]


def test_serve_reaches_the_trained_registry_on_gpus() -> None:
    config, _ = serve_configs()
    manifest = load("rayservice-ensemble.yaml")
    (app,) = config["applications"]
    assert app["args"]["registry"] == trained_registry() and app["args"]["device"] == "cuda"
    head = cluster_spec(manifest)["headGroupSpec"]["template"]["spec"]["containers"][0]
    serve_port = {p["name"]: p["containerPort"] for p in head["ports"]}["serve"]
    # The serve Service sends requests to the pod's address: Serve must not bind 127.0.0.1 here.
    assert config["http_options"]["host"] == "0.0.0.0" and config["http_options"]["port"] == serve_port
    group = worker_group(manifest)
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    (deployment,) = app["deployments"]
    actor = deployment["ray_actor_options"]
    assert actor["num_gpus"] == 1 and deployment["num_replicas"] <= group["maxReplicas"]
    assert actor["num_cpus"] <= cpus(limits["cpu"])

    from valuecsv_ray.serve import app_builder

    bound = app_builder(app["args"])._bound_deployment.init_args[0]  # what each replica receives
    assert bound["registry"] == app["args"]["registry"]  # a URI reaches the replicas as it is


def test_serve_token_reaches_every_replica_from_a_secret() -> None:
    manifest = load("rayservice-ensemble.yaml")
    for where, container in containers(manifest):
        (env,) = [e for e in container["env"] if e["name"] == TOKEN_ENV]
        assert env["valueFrom"]["secretKeyRef"] == {"name": "valuecsv-serve-token", "key": "token"}, where


# --- the README -------------------------------------------------------------------------------------


@functools.cache
def readme() -> str:
    return (DEPLOY / "README.md").read_text(encoding="utf-8")


def test_readme_creates_every_secret_the_manifests_read() -> None:
    needed: dict[str, set[str]] = {}
    for name in MANIFESTS:
        manifest = load(name)
        needed.setdefault(cluster_spec(manifest)["authOptions"]["secretName"], set()).add("auth_token")
        for _, container in containers(manifest):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional", False):
                    needed.setdefault(ref["name"], set()).add(ref["key"])
    for secret, keys in needed.items():
        assert f"kubectl create secret generic {secret} " in readme(), secret
        for key in keys:
            assert re.search(rf"(--from-literal=|^#\s+){key}=", readme(), re.M), f"{secret}: {key}"


def test_readme_covers_install_access_and_security() -> None:
    text = readme()
    for needle in (*MANIFESTS, "--version 1.7.0", "CVE-2023-48022", TOKEN_ENV, "Authorization: Bearer",
                   f"svc/{load('rayservice-ensemble.yaml')['metadata']['name']}-serve-svc 8000:8000",
                   f"svc/{load('rayjob-train.yaml')['metadata']['name']}-head-svc 8265:8265"):
        assert needle in text, needle
