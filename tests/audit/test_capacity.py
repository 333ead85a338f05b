"""What an audit needs from the cluster, against clusters described in code (no Ray started):
fixed-size ones fail at once or after a wait, ones an autoscaler may grow are waited on."""

import json
import logging

import pytest

from valuecsv_ray.audit import capacity
from valuecsv_ray.audit.outputs import AuditError
from valuecsv_ray.config import load_audit_config


def _cfg(**kw):
    return load_audit_config(overrides={"inputs": ["a.jsonl"], "registry": "r", "out": "o", **kw})


@pytest.fixture
def cluster(monkeypatch):
    """Set `cluster["total"]`, `cluster["free"]` (a list: one per look) and `cluster["ceiling"]`:
    "fixed" (no autoscaler), None (an autoscaler, maximum unknown) or an autoscaler's maximum."""
    state = {"total": {"CPU": 8.0}, "free": [{"CPU": 8.0}], "ceiling": "fixed", "looks": 0}

    def available():
        state["looks"] += 1
        return state["free"][min(state["looks"], len(state["free"])) - 1]

    monkeypatch.setattr(capacity.ray, "cluster_resources", lambda: state["total"])
    monkeypatch.setattr(capacity.ray, "available_resources", available)
    monkeypatch.setattr(capacity, "_ceiling", lambda total: (total, False) if state["ceiling"] == "fixed"
                        else (state["ceiling"], True))
    monkeypatch.setattr(capacity.time, "sleep", lambda s: None)
    return state


def test_the_audit_needs_its_actors_and_a_reading_and_a_writing_task():
    assert capacity.needs(_cfg(actors=3, cpus_per_actor=1.5, gpus_per_actor=0.5)) == {"CPU": 5.5, "GPU": 1.5}


def test_free_resources_let_the_audit_start(cluster):
    capacity.check_capacity(_cfg(actors=2, cpus_per_actor=3))  # 7 of 8 CPUs
    assert cluster["looks"] == 1


def test_resources_freed_while_it_waits_let_the_audit_start(cluster):
    cluster["free"] = [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 8.0}]  # a finishing job lets go
    capacity.check_capacity(_cfg(), wait_s=60)
    assert cluster["looks"] == 3


def test_a_configured_maximum_too_small_fails_at_once(cluster):
    cluster["ceiling"] = {"CPU": 64.0, "GPU": 2.0}  # what an autoscaler (v2) may grow the cluster to
    with pytest.raises(AuditError, match="the Ray cluster can grow to 64 CPUs, 2 GPUs") as e:
        capacity.check_capacity(_cfg(actors=4, gpus_per_actor=1))
    assert "gpus_per_actor (--gpus-per-actor)" in str(e.value) and cluster["looks"] == 0


@pytest.mark.parametrize("ceiling", [None, {"CPU": 64.0, "GPU": 4.0}])
def test_a_cluster_an_autoscaler_may_grow_is_waited_on(cluster, caplog, ceiling):
    cluster["total"] = cluster["free"][0] = {"CPU": 0.0}  # a head without CPUs, no workers yet
    cluster["ceiling"] = ceiling
    with caplog.at_level(logging.WARNING, logger=capacity.__name__):
        capacity.check_capacity(_cfg(actors=4, gpus_per_actor=1))
    assert "may add nodes" in caplog.text and "needs 5 CPUs, 4 GPUs" in caplog.text


@pytest.mark.parametrize(("mapping", "fixed"), [
    ({"abc": "node_abc", "def": "node_def"}, True),  # no autoscaling config: each node its own type
    ({"abc": "headgroup"}, False),  # KubeRay: worker groups to add from
    (None, False),  # no status (yet): it may grow
])
def test_an_autoscaler_reporting_only_the_nodes_there_means_a_fixed_size(monkeypatch, mapping, fixed):
    from ray.experimental import internal_kv

    status = None if mapping is None else json.dumps({"autoscaler_report": {"node_type_mapping": mapping}})
    monkeypatch.setattr(capacity.ray._private.worker, "_global_node", None)  # joined, not started here
    monkeypatch.setattr(internal_kv, "_internal_kv_get", lambda key: status)
    assert capacity._fixed_size() is fixed
