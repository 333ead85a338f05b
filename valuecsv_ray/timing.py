"""Timed phases of a slow start (resolving and verifying a registry, loading an ensemble).

    phases: dict[str, float] = {}
    with timed(phases, "weight_load"):
        model = load(folder)
    format_phases(phases)    # "weight_load 1.52 s" (a phase entered again adds up)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block takes (even when it raises) to `phases[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


def format_phases(phases: dict[str, float]) -> str:
    """The phases in the order they ran, with seconds, for one log line."""
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items())
