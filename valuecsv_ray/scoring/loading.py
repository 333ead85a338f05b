"""Loading an evaluator for scoring, phase by phase, with the seconds each phase took.

    phases: dict[str, float] = {}
    model = load_evaluator(folder, torch.bfloat16, torch.device("cuda"), phases)
    with check_timed(phases):
        run = checked_packed_forward(model, ...)   # compiles on its first packed run
    phases   # {"weight_load": 0.4, "agreement_check": 0.3, "compile": 21.0}

Weights go straight onto the device (transformers' device_map) where accelerate is installed,
which transformers needs for a device_map; elsewhere they load on the CPU and then move
("device_move"). On the CPU there is nothing to move.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from valuecsv_ray.timing import timed


def loads_onto_device(device: torch.device) -> bool:
    """Whether weights load straight onto `device` (a device_map needs accelerate)."""
    return device.type != "cpu" and importlib.util.find_spec("accelerate") is not None


def load_evaluator(folder: Path, dtype: torch.dtype, device: torch.device,
                   phases: dict[str, float]) -> torch.nn.Module:
    """An evaluator folder's model on `device`, in eval mode: safetensors weights only (no pickle).
    Adds to phases' weight_load and, where the weights load on the CPU first, device_move."""
    direct = loads_onto_device(device)
    with timed(phases, "weight_load"):
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, attn_implementation="sdpa", dtype=dtype, use_safetensors=True,
            **({"device_map": device} if direct else {}))
    if device.type != "cpu" and not direct:
        with timed(phases, "device_move"):
            model = model.to(device)
    return model.eval()


@contextmanager
def check_timed(phases: dict[str, float]) -> Iterator[None]:
    """Time a load-time agreement check: torch.compile's own compile seconds inside it (a compiled
    forward compiles on its first run, the check's probe) go to 'compile', the rest to
    'agreement_check'."""
    compiled_before, start = _compile_seconds(), time.perf_counter()
    try:
        yield
    finally:
        total = time.perf_counter() - start
        compiled = min(total, max(0.0, _compile_seconds() - compiled_before))
        phases["agreement_check"] = phases.get("agreement_check", 0.0) + total - compiled
        if compiled > 0:
            phases["compile"] = phases.get("compile", 0.0) + compiled


def _compile_seconds() -> float:
    """Seconds torch.compile spent compiling frames in this process, by TorchDynamo's own timer
    (0.0 before anything was compiled, or where this torch keeps no such timer)."""
    utils = sys.modules.get("torch._dynamo.utils")
    metrics = getattr(utils, "compilation_time_metrics", None) or {}
    return float(sum(metrics.get("_compile.compile_inner", ())))
