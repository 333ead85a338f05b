"""The Ray job entries the README documents, submitted as a user submits them: `ray job submit
--working-dir <project> -- python jobs/<job>.py ...` to a Ray head started with `ray start --head`
(its own ports and temp dir, stopped with its process group, so no other Ray instance on the machine
is touched or found). The quickstart submits jobs/train_all.py the same way.

Here: jobs/distill.py makes a student of a teacher registry, then jobs/audit.py audits a corpus with
`--evaluators student`, and a job that fails (a student that does not exist) exits non-zero
with its error in the job's log.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.registry.students import STUDENTS
from valuecsv_ray.train.annotated import load_annotated

pytestmark = [pytest.mark.ray, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PORTS = ("port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port",
         "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port", "node-manager-port",
         "object-manager-port")


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ray_head(process_group):
    """`ray start --head --block` in its own process group; yields the dashboard (job API) address."""
    temp_dir = tempfile.mkdtemp(prefix="vr-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ports = dict(zip(PORTS, _free_ports(len(PORTS)), strict=True))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    command = [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", "--disable-usage-stats",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}",
               *(f"--{name}={port}" for name, port in ports.items())]
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        with process_group(command, address + "/api/version", Path(temp_dir) / "head.log", env, ready_s=120,
                           stop=signal.SIGTERM):
            yield address, env
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(head, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir <project> -- python ARGS`, waiting for the job to end."""
    address, env = head
    return subprocess.run([str(BIN / "ray"), "job", "submit", f"--address={address}", f"--working-dir={ROOT}",
                           "--", "python", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    texts = load_annotated("sample").texts
    path = tmp_path_factory.mktemp("corpus") / "answers.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(40):
            a, b = texts[i], texts[(i * 7 + 3) % len(texts)]
            row = {"id": f"c{i}", "model": f"m{i % 2}", "response": a[: len(a) // 2] + b[len(b) // 2 :]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def submitted_student(ray_head, corpus, tmp_path_factory, teacher_on_sample):
    teacher = teacher_on_sample(tmp_path_factory.mktemp("jobs") / "teacher")
    done = submit(ray_head, "jobs/distill.py", str(corpus), "--registry", str(teacher), "--name", "job",
                  "--backbone", "tiny", "--max-length", "64", "--max-epochs", "1",
                  "--set", "batch_size=16", "--set", "torch_threads=1", "--set", "cpus_per_actor=0.5",
                  "--set", "resources_per_worker={CPU: 0.5}")
    return teacher, done


def test_distill_job_writes_the_student_next_to_the_evaluators(submitted_student):
    teacher, done = submitted_student
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    student = reg.load_registry(teacher / STUDENTS / "job")
    assert student.manifest["config"]["teacher_registry_id"] == reg.load_registry(teacher).registry_id
    assert f"student {student.registry_id} at {student.path}" in done.stdout  # the job's own output
    assert "succeeded" in done.stdout


def test_audit_job_with_evaluators_student(submitted_student, ray_head, corpus, tmp_path):
    teacher, _ = submitted_student
    out = tmp_path / "audit"
    done = submit(ray_head, "jobs/audit.py", str(corpus), "--registry", str(teacher), "--out", str(out),
                  "--evaluators", "student", "--student", "job", "--min-agreement", "0",
                  "--set", "cpus_per_actor=0.5")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scores = pq.read_table(out / "scores")
    assert scores.num_rows == 40
    student = reg.load_registry(teacher / STUDENTS / "job")
    assert set(scores["registry_id"].to_pylist()) == {student.registry_id}


def test_a_failing_job_exits_non_zero_and_says_why(submitted_student, ray_head, corpus, tmp_path):
    teacher, _ = submitted_student
    done = submit(ray_head, "jobs/audit.py", str(corpus), "--registry", str(teacher),
                  "--out", str(tmp_path / "audit"), "--evaluators", "student", "--student", "nosuch")
    assert done.returncode != 0
    assert "nosuch" in done.stdout + done.stderr  # the job's log names the missing student
    assert not (tmp_path / "audit" / "scores").exists()
