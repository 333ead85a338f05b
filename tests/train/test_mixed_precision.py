"""Training at GPU speed, checked on the CPU: precision settings, bf16 autocast, the batch prefetcher
and the per-epoch throughput and step losses that end up in result.json."""

import math
import threading
import time

import numpy as np
import pytest
import torch

from valuecsv_ray.backbone import tiny_model
from valuecsv_ray.config import TRAIN_RUNTIME_KEYS, ConfigError, load_train_config
from valuecsv_ray.overlap import Prefetcher
from valuecsv_ray.registry.manifest import RegistryError, start_job
from valuecsv_ray.scoring.core import pad_batch
from valuecsv_ray.train.loop import (
    EpochStats,
    chunks,
    host_batch,
    make_loss,
    make_optimizer,
    predict_logits,
    resolve_precision,
    tf32_matmuls,
    train_epoch,
)
from valuecsv_ray.train.worker import Progress, _epoch_summary

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)  # only as a value: nothing here runs on a GPU

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "batch-prefetch"]


# --- the prefetcher -------------------------------------------------------------------------


def test_prefetcher_yields_the_plain_batches_in_order(toy):
    ids, targets, pad_id = toy
    order = np.random.default_rng(3).permutation(len(ids))
    plain = [{**pad_batch([ids[i] for i in idx], pad_id, CPU), "targets": torch.as_tensor(targets[idx])}
             for idx in chunks(order, 7)]

    def slow_make(idx):  # slower than the consumer at first, so the queue runs empty and full
        time.sleep(0.002 * (len(idx) % 3))
        return host_batch(ids, idx, pad_id, targets=targets)

    with Prefetcher(chunks(order, 7), slow_make, depth=2) as batches:
        fetched = list(batches)
    assert len(fetched) == len(plain) == math.ceil(len(ids) / 7)
    for got, want in zip(fetched, plain, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), key
    assert not _prefetch_threads()


def test_prefetcher_raises_the_error_of_a_batch_after_the_batches_before_it():
    made = []

    def make(i):
        if i == 3:
            raise ValueError("row 3 cannot be padded")
        made.append(i)
        return i

    got = []
    with pytest.raises(ValueError, match="row 3 cannot be padded"):
        with Prefetcher(range(10), make) as batches:
            for batch in batches:
                got.append(batch)
    assert got == [0, 1, 2] and made == [0, 1, 2], "batches after the failing one were made or yielded"
    assert not _prefetch_threads()


def test_prefetcher_stops_its_thread_when_the_loop_breaks():
    made = []

    def make(i):
        made.append(i)
        return i

    with Prefetcher(range(10_000), make, depth=2) as batches:
        for batch in batches:
            if batch == 1:
                break
    assert not _prefetch_threads(), "the prefetch thread outlived its with block"
    assert len(made) <= 6, f"the thread kept preparing batches nobody takes: {len(made)}"


def test_prefetcher_stops_its_thread_when_a_step_fails():
    with pytest.raises(RuntimeError, match="step failed"):
        with Prefetcher(range(10_000), lambda i: i) as batches:
            for _ in batches:
                raise RuntimeError("step failed")
    assert not _prefetch_threads()


def test_prefetcher_outside_a_with_block_says_how_to_use_it():
    with pytest.raises(RuntimeError, match="with"):
        next(iter(Prefetcher(range(3), lambda i: i)))


def test_train_epoch_raises_an_error_from_preparing_a_batch(toy):
    ids, targets, pad_id = toy
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = make_loss(targets, multi_label=False, weighting="none")
    with pytest.raises(IndexError):  # targets shorter than ids: the batch holding row 63 fails
        train_epoch(model, ids, targets[:60], np.arange(len(ids)), 8, optimizer, scheduler, loss_fn,
                    CPU, pad_id)
    assert not _prefetch_threads()


# --- the precision setting ------------------------------------------------------------------


def test_precision_defaults_to_auto_and_takes_bf16_and_fp32():
    assert load_train_config(None, {}).hparams.precision == "auto"
    for value in ("auto", "bf16", "fp32"):
        assert load_train_config(None, {"precision": value}).hparams.precision == value


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", 16])
def test_invalid_precision_names_the_key_and_the_allowed_values(bad):
    with pytest.raises(ConfigError) as e:
        load_train_config(None, {"precision": bad, "batch_size": 0})
    message = str(e.value)
    assert f"precision must be one of ('auto', 'bf16', 'fp32'), got {bad!r}" in message
    assert "batch_size must be a positive integer" in message, "errors are reported together"


def test_precision_is_part_of_a_jobs_identity(tmp_path):
    """A re-run with another precision would mix fp32 and bf16 evaluators under one job record."""
    assert "precision" not in TRAIN_RUNTIME_KEYS

    def job(precision):
        cfg = load_train_config(None, {"name": "toyjob", "precision": precision})
        return {"config": cfg.to_dict(), "data": {"sha256": "ab" * 32}}

    start_job(tmp_path, job("fp32"))
    start_job(tmp_path, job("fp32"))  # same settings: resumes
    with pytest.raises(RegistryError, match="precision"):
        start_job(tmp_path, job("bf16"))


def test_resolve_precision_on_cpu():
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", CPU)


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_precision_on_cuda_follows_native_bf16_support(monkeypatch, native, expected):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert resolve_precision("auto", CUDA) is expected
    assert asked == [False], "emulated bf16 (pre-Ampere GPUs) is slower than fp32: not for 'auto'"
    assert resolve_precision("fp32", CUDA) is None and resolve_precision("bf16", CUDA) is torch.bfloat16


