"""Serve load benchmark: the shipped endpoint under closed-loop load, then a replica killed under load.

    python bench/serve_load.py                  # tiny random registry, 10,000 requests + a kill run
    python bench/serve_load.py --registry runs/quickstart --requests 30000 --kill-requests 5000

Starts `serve run` of a copy of serve_configs/ensemble.yaml (its deployment at --replicas
replicas, on a free port, serving --registry) in its own session, waits for /healthz and for
every replica process, then drives /v1/score with closed-loop clients: each thread sends its
next request when the previous one was answered, at each --concurrency level in turn
(--requests split evenly). Then, at --kill-concurrency, one replica's process is sent SIGKILL
once half of --kill-requests have been answered. Every request goes through
`valuecsv_ray.scoring.client.score_texts` with its default RetryPolicy, the client users call,
so the counts are what a user of it sees: a 503 (queue full, replica gone) or a dropped
connection is retried; a request counts as failed only when the client gives up. Latency is
from the first try to the final answer, retries included. Prints a Markdown table. Linux only
(replicas are found in /proc). Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from valuecsv_ray.scoring.client import EndpointError, score_texts

SHIPPED = Path(__file__).resolve().parents[1] / "serve_configs" / "ensemble.yaml"
BANK = ["依法治国，公正司法。", "经济发展，国家富强。", "邻里互助，友善待人。", "诚实守信是立身之本。",
        "人人平等，机会公平。", "保护环境，建设美丽中国。", "爱岗敬业，精益求精。", "言论自由也有边界。",
        "社会和谐，安居乐业。", "弘扬民主，广开言路。", "尊老爱幼是传统美德。", "文明出行，礼让行人。",
        "热爱祖国，报效人民。", "他为了利益不择手段。", "今天天气很好，我们去公园散步。",
        "学校组织志愿服务活动。"]


@dataclass
class Load:
    """What one closed-loop run saw: per request its latency and final status, and the retries."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)  # 200, 503 (retries ran out), or the error
    retries: Counter = field(default_factory=Counter)  # by what was retried: 503, dropped, refused
    reasons: Counter = field(default_factory=Counter)  # the client's words for what it retried
    wall_s: float = 0.0


class RetryCounter(logging.Handler):
    """Counts the client's retries by kind and reason, from the warning it logs before each one
    ("<url>: <reason>; retrying in ...")."""

    def __init__(self, load: Load):
        super().__init__(logging.WARNING)
        self.load = load

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "; retrying in" in message:
            reason = message.split(": ", 1)[-1].rsplit("; retrying in", 1)[0]
            kind = ("503" if "answered 503" in reason else "dropped" if "connection dropped" in reason
                    else "refused" if "cannot connect" in reason else "other")
            self.load.retries[kind] += 1
            self.load.reasons[reason] += 1


def drive(url: str, requests: int, concurrency: int, texts_per_request: int = 1,
          at_half: Callable[[], None] | None = None) -> Load:
    """`requests` requests from `concurrency` closed-loop threads; `at_half` runs (in its own
    thread) once half of them have been answered."""
    load, lock, tickets, done = Load(concurrency), threading.Lock(), iter(range(requests)), [0]
    half = threading.Event()

    def client() -> None:
        while True:
            with lock:
                i = next(tickets, None)
            if i is None:
                return
            texts = [BANK[(i + j) % len(BANK)] for j in range(texts_per_request)]
            started = time.perf_counter()
            try:
                code = 200 if len(score_texts(url, texts)) == len(texts) else "short answer"
            except EndpointError as e:
                code = e.status or "no answer"
            except Exception as e:  # noqa: BLE001 - counted, not raised: the run goes on
                code = type(e).__name__
            with lock:
                load.latencies.append(time.perf_counter() - started)
                load.codes[code] += 1
                done[0] += 1
                if done[0] >= requests // 2:
                    half.set()

    handler = RetryCounter(load)
    client_log = logging.getLogger("valuecsv_ray.scoring.client")
    client_log.addHandler(handler)
    side = threading.Thread(target=lambda: (half.wait(), at_half()), daemon=True) if at_half else None
    started = time.perf_counter()
    try:
        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        for t in [*threads, *([side] if side else [])]:
            t.start()
        for t in [*threads, *([side] if side else [])]:  # every answer counts, so half is reached
            t.join()
    finally:
        client_log.removeHandler(handler)
    load.wall_s = time.perf_counter() - started
    return load


