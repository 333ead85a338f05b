"""A replica killed under load loses no request: `serve run` of the shipped YAML with 2 replicas,
closed-loop clients through `scoring.client`, one replica's process sent SIGKILL midway.

Serve's router drops the dead replica, `serve.proxy` answers its in-flight requests 503 with
Retry-After, and the client retries them: every request sent is answered 200.
(bench/serve_load.py measures the same at scale.)"""

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from valuecsv_ray.scoring.client import EndpointError, RetryPolicy, score_texts

pytestmark = pytest.mark.ray
SHIPPED = Path(__file__).resolve().parents[2] / "serve_configs" / "ensemble.yaml"
TEXTS = ["依法治国，公正司法。", "经济发展，国家富强。", "邻里互助，友善待人。", "诚实守信是立身之本。"]
REQUESTS, CLIENTS = 300, 8
RETRY = RetryPolicy(attempts=6, base_delay_s=0.5, max_delay_s=10)  # the default's shape, shorter waits


def replica_pids(folder: Path, title: str = "ServeReplica:valuecsv:EnsembleDeployment") -> list[int]:
    """Live replica processes of the `serve run` started in `folder`: processes titled
    ray::ServeReplica:<app>:<deployment> whose session leader (serve run) works in `folder`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            state, _ppid, _pgrp, sid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            if state != "Z" and title.encode() in (proc / "cmdline").read_bytes() \
                    and os.readlink(f"/proc/{sid}/cwd") == str(folder):
                pids.append(int(proc.name))
        except (OSError, ValueError):  # not a process, or gone meanwhile
            continue
    return sorted(pids)


def _wait_for(ready, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.2)
    return ready()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds replica processes in /proc")
def test_a_replica_killed_under_load_loses_no_request(tiny_registry, tmp_path, serve_run):
    config = yaml.safe_load(SHIPPED.read_text())
    config["applications"][0]["args"]["registry"] = str(tiny_registry)
    (deployment,) = config["applications"][0]["deployments"]
    deployment["num_replicas"] = 2
    with serve_run(config, tmp_path) as url:
        assert _wait_for(lambda: len(replica_pids(tmp_path)) == 2, 60), replica_pids(tmp_path)
        lock, tickets, codes, answered_after_kill = threading.Lock(), iter(range(REQUESTS)), Counter(), []
        killed: dict = {}

        def client() -> None:
            while True:
                with lock:
                    i = next(tickets, None)
                if i is None:
                    return
                texts = TEXTS[: 1 + i % len(TEXTS)]
                try:
                    code = 200 if len(score_texts(url, texts, retry=RETRY)) == len(texts) else "short"
                except EndpointError as e:
                    code = e.status or "no answer"
                with lock:
                    codes[code] += 1
                    if "at" in killed:
                        answered_after_kill.append(code)
                    if sum(codes.values()) == REQUESTS // 2:  # midway: kill -9 one replica
                        killed["pid"] = replica_pids(tmp_path)[0]
                        os.kill(killed["pid"], signal.SIGKILL)
                        killed["at"] = time.monotonic()

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "clients still waiting after 120 s"
        assert _wait_for(lambda: killed["pid"] not in replica_pids(tmp_path), 10), "the replica lived on"
    assert sum(codes.values()) == REQUESTS and codes == {200: REQUESTS}, codes
    assert len(answered_after_kill) >= REQUESTS // 3  # the kill came midway, with load after it
