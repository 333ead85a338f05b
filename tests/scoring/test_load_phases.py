"""Loading an ensemble, phase by phase: each phase's seconds are logged and kept on the engine."""

from __future__ import annotations

import logging

import pytest
import torch

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.scoring.loading import check_timed, load_evaluator, loads_onto_device

REGISTRY_PHASES = ["registry_resolve", "checksum_verification"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VALUECSV_CACHE", str(tmp_path / "cache"))


def test_a_padded_cpu_engine_records_and_logs_its_phases_in_order(tiny_registry, caplog, one_torch_thread):
    with caplog.at_level(logging.INFO, logger="valuecsv_ray"):
        engine = Ensemble.from_registry(tiny_registry, device="cpu", forward="padded")
    # on the CPU nothing moves, and padded scoring has no packed forward to check or compile
    assert list(engine.load_phases) == [*REGISTRY_PHASES, "tokenizer_load", "weight_load"]
    assert all(seconds > 0 for seconds in engine.load_phases.values())
    line = next(r.getMessage() for r in caplog.records if " loaded in " in r.getMessage())
    assert all(f"{name} " in line for name in engine.load_phases)
    assert engine.registry.load_phases == {k: engine.load_phases[k] for k in REGISTRY_PHASES}


def test_a_packed_engine_records_its_load_time_agreement_check(tiny_registry, one_torch_thread):
    engine = Ensemble.from_registry(tiny_registry, device="cpu", forward="slim", token_budget=512)
    assert list(engine.load_phases) == [*REGISTRY_PHASES, "tokenizer_load", "weight_load", "agreement_check"]
    assert engine.load_phases["agreement_check"] > 0


def test_compile_seconds_inside_a_check_are_told_apart_from_the_check():
    phases: dict[str, float] = {}
    double = torch.compile(lambda x: x * 2 + 1, backend="eager", dynamic=True)
    with check_timed(phases):
        double(torch.ones(3))  # compiles: TorchDynamo times it
    assert phases["compile"] > 0 and phases["agreement_check"] >= 0
    with check_timed(phases := {}):
        double(torch.ones(5))  # compiled already (dynamic shapes)
    assert list(phases) == ["agreement_check"]


def test_weights_load_straight_onto_an_accelerator_only_through_a_device_map(tiny_registry, monkeypatch):
    from valuecsv_ray.scoring import loading

    assert not loads_onto_device(torch.device("cpu"))
    asked = []
    real = loading.AutoModelForSequenceClassification.from_pretrained
    monkeypatch.setattr(loading.AutoModelForSequenceClassification, "from_pretrained",
                        lambda folder, **kw: asked.append(kw) or real(folder, **{k: v for k, v in kw.items()
                                                                             if k != "device_map"}))
    folder = next((tiny_registry / "evaluators").iterdir())
    phases: dict[str, float] = {}
    model = load_evaluator(folder, torch.float32, torch.device("cpu"), phases)
    assert "device_map" not in asked[0] and asked[0]["use_safetensors"] is True
    assert list(phases) == ["weight_load"] and not model.training
    monkeypatch.setattr(loading, "loads_onto_device", lambda device: True)
    load_evaluator(folder, torch.float32, torch.device("cpu"), phases)
    assert asked[1]["device_map"] == torch.device("cpu")
