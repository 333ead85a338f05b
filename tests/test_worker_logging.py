"""worker_logging: this package's INFO lines reach a Ray worker's log (a fresh interpreter stands
in for the worker: its root logger has no handler, as in a Ray actor)."""

import subprocess
import sys

LOG = ("import logging; from valuecsv_ray.cluster import worker_logging; "
       "log = logging.getLogger('valuecsv_ray.x'); ")


def _stderr(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", LOG + code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_the_package_info_lines_get_through_once_and_no_one_elses():
    err = _stderr("log.info('dropped'); worker_logging(); worker_logging(); "
                  "log.info('engine: loaded in 1.2 s'); logging.getLogger('other').info('not ours')")
    assert "dropped" not in err and "not ours" not in err
    assert err.count("engine: loaded in 1.2 s") == 1 and "INFO valuecsv_ray.x" in err


def test_a_root_logger_that_already_handles_info_is_used_as_it_is():
    err = _stderr("logging.basicConfig(level=logging.INFO, format='ROOT %(message)s'); worker_logging(); "
                  "log.info('phases')")
    assert err.splitlines() == ["ROOT phases"]
