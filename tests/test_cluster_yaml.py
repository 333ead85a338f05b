"""cluster.yaml: valid for Ray's cluster launcher, and safe (token auth, dashboard on localhost).

    python -m pytest tests/test_cluster_yaml.py -q

Nothing here starts Ray or talks to AWS: the config goes through the same offline steps as
`ray up` (fill in the provider's defaults, then Ray's JSON-schema check).
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before anything imports ray

import copy  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jsonschema  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402
import yaml  # noqa: E402
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"

# EC2 instance families with NVIDIA GPUs.
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p4de", "p5", "p5e")

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


@pytest.fixture()
def config() -> dict[str, Any]:
    """cluster.yaml as `yaml.safe_load` reads it (a fresh copy per test)."""
    return yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))


def _validate(config: dict[str, Any]) -> None:
    """What `ray up` does before touching the cloud: fill in defaults, then check the schema."""
    validate_config(prepare_config(copy.deepcopy(config)))


def _ray_start_calls(commands: list[str]) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Yield (environment, arguments) for every `ray start` in a list of shell command lines.

    The environment holds the `NAME=value` prefixes of that command and the `export`s before it
    on the same line; each line of a cluster.yaml command list runs in its own shell.
    """
    for line in commands:
        exported: dict[str, str] = {}
        for segment in re.split(r"&&|\|\||;", line):
            tokens = shlex.split(segment)
            if tokens[:1] == ["export"]:
                exported.update(t.split("=", 1) for t in tokens[1:] if _ASSIGNMENT.fullmatch(t))
                continue
            env = dict(exported)
            while tokens and _ASSIGNMENT.fullmatch(tokens[0]):
                name, value = tokens.pop(0).split("=", 1)
                env[name] = value
            if tokens[:2] == ["ray", "start"]:
                yield env, tokens[2:]


def _option_values(args: list[str], option: str) -> list[str]:
    """Every value given to `option`, in both `--opt=value` and `--opt value` forms."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(option + "=")]
    values += [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]
    return values


def _security_problems(config: dict[str, Any]) -> list[str]:
    """Every way the start commands break the cluster's security rules (empty when safe)."""
    problems = []
    heads = list(_ray_start_calls(config.get("head_start_ray_commands", [])))
    workers = list(_ray_start_calls(config.get("worker_start_ray_commands", [])))
    if not any("--head" in args for _, args in heads):
        problems.append("head_start_ray_commands: no `ray start --head`")
    if not workers:
        problems.append("worker_start_ray_commands: no `ray start`")
    for _env, args in heads:
        if "--head" in args and _option_values(args, "--dashboard-host") != ["127.0.0.1"]:
            problems.append(f"head `ray start` must have only --dashboard-host=127.0.0.1: {args}")
    for key, calls in (("head_start_ray_commands", heads), ("worker_start_ray_commands", workers)):
        for env, args in calls:
            if env.get("RAY_AUTH_MODE") != "token":
                problems.append(f"{key}: `ray start` without RAY_AUTH_MODE=token: {args}")
    return problems


def test_cluster_yaml_passes_rays_schema_check(config):
    _validate(config)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda c: c.update(max_wokers=4), id="unknown top-level key"),
        pytest.param(lambda c: c.update(max_workers="four"), id="max_workers not an integer"),
        pytest.param(
            lambda c: c["available_node_types"]["gpu_worker"].update(gpus=1),
            id="unknown node type key",
        ),
        pytest.param(lambda c: c["docker"].update(run_option=["--gpus all"]), id="unknown docker key"),
    ],
)
def test_schema_check_rejects_a_broken_copy(config, break_it):
    break_it(config)
    with pytest.raises(jsonschema.ValidationError):
        _validate(config)


def test_docker_image_matches_installed_ray(config):
    """Laptop and cluster must run the same Ray version."""
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"


def test_start_commands_keep_dashboard_local_and_token_auth_on(config):
    assert _security_problems(config) == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
        ("--dashboard-host=127.0.0.1", "--dashboard-host=127.0.0.1 --dashboard-host 0.0.0.0"),
        ("--dashboard-host=127.0.0.1", ""),
        ("RAY_AUTH_MODE=token ray start", "ray start"),
        ("RAY_AUTH_MODE=token ray start", "RAY_AUTH_MODE=token; ray start"),
        ("RAY_AUTH_MODE=token ray start", "RAY_AUTH_MODE=disabled ray start"),
    ],
)
def test_security_check_catches_an_unsafe_copy(config, old, new):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        config[key] = [line.replace(old, new) for line in config[key]]
    assert _security_problems(config)


def test_every_node_gets_the_token_from_file_mounts(config):
    """Ray does not copy the token between nodes: a file mount must carry it to each one."""
    mounts = config["file_mounts"]
    installs = [c for c in config["setup_commands"] if "~/.ray/auth_token" in c.split()]
    assert len(installs) == 1, "setup_commands must put the token at ~/.ray/auth_token"
    sources = [word for word in installs[0].split() if word.startswith("~/")][:-1]
    assert any(src.startswith(remote.rstrip("/") + "/") for src in sources for remote in mounts), (
        f"{installs[0]!r} does not read the token from a file_mounts path ({sorted(mounts)})"
    )


def test_no_token_in_the_file():
    text = CLUSTER_YAML.read_text(encoding="utf-8")
    assert "RAY_AUTH_TOKEN=" not in text
    assert not re.search(r"[0-9a-f]{32,}", text), "cluster.yaml looks like it holds a token"


def test_gpu_worker_type_declares_a_gpu(config):
    workers = {
        name: node
        for name, node in config["available_node_types"].items()
        if name != config["head_node_type"]
    }
    assert workers, "no worker node type"
    for name, node in workers.items():
        family = node["node_config"]["InstanceType"].split(".")[0]
        assert node["resources"].get("GPU", 0) >= 1 or family in GPU_INSTANCE_FAMILIES, name
        assert node.get("min_workers", 0) == 0, f"{name}: idle GPUs cost money; scale from zero"
    docker = config["docker"]
    assert "--gpus all" in docker.get("run_options", []) + docker.get("worker_run_options", [])
