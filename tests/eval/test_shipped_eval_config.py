"""The shipped eval config, run as its comment tells a user to (`valuecsv-ray eval --config
configs/eval/stub.yaml`), against the stub server: its endpoints file's three models, its profiles
(a shipped preset among them) on the leaderboard, and the profile similarity beside it. Only what a
test machine must change is set: the stub's address (a free port), the registry, data and out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.cli import main
from valuecsv_ray.eval.config import load_eval_config
from valuecsv_ray.testing.llm_stub import StubLLM

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "eval" / "stub.yaml"


def test_the_shipped_eval_config_runs(ray_local, tiny_registry, shared_data, tmp_path, monkeypatch):
    shipped = load_eval_config(CONFIG)
    monkeypatch.chdir(ROOT)  # the config names its endpoints file relative to the checkout
    monkeypatch.setenv("STUB_API_KEY", "sk-stub")
    endpoints = yaml.safe_load((ROOT / shipped.collect.endpoints).read_text(encoding="utf-8"))
    with StubLLM(latency_s=0.01) as stub:
        for entry in endpoints["endpoints"]:
            entry["base_url"] = stub.base_url
        (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump(endpoints), encoding="utf-8")
        overrides = {"endpoints": tmp_path / "endpoints.yaml", "registry": tiny_registry, "limit": 4,
                     "data_dir": shared_data, "out": tmp_path / "ev", "n_boot": 50}
        args = ["eval", "--config", str(CONFIG), *(f"--set={k}={v}" for k, v in overrides.items())]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    board = pd.read_parquet(tmp_path / "ev" / "leaderboard" / "leaderboard.parquet")
    assert list(dict.fromkeys(board["profile"])) == shipped.profiles
    assert set(board["model"]) == {e["name"] for e in endpoints["endpoints"]}
    similar = pd.read_parquet(tmp_path / "ev" / "leaderboard" / "similarity.parquet")
    assert set(similar["against"]) == set(shipped.profiles) - {"uniform"} and len(similar) == 3 * 2
    assert "Profile similarity" in (tmp_path / "ev" / "report" / "report.md").read_text(encoding="utf-8")
