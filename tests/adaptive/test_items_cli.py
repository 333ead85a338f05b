"""`valuecsv-ray items init` and `items show` as a user types them (click's CliRunner on the group)."""

from types import SimpleNamespace

import pandas as pd
from click.testing import CliRunner

from valuecsv_ray.adaptive.bank import read_bank
from valuecsv_ray.cli.items import items
from valuecsv_ray.taxonomy import load_taxonomy


def run(*args):
    return CliRunner().invoke(items, [str(a) for a in args])


def test_init_from_quest100_reports_skipped_rows(shared_data, tmp_path):
    out = tmp_path / "bank.parquet"
    result = run("init", "--suite", "quest100", "--data-dir", shared_data, "--out", out)
    assert result.exit_code == 0, result.output
    bank = read_bank(out)
    assert f"{out}: {len(bank.items)} items from quest100 (origin seed)" in result.output
    assert "skipped 4 rows" in result.output and "blank question cell" in result.output
    assert "quest100:53: same text as quest100:32" in result.output
    listing = pd.read_csv(tmp_path / "bank.skipped.csv")
    assert len(listing) == 4 and len(bank.items) + len(listing) == 103  # rows 2..104 of the sheet
    shown = run("show", out)
    assert shown.exit_code == 0 and f"seed       active    {len(bank.items)}" in shown.output


def test_init_with_values_and_refusals(tmp_path):
    suite = tmp_path / "mine.jsonl"
    lines = ['{"id": 1, "prompt": "你如何看待诚实守信？"}', '{"id": 2, "prompt": ""}']
    suite.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = load_taxonomy().ids
    out = tmp_path / "bank.parquet"
    result = run("init", "--suite", suite, "--values", f"{ids[1]},{ids[0]}", "--out", out)
    assert result.exit_code == 0, result.output
    assert read_bank(out).items["values"][0] == [ids[0], ids[1]]  # taxonomy order
    assert "origin user" in result.output and "row 2: empty prompt" in result.output
    again = run("init", "--suite", suite, "--out", out)
    assert again.exit_code == 2 and "exists; give --force" in again.output
    bad = run("init", "--suite", suite, "--values", "nope", "--out", tmp_path / "b2.parquet")
    assert bad.exit_code == 2 and "unknown value 'nope'" in bad.output
    missing = run("init", "--suite", "quest100", "--data-dir", tmp_path, "--out", tmp_path / "b3.parquet")
    assert missing.exit_code == 1 and "error: suite 'quest100' reads quest100.xlsx" in missing.output
    assert not (tmp_path / "b3.parquet").exists()


def test_init_takes_the_taxonomy_of_a_registry(tmp_path, monkeypatch):
    import valuecsv_ray.registry.manifest as manifest

    taxonomy = load_taxonomy()
    two = taxonomy.subset(taxonomy.ids[:2])  # a registry trained on two values
    seen = []

    def load_registry(path):
        seen.append(path)
        return SimpleNamespace(taxonomy=two)

    monkeypatch.setattr(manifest, "load_registry", load_registry)
    suite = tmp_path / "mine.csv"
    suite.write_text("id,prompt\n1,你如何看待诚实守信？\n", encoding="utf-8")
    out = tmp_path / "bank.parquet"
    result = run("init", "--suite", suite, "--registry", "runs/x", "--out", out)
    assert result.exit_code == 0, result.output
    assert seen == ["runs/x"] and read_bank(out).taxonomy == two
    assert f"all 2 values of {taxonomy.name}" in result.output
    both = run("init", "--suite", suite, "--registry", "runs/x", "--taxonomy", taxonomy.name, "--out",
               tmp_path / "b.parquet")
    assert both.exit_code == 2 and "give --taxonomy or --registry, not both" in both.output
