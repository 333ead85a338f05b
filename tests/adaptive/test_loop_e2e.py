"""`valuecsv-ray adaptive run` end to end against the stub server: IRT examinees of known ability, an
item writer, a real (random tiny) registry whose threshold separates the two answer texts; two
rounds after the seed calibration, then a rerun from inside round 2 that sends no request, then the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy.stats import spearmanr

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.cli.adaptive import adaptive
from valuecsv_ray.registry.manifest import load_registry
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.taxonomy import load_taxonomy
from valuecsv_ray.testing.irt_stub import (
    IrtStub,
    marked_difficulty,
    pick_answer_texts,
    seed_items,
    set_threshold,
)
from valuecsv_ray.testing.llm_stub import SENTENCES, StubLLM
from valuecsv_ray.testing.synthetic import random_registry

pytestmark = pytest.mark.integration
TRUE = {"irt-low": -1.5, "irt-mid": 0.0, "irt-high": 1.5}


def registry_with_separating_threshold(path, value: str) -> tuple[str, str]:
    """A random tiny registry (two values: the test's and one more) whose threshold on `value` lies
    between the best and the worst scored stub sentence."""
    random_registry(path, size="tiny", seed=0, taxonomy=load_taxonomy().subset(["patriotism", "integrity"]))
    scores = Ensemble(load_registry(path), device="cpu").score(list(SENTENCES))
    column = scores.value_ids.index(value)
    conforming, violating, threshold = pick_answer_texts(
        {t: float(p) for t, p in zip(SENTENCES, scores.probs[:, column], strict=True)})
    set_threshold(path, value, threshold)
    check = Ensemble(load_registry(path), device="cpu").score([conforming, violating])
    assert check.labels[:, column].tolist() == [True, False]
    return conforming, violating


def test_two_adaptive_rounds_order_the_models_and_resume_without_requests(ray_local, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    value = "patriotism"
    conforming, violating = registry_with_separating_threshold(registry, value)
    irt = IrtStub(TRUE, conforming=conforming, violating=violating, writer="writer")
    suite = tmp_path / "seeds.jsonl"
    suite.write_text("".join(json.dumps({"id": i, "prompt": p}, ensure_ascii=False) + "\n"
                             for i, p in enumerate(seed_items(np.linspace(-2.0, 2.0, 12)))), encoding="utf-8")
    bank, _ = bank_.build_bank(str(suite), load_registry(registry).taxonomy, values=[value])
    bank_.write_bank(bank, tmp_path / "bank.parquet")
    monkeypatch.setenv("ADAPTIVE_STUB_KEY", "sk-stub")
    with StubLLM(irt=irt) as stub:
        entries = [{"name": n, "base_url": stub.base_url, "model": n, "api_key_env": "ADAPTIVE_STUB_KEY",
                    "max_in_flight": 8} for n in irt.names]
        (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump({"endpoints": entries}))
        args = ["run", "--bank", str(tmp_path / "bank.parquet"), "--endpoints",
                str(tmp_path / "endpoints.yaml"), "--generator", "writer", "--registry", str(registry),
                "--rounds", "2", "--out", str(tmp_path / "run"), "--value", value, "--batch", "4",
                "--new-items", "4", "--examples", "2", "--target-se", "0.05"]
        result = CliRunner().invoke(adaptive, args)
        assert result.exit_code == 0, result.output
        sent = len(stub.requests())
        (tmp_path / "run" / "round-02" / "done.json").unlink()  # as if stopped before round 2's end
        again = CliRunner().invoke(adaptive, args)
        assert again.exit_code == 0, again.output
        assert len(stub.requests()) == sent  # rounds 0, 1 read back; round 2's collects and audit resumed
    printed = [line for line in result.output.splitlines() if line.startswith(("round ", "  patriotism"))]
    print("\n".join(printed))
    assert [line[:8] for line in printed if line.startswith("round")] == ["round 0:", "round 1:", "round 2:"]
    assert len(printed) == 3 * 4 and "95% [" in printed[1]
    assert [line for line in again.output.splitlines() if line in printed] == printed

    out = tmp_path / "run"
    abilities = pd.read_parquet(out / "round-02" / "abilities.parquet").set_index("model")
    rho = spearmanr([TRUE[m] for m in abilities.index], abilities["theta"]).statistic
    assert rho == pytest.approx(1.0), abilities

    final = bank_.read_bank(out / "bank.parquet").items
    generated = final[final["origin"] == "generated"]
    admitted = generated[generated["status"] == bank_.ACTIVE]
    assert len(admitted) >= 3 and (generated["status"] == bank_.REJECTED).any()
    assert generated.loc[generated["status"] == bank_.REJECTED, "status_reason"].str.len().gt(0).all()
    asked = np.array([json.loads(m)["asked_difficulty"] for m in admitted["meta"]])
    carried = np.array([marked_difficulty(p) for p in admitted["prompt"]])
    assert np.abs(carried - asked).max() <= irt.noise + 0.006
    round_1 = json.loads((out / "round-01" / "done.json").read_text())
    thetas = {round(r["theta"] * 20) / 20 for r in json.loads((out / "round-00" / "done.json").read_text())
              ["abilities"]}
    requests = pd.read_parquet(out / "round-01" / "requests.parquet")
    assert set(requests["difficulty"]) <= thetas and round_1["candidates"] > 0

    report = CliRunner().invoke(adaptive, ["report", str(out)])
    assert report.exit_code == 0, report.output
    text = (out / "report" / "adaptive.md").read_text(encoding="utf-8")
    assert "Abilities" in text and "static" in text.lower()
    assert (out / "report" / "information.png").stat().st_size > 1000
