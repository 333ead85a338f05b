"""What an audit needs from the Ray cluster, checked before it starts.

    check_capacity(cfg)   # AuditError when the cluster cannot hold the audit's actors and tasks

An audit holds `actors` scoring actors (`cpus_per_actor` CPUs and `gpus_per_actor` GPUs each) for
its whole scoring pass and runs its reading, checking and writing tasks beside them, TASK_CPUS
each, a reading and a writing task at once (one alone could hold the last free CPU that the
other waits for). Where the CPUs the actors leave over cannot hold them (say a Serve replica
holds them), Ray Data waits without end ("backpressured"): this check fails instead, saying what
does not fit and which settings to change. On a cluster that an autoscaler may grow it only logs.
"""

from __future__ import annotations

import json
import logging
import time

import ray

from valuecsv_ray.audit.outputs import AuditError
from valuecsv_ray.config import AuditConfig

log = logging.getLogger(__name__)

TASK_CPUS = 0.5  # CPUs of each reading, checking and writing task
TASKS = 2  # tasks the audit must be able to run beside its actors: a reading and a writing one
WAIT_S = 30.0  # how long resources held by other work (a finishing job) may take to come free


def needs(cfg: AuditConfig) -> dict[str, float]:
    """CPUs and GPUs the audit holds at once: the scoring actors and TASKS tasks beside them."""
    cpus = cfg.actors * cfg.cpus_per_actor + TASKS * TASK_CPUS
    return {"CPU": cpus, "GPU": cfg.actors * cfg.gpus_per_actor}


def check_capacity(cfg: AuditConfig, wait_s: float = WAIT_S) -> None:
    """Return once the cluster's free resources hold the audit, or an autoscaler may add what is
    missing; raise AuditError when they never will (more than the cluster has or may grow to) or,
    on a fixed-size cluster, are still short after `wait_s` seconds."""
    need, total = needs(cfg), ray.cluster_resources()
    largest, grows = _ceiling(total)
    if largest is not None and _short(need, largest):
        raise AuditError(_message(cfg, need, largest, "the Ray cluster can grow to" if grows else
                                  "the Ray cluster has"))
    deadline = time.monotonic() + wait_s
    while _short(need, free := ray.available_resources()):
        if grows:
            log.warning("the audit needs %s; the cluster has %s free now and may add nodes (an autoscaler): "
                        "it waits for them", _amounts(need), _amounts(free))
            return
        if time.monotonic() >= deadline:
            raise AuditError(_message(cfg, need, free, f"after {wait_s:g} s, the Ray cluster has "
                                      f"{_amounts(total)} of which only", free=True))
        time.sleep(0.5)


def _short(need: dict[str, float], have: dict[str, float]) -> bool:
    return any(amount > have.get(kind, 0.0) + 1e-9 for kind, amount in need.items() if amount)


def _amounts(resources: dict[str, float]) -> str:
    return f"{resources.get('CPU', 0.0):g} CPUs, {resources.get('GPU', 0.0):g} GPUs"


def _message(cfg: AuditConfig, need: dict[str, float], have: dict[str, float], has: str,
             free: bool = False) -> str:
    held = " free (the rest is held by other work, such as Serve replicas or another job: see `ray " \
           "status`)" if free else ""
    fixes = ["actors (--actors)", "cpus_per_actor (--cpus-per-actor)"]
    if cfg.gpus_per_actor:
        fixes.append("gpus_per_actor (--gpus-per-actor)")
    return (f"the audit does not fit the Ray cluster: its {cfg.actors} scoring actor(s) need "
            f"{cfg.actors * cfg.cpus_per_actor:g} CPUs and {need['GPU']:g} GPUs (actors {cfg.actors} x "
            f"cpus_per_actor {cfg.cpus_per_actor:g}, gpus_per_actor {cfg.gpus_per_actor:g}) and its reading "
            f"and writing tasks {TASKS * TASK_CPUS:g} CPUs beside them: {_amounts(need)} in all, but {has} "
            f"{_amounts(have)}{held}. Lower {', '.join(fixes)}, free resources, or add nodes")


def _ceiling(total: dict[str, float]) -> tuple[dict[str, float] | None, bool]:
    """The most resources the cluster can have (None: unknown), and whether an autoscaler may add
    nodes: an autoscaler's configured maximum (autoscaler v2), else what it has now where its size
    is fixed."""
    try:  # Ray's private state API, as Ray Train's and Ray Data's own checks use it
        configured = ray._private.state.state.get_max_resources_from_cluster_config()
    except Exception:  # noqa: BLE001 - an older or newer Ray: judge by the cluster's size
        configured = None
    if configured:
        return {k: float(v) for k, v in configured.items()}, True
    return (total, False) if _fixed_size() else (None, True)


def _fixed_size() -> bool:
    """Whether no autoscaler can add nodes: Ray was started by this process (a local instance), or
    the autoscaler runs read-only (nodes started by hand, each its own node type "node_<id>")."""
    node = getattr(ray._private.worker, "_global_node", None)  # set where this process joined Ray
    if node is not None and getattr(node, "head", False):
        return True
    try:
        from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
        from ray.experimental.internal_kv import _internal_kv_get

        status = json.loads(_internal_kv_get(DEBUG_AUTOSCALING_STATUS) or "{}")
        types = (status.get("autoscaler_report") or {}).get("node_type_mapping")
    except Exception:  # noqa: BLE001 - no autoscaler status: the cluster may grow
        return False
    return bool(types) and all(kind == f"node_{node_id}" for node_id, kind in types.items())