# ---- the server: `serve run` of the shipped YAML, and its replica processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_pids(session: int, title: str) -> list[int]:
    """PIDs of the live processes in `session` whose title holds `title` (Ray names a replica's
    worker process ray::ServeReplica:<app>:<deployment>)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state, _ppid, _pgrp, sid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(sid) == session and state != "Z" and title.encode() in cmdline:
            pids.append(int(proc.name))
    return sorted(pids)


@dataclass(frozen=True)
class Server:
    url: str
    session: int  # serve run's PID, the session id of every process of its Ray instance
    replica_title: str
    replicas: int

    def replica_pids(self) -> list[int]:
        return replica_pids(self.session, self.replica_title)


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} not within {timeout_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def serve_run(registry: Path, replicas: int, folder: Path) -> Iterator[Server]:
    """`serve run` of a copy of the shipped YAML with `replicas` replicas of its deployment."""
    config = yaml.safe_load(SHIPPED.read_text())
    config["http_options"]["port"] = port = free_port()
    app = config["applications"][0]
    app["args"]["registry"] = str(registry.resolve())
    (deployment,) = app["deployments"]  # the shipped YAML configures its one deployment
    deployment["num_replicas"] = replicas
    (folder / "serve.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    log = (folder / "serve.log").open("w")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("serve")), "run", "serve.yaml"], cwd=folder,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc.pid, f"ServeReplica:{app['name']}:{deployment['name']}",
                    replicas)
    try:
        up = wait_until(lambda: healthy(server.url) and len(server.replica_pids()) == replicas, 300,
                        f"serve run with {replicas} replicas (log: {folder / 'serve.log'})")
        print(f"serve run up in {up:.0f} s: {server.url}, replicas {server.replica_pids()}", flush=True)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


# ---- the runs and the table


def kill_one_replica(server: Server, note: dict) -> None:
    """SIGKILL (kill -9) one replica's process; note when, and how long until it was replaced."""
    before = server.replica_pids()
    note["pid"], note["killed"] = before[0], time.monotonic()
    os.kill(before[0], signal.SIGKILL)
    try:
        note["replaced_s"] = wait_until(
            lambda: len(pids := server.replica_pids()) == server.replicas and before[0] not in pids, 120,
            "a new replica")
    except TimeoutError:
        note["replaced_s"] = None


def row(name: str, load: Load) -> str:
    p50, p95, p99 = 1000 * np.percentile(load.latencies, [50, 95, 99])
    sent, ok = len(load.latencies), load.codes.get(200, 0)
    other = ", ".join(f"{code}: {n}" for code, n in load.codes.items() if code != 200) or "0"
    retries = ", ".join(f"{kind}: {n}" for kind, n in sorted(load.retries.items())) or "0"
    return (f"| {name} | {load.concurrency} | {sent} | {sent / load.wall_s:.1f} | {p50:.1f} | {p95:.1f} | "
            f"{p99:.1f} | {1000 * max(load.latencies):.0f} | {ok} | {other} | {retries} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, help="registry to serve (default: a random tiny one)")
    parser.add_argument("--replicas", type=int, default=2, help="replicas of the deployment")
    parser.add_argument("--requests", type=int, default=10_000, help="requests, split over --concurrency")
    parser.add_argument("--concurrency", default="1,16,64", help="closed-loop client threads, per level")
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in each request")
    parser.add_argument("--kill-requests", type=int, default=3000, help="requests of the kill run (0: none)")
    parser.add_argument("--kill-concurrency", type=int, default=16, help="client threads of the kill run")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        registry = args.registry
        if registry is None:
            from valuecsv_ray.testing.synthetic import random_registry

            registry = random_registry(Path(tmp) / "tiny", size="tiny", seed=0)
        with serve_run(registry, args.replicas, Path(tmp)) as server:
            drive(server.url, 50, 4, args.texts_per_request)  # warm-up, not counted
            rows = []
            for concurrency in levels:
                load = drive(server.url, args.requests // len(levels), concurrency, args.texts_per_request)
                rows.append(row("load", load))
                print(rows[-1], flush=True)
            note: dict = {}
            if args.kill_requests:
                load = drive(server.url, args.kill_requests, args.kill_concurrency, args.texts_per_request,
                             at_half=lambda: kill_one_replica(server, note))
                rows.append(row(f"kill -9 of replica {note.get('pid')} at half", load))
                note["reasons"] = load.reasons
    print(f"\n{args.replicas} replicas of {registry}, {args.texts_per_request} text(s) per request, "
          f"closed loop through scoring.client.score_texts (default RetryPolicy)\n")
    print("| run | clients | sent | req/s | p50 ms | p95 ms | p99 ms | max ms | 200 | other | retries |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if note:
        replaced = note.get("replaced_s")
        when = f"{replaced:.1f} s later" if replaced is not None else "not within 120 s"
        print(f"\nkilled replica {note['pid']}; a new replica was running {when}; the client retried:")
        for reason, n in note["reasons"].most_common():
            print(f"  {n} x {reason}")


if __name__ == "__main__":
    main()