def _tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize(("precision", "on"), [("auto", True), ("bf16", True), ("fp32", False)])
@pytest.mark.parametrize("before", [(False, True), (True, True), (False, False)])
def test_tf32_is_on_while_training_on_cuda_except_for_the_fp32_reference(precision, on, before):
    """Setting the flags needs no GPU; afterwards they are back as they were (evaluation and serving)."""
    original = _tf32_flags()
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        with tf32_matmuls(precision, CUDA) as tf32:
            assert tf32 is on and _tf32_flags() == (on, on)
        assert _tf32_flags() == before
        with pytest.raises(RuntimeError), tf32_matmuls(precision, CUDA):
            raise RuntimeError("a step failed")
        assert _tf32_flags() == before
        with tf32_matmuls(precision, CPU) as tf32:
            assert tf32 is False and _tf32_flags() == before, "a CPU run must not change the CUDA flags"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = original


def test_adamw_is_fused_on_cuda_only():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, 1e-3, 0.01, CUDA).param_groups[0]["fused"] is True
    cpu = make_optimizer(params, 1e-3, 0.01, CPU).param_groups[0]
    assert not cpu["fused"] and cpu["lr"] == 1e-3 and cpu["weight_decay"] == 0.01


# --- bf16 autocast training -----------------------------------------------------------------


def _train(toy, amp_dtype, epochs: int = 6, batch_size: int = 8,
           model: torch.nn.Module | None = None) -> tuple[torch.nn.Module, list[EpochStats]]:
    ids, targets, pad_id = toy
    torch.manual_seed(0)
    model = model or tiny_model()
    optimizer = make_optimizer(model.parameters(), 1e-3, 0.01, CPU)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = make_loss(targets, multi_label=False, weighting="balanced")
    rng = np.random.default_rng(0)
    stats = [train_epoch(model, ids, targets, rng.permutation(len(ids)), batch_size, optimizer, scheduler,
                         loss_fn, CPU, pad_id, amp_dtype=amp_dtype) for _ in range(epochs)]
    return model, stats


def _matmul_dtypes(model: torch.nn.Module) -> list[torch.dtype]:
    """Records the output dtype of every call of the first attention query projection."""
    seen = []
    layer = model.bert.encoder.layer[0].attention.self.query
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


def test_bf16_autocast_training_lowers_the_loss_and_keeps_fp32_weights(toy):
    ids, targets, pad_id = toy
    model = tiny_model()
    seen = _matmul_dtypes(model)
    _, stats = _train(toy, torch.bfloat16, model=model)
    losses = [s.mean_loss for s in stats]
    assert losses[-1] < 0.5 * losses[0], losses
    assert seen and set(seen) == {torch.bfloat16}, "the forward did not run under bf16 autocast"
    assert {p.dtype for p in model.parameters()} == {torch.float32}, "autocast, not .half(): fp32 weights"
    logits = predict_logits(model, ids, np.arange(len(ids)), 16, CPU, pad_id, amp_dtype=torch.bfloat16)
    assert logits.dtype == torch.float32 and seen[-1] == torch.bfloat16
    assert (logits.argmax(dim=1).numpy() == targets).mean() >= 0.9


def test_fp32_training_runs_no_bf16(toy):
    model, stats = _train(toy, None, epochs=1)
    seen = _matmul_dtypes(model)
    ids, _, pad_id = toy
    predict_logits(model, ids, np.arange(8), 4, CPU, pad_id)
    assert set(seen) == {torch.float32}


def test_bf16_and_fp32_logits_agree_in_order(toy):
    ids, _, pad_id = toy
    model = tiny_model()
    order = np.random.default_rng(1).permutation(len(ids))[:20]
    fp32 = predict_logits(model, ids, order, 8, CPU, pad_id)
    bf16 = predict_logits(model, ids, order, 8, CPU, pad_id, amp_dtype=torch.bfloat16)
    one_by_one = torch.cat([predict_logits(model, ids, [i], 1, CPU, pad_id) for i in order])
    torch.testing.assert_close(fp32, one_by_one, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)
    assert not torch.equal(bf16, fp32), "bf16 logits equal fp32 to the bit: autocast did nothing"


# --- per-step losses and throughput ---------------------------------------------------------


def test_epoch_stats_hold_one_loss_per_step(toy):
    ids, _, _ = toy
    _, stats = _train(toy, torch.bfloat16, epochs=2, batch_size=10)
    for s in stats:
        assert len(s.step_losses) == math.ceil(len(ids) / 10) == 7
        assert all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in s.step_losses)
        assert s.mean_loss == pytest.approx(float(np.mean(s.step_losses)))
        assert s.samples == len(ids) and s.seconds > 0
    assert stats[0].step_losses != stats[1].step_losses
    assert math.isnan(EpochStats([], 0, 0.1).mean_loss)


def test_epoch_history_records_throughput_and_rounded_step_losses():
    stats = EpochStats([0.123456789, 0.5, 0.25], samples=48, seconds=2.0)
    summary = _epoch_summary(stats)  # outside Ray Train: one rank
    assert summary == {"train_loss": pytest.approx(np.mean(stats.step_losses)), "train_s": 2.0,
                       "samples_per_s": 24.0, "step_losses": [0.12346, 0.5, 0.25]}
    progress = Progress()
    progress.record(summary.pop("train_loss"), 0.4, **summary)
    entry = progress.history[-1]
    assert entry["epoch"] == 0 and entry["val_loss"] == 0.4 and entry["samples_per_s"] == 24.0
    assert entry["step_losses"] == [0.12346, 0.5, 0.25] and entry["train_s"] == 2.0
