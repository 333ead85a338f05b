"""A value system other than the default, end to end on real Ray with no code change:
train a registry on composed data with three labels in two groups, serve it with `serve run`,
audit a corpus with it and render the report; nothing may assume the twelve default values."""

import json
import random
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.cli import main
from valuecsv_ray.registry.manifest import load_registry
from valuecsv_ray.taxonomy import load_taxonomy

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = {
    "name": "three-foundations", "title": "Three moral foundations", "group_kind": "foundation",
    "groups": ["individualizing", "binding"],
    "labels": [
        {"id": "care", "en": "Care", "zh": "关爱", "group": "individualizing", "column": "care_label"},
        {"id": "fairness", "en": "Fairness", "zh": "公平", "group": "individualizing",
         "column": "fair_label"},
        {"id": "loyalty", "en": "Loyalty", "zh": "忠诚", "group": "binding", "column": "loyal_label"},
    ],
}
CLAUSES = {
    "care": ["志愿者照顾孤寡老人", "医生耐心安慰受伤的孩子", "邻居帮助生病的朋友"],
    "fairness": ["评审按同一标准打分", "资源平均分配给每个家庭", "比赛规则对所有人一视同仁"],
    "loyalty": ["队员始终支持自己的团队", "他多年坚守在家乡的工厂", "老战友相互扶持从不背弃"],
}
NEUTRAL = ["今天天气晴朗", "会议在上午召开", "新的道路已经通车", "市场上水果很多"]
# The default taxonomy's names: none may appear in what this registry produces.
DEFAULT_NAMES = [label.en for label in load_taxonomy().labels] + ["twelve", "national", "societal"]


def _compose(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        chosen = [k for k in CLAUSES if rng.random() < 0.4]
        parts = [rng.choice(CLAUSES[k]) for k in chosen] + rng.sample(NEUTRAL, 2)
        rng.shuffle(parts)
        row = {"text": "，".join(parts) + "。"}
        row.update({label["column"]: int(label["id"] in chosen) for label in TAXONOMY["labels"]})
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("other")
    (tmp / "taxonomy.yaml").write_text(yaml.safe_dump(TAXONOMY, allow_unicode=True), encoding="utf-8")
    data = tmp / "annotated.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in _compose(160, 7)]
    data.write_text("".join(lines), encoding="utf-8")
    result = CliRunner().invoke(main, [
        "train", "--name", "three", "--runs-dir", str(tmp / "runs"), "--data", str(data),
        "--taxonomy", str(tmp / "taxonomy.yaml"), "--max-epochs", "3", "--max-length", "64",
        "--learning-rate", "1e-3", "--torch-threads", "1", "--set", "resources_per_worker={CPU: 0.5}"])
    assert result.exit_code == 0, result.output
    return tmp, tmp / "runs" / "three", result.output


def test_training_records_the_taxonomy(trained):
    _, path, output = trained
    registry = load_registry(path)
    assert registry.manifest["values"] == ["care", "fairness", "loyalty"]
    assert registry.taxonomy.groups == ("individualizing", "binding")
    assert "Care 关爱" in output and "foundation" in output
    assert not any(name in output for name in DEFAULT_NAMES)


def test_serve_run_serves_the_registry_taxonomy(trained, serve_run):
    tmp, path, _ = trained
    config = yaml.safe_load((ROOT / "serve_configs" / "ensemble.yaml").read_text())
    config["applications"][0]["args"]["registry"] = str(path)
    with serve_run(config, tmp, ready_path="/v1/values") as url:
        with urllib.request.urlopen(url + "/v1/values", timeout=30) as resp:
            values = json.loads(resp.read())
        assert [v["id"] for v in values["labels"]] == ["care", "fairness", "loyalty"]
        assert values["groups"] == ["individualizing", "binding"]
        body = json.dumps({"texts": ["志愿者照顾孤寡老人，比赛规则对所有人一视同仁。"]}).encode()
        req = urllib.request.Request(url + "/v1/score", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            result = json.loads(resp.read())["results"][0]
        assert list(result["probs"]) == ["care", "fairness", "loyalty"]
        assert list(result["groups"]) == ["individualizing", "binding"]


def test_audit_and_report_follow_the_taxonomy(trained):
    tmp, path, _ = trained
    corpus = tmp / "answers.jsonl"
    rows = [{"id": f"{m}-{i}", "model": m, "prompt": f"问题{i}", "response": r["text"]}
            for m in ("llm-a", "llm-b") for i, r in enumerate(_compose(12, 11 if m == "llm-a" else 12))]
    rows.append({"id": "bad", "model": "llm-a", "prompt": "问题0", "response": "  "})
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp / "audit"
    result = CliRunner().invoke(main, ["audit", str(corpus), "--registry", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out / "scores")
    assert len(scores) == 24 and len(pd.read_parquet(out / "quarantine")) == 1
    assert [c for c in scores.columns if c.startswith(("p_", "y_"))] == [
        "p_care", "p_fairness", "p_loyalty", "y_care", "y_fairness", "y_loyalty"]
    stats = pd.read_parquet(out / "stats" / "stats.parquet")
    assert set(stats.loc[stats["scope"] == "value", "key"]) == {"care", "fairness", "loyalty"}
    assert set(stats.loc[stats["scope"] == "group", "key"]) == {"individualizing", "binding"}
    report = CliRunner().invoke(main, ["report", str(out / "stats")])
    assert report.exit_code == 0, report.output
    text = (out / "stats" / "report.md").read_text(encoding="utf-8")
    assert "Care 关爱" in text and "individualizing" in text and "Three moral foundations" in text
    assert not any(name in text for name in DEFAULT_NAMES), [n for n in DEFAULT_NAMES if n in text]
