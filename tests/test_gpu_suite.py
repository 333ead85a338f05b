"""The GPU suite's pure parts (bench/gpu_suite.py, bench/gpu_suite_parts/): kernel classes, the
padding fraction, the table, time budgets and how a part that fails, overruns or is cut off is
reported. The suite itself runs on the device (and as `bash bench/gpu_suite.sh --dry-run` here)."""

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def suite():
    """The modules, imported as the runner imports them (bench/ on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in (
            "gpu_suite", "gpu_suite_parts.common", "gpu_suite_parts.engine", "gpu_suite_parts.train",
            "gpu_suite_parts.audit", "gpu_suite_parts.serve", "gpu_suite_parts.processes")}
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture
def common(suite):
    return suite["gpu_suite_parts.common"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("name", "kind"), [
    ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", "gemm"),  # cuBLAS on H100 (CUDA 12.8+)
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_cublas", "gemm"),
    ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn_align8>", "gemm"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)", "attention"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>>", "attention"),
    ("cudnn_generated_fort_native_sdpa_sm90_knob_7_64x128x64_4x1x1_kernel0_0", "attention"),
    ("triton_per_fused_add_native_layer_norm_0", "other"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "other"),
    ("Memcpy HtoD (Pinned -> Device)", "copy"),
    ("aten::addmm", "gemm"),  # CPU ops (the dry run)
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
    ("aten::native_layer_norm", "other"),
])
def test_kernel_names_are_classified(common, name, kind):
    assert common.classify_kernel(name) == kind


def test_kernel_split_shares_leave_copies_out(common):
    split = common.kernel_split([("nvjet_a", 60.0), ("flash_fwd_kernel", 10.0), ("nvjet_a", 10.0),
                                 ("triton_poi_fused_gelu", 20.0), ("Memcpy HtoD", 500.0)])
    assert split["us"] == {"gemm": 70.0, "attention": 10.0, "other": 20.0, "copy": 500.0}
    assert split["share"] == pytest.approx({"gemm": 0.7, "attention": 0.1, "other": 0.2})
    assert split["top"][0] == ["Memcpy HtoD", 500.0] and split["top"][1] == ["nvjet_a", 70.0]
    assert common.split_text(split) == "GEMM 70% / attn 10% / other 20%"
    empty = common.kernel_split([])
    assert math.isnan(empty["share"]["gemm"]) and common.split_text(empty) == "n/a"


def test_table_is_markdown_with_escaped_cells(common):
    text = common.format_table([["engine", "slim", "812 texts/s | fast\nreally", ">= 700", True],
                                ["audit", "ratio", "0.71", ">= 0.9", False],
                                ["serve", "up", "9 s", "", None]])
    lines = text.splitlines()
    assert lines[0] == "| part | measure | result | target | met |" and lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| engine | slim | 812 texts/s / fast really | >= 700 | yes |"
    assert lines[3].endswith("| NO |") and lines[4].endswith("|  |  |")
    assert all(line.count("|") == 6 for line in lines)


def test_budget_counts_down_and_keeps_reserves(common):
    clock = Clock()
    budget = common.Budget(100, clock)
    assert budget.left() == 100 and budget.allows(100) and not budget.allows(101)
    clock.now += 70
    assert budget.left() == pytest.approx(30) and budget.slot(cap=50) == pytest.approx(30)
    assert budget.slot(cap=50, reserve=20) == pytest.approx(10) and budget.slot(50, reserve=40) == 0.0
    clock.now += 100
    assert budget.left() == 0.0 and not budget.allows(1)


def test_results_record_ok_failed_and_skipped_steps_at_once(common, tmp_path):
    clock = Clock()
    path = tmp_path / "part.json"
    results = common.Results(path, common.Budget(60, clock), table=lambda d: [[str(len(d["steps"]))]])
    assert results.step("fast", 10, lambda: {"texts_per_s": 5.0}) == {"texts_per_s": 5.0}
    assert json.loads(path.read_text())["steps"]["fast"]["status"] == "ok"  # written before the next step

    def boom() -> dict:
        raise RuntimeError("CUDA out of memory")

    assert results.step("oom", 10, boom) is None
    called = []
    clock.now += 55
    assert results.step("slow", 10, lambda: called.append(1) or {}) is None
    saved = json.loads(path.read_text())
    oom, slow = saved["steps"]["oom"], saved["steps"]["slow"]
    assert oom["status"] == "failed" and "CUDA out of memory" in oom["error"]
    assert slow == {"status": "skipped", "reason": "time budget: 5 s left, needs about 10 s"}
    assert called == [] and saved["table"] == [["3"]]


def test_a_step_cut_off_shows_how_far_it_got(common, tmp_path):
    results = common.Results(tmp_path / "p.json", common.Budget(60, Clock()))

    def cut_off() -> dict:
        results.progress("compile", load_s=41.5)
        raise SystemExit(143)  # the runner's SIGTERM

    with pytest.raises(SystemExit):
        results.step("compile", 1, cut_off)
    saved = json.loads((tmp_path / "p.json").read_text())["steps"]["compile"]
    assert saved["status"] == "running" and saved["load_s"] == 41.5


def test_a_broken_table_does_not_lose_the_results(common, tmp_path):
    results = common.Results(tmp_path / "p.json", common.Budget(60, Clock()), table=lambda d: 1 / 0)
    results.step("a", 1, lambda: {"x": 1})
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["steps"]["a"]["x"] == 1 and "ZeroDivisionError" in saved["table"][0][1]


def test_parts_get_their_cap_but_leave_later_parts_their_minimum(suite, common):
    runner = suite["gpu_suite"]
    plan = common.make_plan(False, Path("data"))
    clock = Clock()
    budget = common.Budget(plan.total_s, clock)
    assert runner.decide("prep", ["engine", "train", "audit", "serve"], budget, plan, None) == (
        plan.caps["prep"], None)
    clock.now += plan.total_s - 150  # 150 s left: engine may take 150 - 3 x 45 = 15 s: too little
    limit, why = runner.decide("engine", ["train", "audit", "serve"], budget, plan, "ok")
    later = sum(plan.minimums[p] for p in ("train", "audit", "serve"))
    assert limit == max(0.0, 150 - later) < plan.minimums["engine"] and why.startswith("time budget")
    limit, why = runner.decide("audit", ["serve"], budget, plan, "ok")
    assert (limit, why) == (min(plan.caps["audit"], 150 - plan.minimums["serve"]), None)
    assert runner.decide("serve", [], budget, plan, "timeout")[1] == "prep timeout: no registry"
    assert runner.decide("train", [], budget, plan, "failed")[1] is None  # train needs no registry


def test_the_device_plan_fits_seven_minutes(common):
    plan = common.make_plan(False, Path("data"))
    assert plan.total_s <= 420  # the GPU issue: one short run; bootstrap and pip install come before it
    assert sum(plan.minimums.values()) <= plan.total_s
    sequential = sum(cap for part, cap in plan.caps.items() if part != "prep")  # prep runs beside train
    assert sequential <= plan.total_s
    assert (plan.n_texts, plan.audit_rows, plan.loop_rows) == (2048, 20_000, 5_000)
    assert plan.train_rows * 0.7 == pytest.approx(600, abs=1)
    dry = common.make_plan(True, Path("data"))
    assert dry.device == "cpu" and dry.gpus == 0 and dry.size == "tiny"


SLEEPER = """
import subprocess, sys, time
stubborn = ("import os, signal, time; os.setpgrp(); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(60)")
child = subprocess.Popen([sys.executable, "-c", stubborn])  # like raylet: same session, deaf to SIGTERM
print(child.pid, flush=True)
print("[gpu_suite] started", flush=True)
time.sleep(60)
"""


@pytest.mark.integration  # kills a process group after a 3 s limit
def test_a_part_past_its_limit_is_ended_with_all_it_started(suite, tmp_path, monkeypatch, capsys):
    processes = suite["gpu_suite_parts.processes"]
    monkeypatch.setattr(processes, "GRACE_S", 1)
    command = [sys.executable, "-c", SLEEPER]
    running = processes.start_part("sleeper", command, tmp_path, tmp_path / "s.log", limit_s=3)
    status = processes.finish_part(running)
    assert status["status"] == "timeout" and 3 <= status["wall_s"] < 60  # ended, not slept out
    child = int((tmp_path / "s.log").read_text().split()[0])
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    assert "[gpu_suite] sleeper: started" in capsys.readouterr().out


def test_a_part_that_exits_nonzero_has_failed(suite, tmp_path):
    processes = suite["gpu_suite_parts.processes"]
    running = processes.start_part("bad", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path,
                                   tmp_path / "b.log", 30)
    assert processes.finish_part(running)["status"] == "failed"


def test_table_rows_show_status_rows_and_unfinished_steps(suite, tmp_path):
    runner = suite["gpu_suite"]
    (tmp_path / "engine.json").write_text(json.dumps({
        "table": [["padded", "410 texts/s", ">= 700 texts/s", False]],
        "steps": {"padded": {"status": "ok"}, "slim+compile": {"status": "running", "load_s": 41.25},
                  "varlen": {"status": "failed", "error": "RuntimeError: packed scoring disagrees"}}}))
    statuses = {"engine": {"status": "timeout", "rc": -9, "wall_s": 171.0, "limit_s": 170},
                "train": {"status": "skipped", "reason": "time budget: 20 s left for it"}}
    rows = runner.table_rows(tmp_path, statuses)
    assert rows[0] == ["engine", "status", "TIMEOUT in 171 s (limit 170 s)", "", None]
    assert rows[1] == ["engine", "padded", "410 texts/s", ">= 700 texts/s", False]
    assert rows[2][1] == "steps not ok" and "slim+compile: running (load_s 41.25)" in rows[2][2]
    assert "varlen: failed (RuntimeError: packed scoring disagrees)" in rows[2][2]
    assert rows[3] == ["train", "status", "SKIPPED: time budget: 20 s left for it", "", None]


def test_small_results_fold_into_the_summary(suite, tmp_path):
    (tmp_path / "prep.json").write_text('{"steps": {"registry": {"status": "ok"}}}')
    (tmp_path / "serve.json.tmp").write_text("{")
    assert suite["gpu_suite"].fold(tmp_path / "prep.json") == {"steps": {"registry": {"status": "ok"}}}
    assert list(tmp_path.iterdir()) == []
    assert suite["gpu_suite"].fold(tmp_path / "prep.json") is None


def _path(texts_per_s, **extra):
    return {"status": "ok", "dtype": "bfloat16", "token_budget": 131072, "texts": 4096,
            "texts_per_s": texts_per_s, "ceiling_share": 0.41, "padding_fraction": 0.0,
            "max_abs_dp_vs_padded": 0.004,
            "profile": {"share": {"gemm": 0.7, "attention": 0.1, "other": 0.2}}, **extra}


def test_engine_table_judges_paths_and_the_speed_up(suite):
    engine = suite["gpu_suite_parts.engine"]
    steps = {"reference": {"status": "ok", "texts": 256, "texts_per_s": 32.0, "max_length": 512},
             "padded": _path(410.0, padding_fraction=0.31), "varlen": {"status": "failed", "error": "x"},
             "slim": _path(650.0), "slim+compile": _path(720.0, dynamo={"graphs_compiled_while_timed": 2})}
    rows = engine.table({"steps": steps, "judge": True})
    assert rows[0][0] == "earlier H100 figures (context)" and len(rows) == 6
    assert rows[2] == ["padded (bfloat16, budget 131072), 4096 texts",
                       "410.0 texts/s; 41% of ceiling; pad 31%; max dp 4.0e-03; "
                       "GEMM 70% / attn 10% / other 20%",
                       ">= 700 texts/s", False]
    assert rows[3][3] is True and rows[3][1].endswith("2 graphs compiled while timed")  # slim+compile
    assert rows[4][0].startswith("slim (") and rows[4][3] is False
    assert rows[5] == ["best path / reference way", "22.5x (slim+compile)", ">= 20x", True]
    dry = engine.table({"steps": steps, "judge": False})
    assert dry[0][0].startswith("reference way") and all(row[3] is None for row in dry)


def test_engine_options_are_judged_against_slim_compile_and_combined_when_they_help(suite):
    engine = suite["gpu_suite_parts.engine"]
    steps = {"padded": _path(300.0), "slim+compile": _path(400.0),
             "+gelu": _path(460.0, options={"attention": "flash", "gelu": "fused", "precision": "bf16"}),
             "+fp8": _path(520.0, max_abs_dp_vs_padded=0.2),  # faster, but too far from padded
             "+cudnn": _path(390.0)}  # slower
    rows = {row[0].split(" (")[0]: row for row in engine.table({"steps": steps, "judge": True})}
    assert rows["+gelu"][1].startswith("1.15x slim+compile; 460.0 texts/s")
    assert "gelu fused" in rows["+gelu"][0]
    assert engine.best_options(steps) == {"forward": "slim", "compile": True, "gelu": "fused"}
    assert engine.best_options({**steps, "slim+compile": {"status": "failed"}}) == engine.COMPILED


def _evaluator(start, end, **history):
    return {"train_start": start, "train_end": end, "attempts": [{"precision": "bf16"}],
            "history": [{"epoch": 0, "train_loss": 0.69, "val_loss": 0.7, **history}]}


def test_train_runs_report_overlap_throughput_and_missing_history(suite):
    train = suite["gpu_suite_parts.train"]
    manifest = {"evaluators": {
        "a": _evaluator(0, 100, train_s=80, samples_per_s=25.0, step_losses=[0.7, 0.6]),
        "b": _evaluator(50, 110, train_s=50, samples_per_s=40.0, step_losses=[0.7, 0.5])}}
    run = train.read_run(manifest, ["a", "b"])
    assert run["overlap_s"] == 50 and run["overlap_share"] == pytest.approx(50 / 60)
    assert run["samples_per_s_sum"] == 65.0 and run["evaluators"]["a"]["precision"] == "bf16"
    old = train.read_run({"evaluators": {"a": _evaluator(0, 10), "b": _evaluator(20, 30)}}, ["a", "b"])
    assert old["overlap_share"] == 0 and old["samples_per_s_sum"] is None
    assert old["evaluators"]["a"]["missing_history"] == ["train_s", "samples_per_s", "step_losses"]
    cell = train.run_result({**old, "train_all_s": 40})
    assert cell.startswith("history lacks samples_per_s, step_losses, train_s")


def test_train_table_compares_the_loss_curves_of_both_precisions(suite):
    train = suite["gpu_suite_parts.train"]
    run = {"status": "ok", "train_all_s": 40, **train.read_run({"evaluators": {
        "a": _evaluator(0, 10, train_s=8, samples_per_s=10.0, step_losses=[0.70, 0.60, 0.50]),
        "b": _evaluator(0, 10, train_s=8, samples_per_s=10.0, step_losses=[0.70, 0.65, 0.55])}}, ["a", "b"])}
    half = {"status": "ok", "train_all_s": 30, **train.read_run({"evaluators": {
        "a": _evaluator(0, 10, train_s=8, samples_per_s=12.0, step_losses=[0.70, 0.62, 0.45]),
        "b": _evaluator(0, 10, train_s=8, samples_per_s=12.0, step_losses=[0.71, 0.65])}}, ["a", "b"])}
    rows = train.table({"steps": {"fp32": run, "bf16": half}, "per_worker": "0.5 GPU"})
    assert rows[0][:2] == ["fp32: samples/s (2 evaluators at 0.5 GPU each)",
                           "20 (10 + 10); overlap 100%; ran bf16; job 40 s"]
    assert rows[2] == ["loss curve a, fp32 vs bf16 (2 steps)",
                       "first 0.700 / 0.700, last 0.600 / 0.620, max gap 0.020", "", None]
    assert rows[3][1].endswith("max gap 0.010")
    assert len(train.table({"steps": {"fp32": run}})) == 1  # one precision: nothing to compare


def test_audit_ratio_is_judged_only_on_the_device(suite):
    audit = suite["gpu_suite_parts.audit"]
    steps = {"plain_loop": {"status": "ok", "forward": "slim", "rows": 20000, "rows_per_s": 800.0},
             "audit": {"status": "ok", "gpus_per_actor": 1.0, "rows_per_s": 700.0, "score_s": 28.6,
                       "total_s": 31.0, "max_abs_dp_vs_loop": 0.0}}
    rows = audit.table({"steps": steps, "judge": True})
    assert rows[-1] == ["audit / plain loop rows/s", "0.88", ">= 0.9", False]
    assert audit.table({"steps": steps, "judge": False})[-1][3] is None
    steps["audit"]["max_abs_dp_vs_loop"] = None  # the loop's scores were not kept
    assert audit.table({"steps": steps})[1][1].endswith("max dp vs loop n/a")
    assert audit.corpus_texts(["a", "b"], 5) == ["a", "b", "a", "b", "a"]


def test_serve_levels_shrink_to_what_fits(suite):
    serve = suite["gpu_suite_parts.serve"]
    assert serve.requests_that_fit(960, 64, warm_rate=200.0, seconds=30) == 960
    assert serve.requests_that_fit(960, 64, warm_rate=10.0, seconds=30) == 300
    assert serve.requests_that_fit(150, 1, warm_rate=40.0, seconds=10) == 100  # 1 client: a quarter of 4
    assert serve.requests_that_fit(960, 64, warm_rate=1.0, seconds=5) == 128  # two per client at least


def test_serve_config_is_the_gpu_yaml_with_this_registry(suite, common, tmp_path):
    serve = suite["gpu_suite_parts.serve"]
    device = serve.serve_config(common.make_plan(False, Path("d")), tmp_path, 8123)
    args = device["applications"][0]["args"]
    assert (device["http_options"]["port"], args["registry"], args["device"]) == (8123, str(tmp_path), "cuda")
    assert device["applications"][0]["deployments"][0]["ray_actor_options"]["num_gpus"] == 1
    dry = serve.serve_config(common.make_plan(True, Path("d")), tmp_path, 8124)
    assert dry["applications"][0]["args"]["device"] == "cpu"
    assert dry["applications"][0]["deployments"][0]["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}


def test_small_helpers(common):
    assert common.every_kth(3) == [0, 1, 2] and common.every_kth(0) == []
    picked = common.every_kth(125)
    assert picked[0] == 0 and picked[-1] == 124 and 9 <= len(picked) <= 11
    assert common.overlap_s((0, 10), (5, 20)) == 5 and common.overlap_s((0, 1), (2, 3)) == 0
    latencies = list(np.random.default_rng(1).exponential(0.02, size=501))
    assert common.percentile_ms(latencies, 99) == pytest.approx(1000 * np.percentile(latencies, 99))
    assert math.isnan(common.percentile_ms([], 50))
    assert common.at_least(700.0, 700) is True and common.at_least(float("nan"), 1) is None


@pytest.mark.integration
def test_the_dry_run_goes_through_every_part_and_every_engine_option(tmp_path, shared_data):
    """`bash bench/gpu_suite.sh --dry-run` as a user runs it here (CPU, tiny models): every part ends
    ok, every engine path and option is measured, and the table comes last."""
    import os
    import subprocess

    env = {**os.environ, "OUT": str(tmp_path / "out"), "GPU_SUITE_DATA": str(shared_data)}
    command = ["bash", str(BENCH / "gpu_suite.sh"), "--dry-run", "--work", str(tmp_path / "work")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {p: s["status"] for p, s in summary["parts"].items()} == dict.fromkeys(
        ("prep", "engine", "train", "audit", "serve"), "ok")
    engine = json.loads((tmp_path / "out" / "engine.json").read_text())["steps"]
    for step in ("padded", "slim+compile", "reference", "+gelu", "+fp8", "+cudnn"):
        assert engine[step]["status"] == "ok", (step, engine[step])
    assert engine["+fp8"]["options"]["precision"] == "fp8" and engine["+gelu"]["options"]["gelu"] == "fused"
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["steps"]["audit"]["rows_scored"] == summary["plan"]["audit_rows"]
    assert "| part | measure | result | target | met |" in done.stdout


def test_engine_table_has_the_student_row_against_the_path_it_ran_beside(suite):
    engine = suite["gpu_suite_parts.engine"]
    steps = {"slim+compile": _path(400.0),
             "student": {"status": "ok", "texts": 4096, "texts_per_s": 3600.0, "against": "slim+compile",
                         "x_ensemble": 9.0}}
    rows = {row[0].split(",")[0]: row for row in engine.table({"steps": steps, "judge": True})}
    assert rows["student (1 multi-label model)"][1] == "3600.0 texts/s; 9.0x the ensemble's slim+compile"
