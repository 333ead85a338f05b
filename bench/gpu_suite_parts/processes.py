"""How the suite's runner starts a part in its own process session and ends it on time.

    running = start_part("train", command, log_path, limit_s=100)
    status = finish_part(running)     # {"status": "ok" | "failed" | "timeout", "rc", "wall_s", "limit_s"}

A part past its limit gets SIGTERM (it unwinds: Ray shut down, `serve run` stopped), then
GRACE_S seconds, then every process left in its session (Ray's raylet and workers included) is
SIGKILLed; so are those of any extra sessions it named (`serve run` starts its own).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpu_suite_parts.common import MARK

GRACE_S = 15  # after SIGTERM, before SIGKILL
MARGIN_S = 5  # a part plans to end this long before its limit


@dataclass
class Running:
    name: str
    proc: subprocess.Popen
    reader: threading.Thread
    log_path: Path
    started: float
    limit_s: float
    extra_sessions: list[Path] = field(default_factory=list)  # files holding PIDs of other sessions
    ended: float | None = None  # when the process exited (a part run in the background ends early)

    def watch(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()


def start_part(name: str, command: list[str], cwd: Path, log_path: Path, limit_s: float,
               extra_sessions: list[Path] | None = None) -> Running:
    """Start `command` in a new session; its output goes to `log_path`, marked lines also to the console."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    reader = threading.Thread(target=_copy_lines, args=(name, proc.stdout, log_path), daemon=True)
    reader.start()
    running = Running(name, proc, reader, log_path, time.monotonic(), limit_s, extra_sessions or [])
    threading.Thread(target=running.watch, daemon=True).start()
    return running


def finish_part(run: Running) -> dict:
    """Wait for the part until its limit; end it and everything it started; its status."""
    status = "ok"
    try:
        run.proc.wait(timeout=max(0.0, run.started + run.limit_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        status = "timeout"
        _signal_group(run.proc.pid, signal.SIGTERM)
        try:
            run.proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    end_session(run.proc.pid)
    for session_file in run.extra_sessions:
        if session_file.is_file():
            end_session(int(session_file.read_text()))
    if run.proc.poll() is None:
        run.proc.wait(timeout=10)
    run.reader.join(timeout=10)
    if status == "ok" and run.proc.returncode != 0:
        status = "failed"
    ended = run.ended or time.monotonic()
    return {"status": status, "rc": run.proc.returncode, "wall_s": round(ended - run.started, 1),
            "limit_s": round(run.limit_s)}


def end_session(session: int, wait_s: float = 10.0) -> None:
    """SIGKILL every process left in a session this suite started (Ray workers, raylet, serve), and
    wait (up to `wait_s`) until each is gone or a zombie: a kill is delivered asynchronously."""
    from serve_load import replica_pids

    killed = []
    for pid in replica_pids(session, ""):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_s
    while (alive := [pid for pid in killed if _running(pid)]) and time.monotonic() < deadline:
        killed = alive
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (its state in /proc/PID/stat is not Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _copy_lines(name: str, stream, log_path: Path) -> None:
    """Every line to the part's log; the marked ones to the console as well, with the part's name."""
    with log_path.open("w", encoding="utf-8") as log:
        for line in stream:
            log.write(line)
            log.flush()
            if line.startswith(MARK):
                print(line.replace(MARK, f"{MARK} {name}:", 1), end="", flush=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
