"""Suite part 'serve' (d): `serve run` of serve_configs/ensemble-gpu.yaml, latency under load.

    run(plan, work, out, budget)   # writes out/serve.json after each concurrency level

A copy of the shipped GPU YAML serves the prep part's registry on a free port (the dry run: on
the CPU, no GPU); closed-loop clients (`serve_load.drive`, through the users' client with its
retries) send single-text requests at each of plan.serve_levels: p50 / p99 latency, req/s.
A level sends fewer requests than planned when the warm-up's rate says they would not fit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import serve_load
import yaml

from gpu_suite_parts import processes
from gpu_suite_parts.common import Budget, Plan, Results, percentile_ms, say
from gpu_suite_parts.prep import registry_dir

GPU_YAML = Path(__file__).resolve().parents[2] / "serve_configs" / "ensemble-gpu.yaml"
SESSION_FILE = "serve_session"  # serve run's PID (its session): the runner ends what is left of it
TEARDOWN_S = 15
LEVELS_S = 12  # the least time kept for the warm-up and the three levels
TARGET_UP_S = 15.0  # the GPU issue: the replica up within 15 s of `serve run`


def run(plan: Plan, work: Path, out: Path, budget: Budget) -> None:
    results = Results(out / "serve.json", budget, table=table)
    results.data["judge"] = not plan.dry_run
    folder = work / "serve"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = serve_config(plan, registry_dir(work), serve_load.free_port())
    results.data["config"] = config
    startup_s = max(10.0, budget.left() - TEARDOWN_S - LEVELS_S)
    try:
        with serve_up(config, folder, startup_s) as (url, up_s):
            results.data["up_s"] = up_s
            results.data["replica_load_phases"] = replica_phases(url)
            results.save()
            warm = results.step("warm_up", 5, lambda: level(url, 4, 20))
            rate = warm["req_per_s"] if warm else 1.0
            for i, (concurrency, planned) in enumerate(plan.serve_levels):
                seconds = (budget.left() - TEARDOWN_S) / (len(plan.serve_levels) - i)
                n = requests_that_fit(planned, concurrency, rate, seconds)
                results.step(f"c{concurrency}", 3, lambda c=concurrency, n=n: level(url, c, n))
    except Exception as e:  # noqa: BLE001 - recorded; the log tail below says more
        results.note(f"serve run failed: {type(e).__name__}: {e}")
    finally:
        log = folder / "serve.log"
        if log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-60:]
            print("---- serve.log (last 60 lines)\n" + "\n".join(tail))


def table(data: dict) -> list[list]:
    rows = []
    if "up_s" in data:
        reported = data.get("replica_load_phases") or {}
        phases = {k: v for k, v in reported.items() if isinstance(v, float | int)}
        loaded = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
        rows.append(["serve run up (replica healthy)", f"{data['up_s']:.0f} s"
                     + (f"; replica load {sum(phases.values()):.1f} s: {loaded}" if phases else ""),
                     f"<= {TARGET_UP_S:.0f} s",
                     data["up_s"] <= TARGET_UP_S if data.get("judge") else None])
    for name, step in data["steps"].items():
        if name.startswith("c") and step.get("status") == "ok":
            rows.append([f"single-text requests, {step['concurrency']} clients: p50 / p99",
                         f"{step['p50_ms']:.1f} / {step['p99_ms']:.1f} ms ({step['requests']} requests, "
                         f"{step['req_per_s']:.0f} req/s, {step['ok']} ok)", "", None])
    return rows


def replica_phases(url: str) -> dict | None:
    """The replica's own load timings, as its /healthz reports them."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=30) as answer:
            return json.loads(answer.read()).get("load_phases")
    except (OSError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def serve_config(plan: Plan, registry: Path, port: int) -> dict:
    """The shipped GPU YAML with this registry and port; on the CPU (dry run) no GPU, one CPU."""
    config = yaml.safe_load(GPU_YAML.read_text())
    config["http_options"]["port"] = port
    app = config["applications"][0]
    app["args"]["registry"] = str(registry.resolve())
    (deployment,) = app["deployments"]  # the shipped YAML configures its one deployment
    if plan.device == "cpu":
        app["args"]["device"] = "cpu"
        deployment["ray_actor_options"] = {"num_cpus": 1, "num_gpus": 0}
    return config


def serve_binary() -> str:
    """The `serve` command: beside this Python (a venv), else on PATH (.device-pack's bootstrap)."""
    beside = Path(sys.executable).with_name("serve")
    found = str(beside) if beside.is_file() else shutil.which("serve")
    if not found:
        raise FileNotFoundError("no `serve` command beside this Python or on PATH (on the device: "
                                "source .device-pack/bootstrap.sh first)")
    return found


@contextmanager
def serve_up(config: dict, folder: Path, timeout_s: float) -> Iterator[tuple[str, float]]:
    """`serve run` of `config` in its own session; (url, seconds until healthy with its replica)."""
    (folder / "serve.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    app = config["applications"][0]
    title = f"ServeReplica:{app['name']}:{app['deployments'][0]['name']}"
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    with (folder / "serve.log").open("w") as log:
        proc = subprocess.Popen([serve_binary(), "run", "serve.yaml"], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        (folder / SESSION_FILE).write_text(str(proc.pid))

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"serve run exited with {proc.returncode} (see serve.log)")
            return serve_load.healthy(url) and bool(serve_load.replica_pids(proc.pid, title))

        try:
            up = serve_load.wait_until(ready, timeout_s, f"serve run (log: {folder / 'serve.log'})")
            say(f"serve run up in {up:.0f} s at {url}")
            yield url, up
        finally:
            end_session(proc)


def end_session(proc: subprocess.Popen) -> None:
    """SIGINT to serve run (it shuts Serve and Ray down), then SIGKILL to whatever of its session is left.
    The runner's SIGTERM (time is up) must not cut this short: it is ignored from here on."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=TEARDOWN_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    processes.end_session(proc.pid)
    if proc.poll() is None:
        proc.wait(timeout=5)


def requests_that_fit(planned: int, concurrency: int, warm_rate: float, seconds: float) -> int:
    """Requests for one level: the planned number, fewer when the warm-up's rate (req/s at 4 clients;
    fewer clients go slower) says they would not finish in `seconds`; at least two per client."""
    rate = warm_rate * min(1.0, concurrency / 4)
    return max(2 * concurrency, min(planned, int(rate * max(seconds, 0.0))))


def level(url: str, concurrency: int, requests: int) -> dict:
    started = time.monotonic()
    load = serve_load.drive(url, requests, concurrency)
    wall = time.monotonic() - started
    n = len(load.latencies)
    return {"concurrency": concurrency, "requests": n, "req_per_s": n / wall,
            "p50_ms": percentile_ms(load.latencies, 50), "p99_ms": percentile_ms(load.latencies, 99),
            "max_ms": 1000 * max(load.latencies, default=0.0), "ok": load.codes.get(200, 0),
            "other": {str(k): v for k, v in load.codes.items() if k != 200}, "retries": dict(load.retries)}
