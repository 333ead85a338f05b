"""Packed ("varlen") scoring: the packing, both packed forwards and the engine on them give the
padded path's numbers, on CPU with the reference attention (CUDA checks run where a GPU is)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from valuecsv_ray.backbone import tiny_model
from valuecsv_ray.scoring.core import (
    Head,
    budget_batches,
    collect_margins,
    pad_batch,
    prefetched,
    token_batches,
)
from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.scoring.fp8 import FP8_TOLERANCE, Fp8Linear, dequantize, quantize_rows
from valuecsv_ray.scoring.varlen import (
    VARLEN,
    SlimBert,
    checked_packed_forward,
    pack,
    padding_fraction,
    reference_segment_attention,
    segment_attention,
    supports_packing,
    use_varlen_attention,
    varlen_logits,
)

CPU = torch.device("cpu")
LENGTHS = (2, 17, 5, 40, 9, 3)


def windows(lengths=LENGTHS, seed=0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [[2, *torch.randint(5, 20000, (n - 2,), generator=g).tolist(), 3] for n in lengths]


@pytest.fixture(params=[False, True], ids=["binary", "multilabel"])
def model(request):
    torch.set_num_threads(1)
    return tiny_model(3 if request.param else 2, request.param).eval()


def padded_logits(model, wins) -> torch.Tensor:
    with torch.inference_mode():
        return model(**pad_batch(wins, 0, CPU)).logits


def test_pack_restarts_positions_and_marks_each_text():
    wins = windows()
    packed = pack(wins)
    ids, positions = packed.input_ids[0].tolist(), packed.position_ids[0].tolist()
    assert packed.cu_seqlens.dtype == torch.int32 and packed.cu_seqlens.tolist() == [0, *np.cumsum(LENGTHS)]
    assert packed.max_length == max(LENGTHS) and packed.n_texts == len(LENGTHS)
    for i, w in enumerate(wins):
        a, b = packed.cu_seqlens[i].item(), packed.cu_seqlens[i + 1].item()
        assert ids[a:b] == w and positions[a:b] == list(range(len(w)))
    assert [ids[r] for r in packed.cls_rows.tolist()] == [2] * len(wins)  # every text's [CLS]


def test_pack_refuses_nothing_or_an_empty_window():
    for bad in ([], [[2, 3], []]):
        with pytest.raises(ValueError, match="no empty window"):
            pack(bad)


def test_token_batches_cover_every_window_once_within_budget():
    lengths = [int(n) for n in np.random.default_rng(0).integers(2, 512, 300)] + [900]
    batches = token_batches(lengths, 2048)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 2048 for b in batches if len(b) > 1)
    assert [lengths[i] for i in batches[-1]] == [900]  # over budget: alone
    assert padding_fraction(lengths, batches) > 0 and padding_fraction([4, 4], [np.array([0, 1])]) == 0


def test_reference_attention_keeps_texts_apart():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(sum(LENGTHS), 2, 8, generator=g) for _ in range(3))
    cu = pack(windows()).cu_seqlens
    got = reference_segment_attention(q, k, v, cu, cu)
    a, b = cu[1].item(), cu[2].item()  # text 1 alone, as plain SDPA would see it
    alone = F.scaled_dot_product_attention(*(x[a:b].transpose(0, 1) for x in (q, k, v))).transpose(0, 1)
    torch.testing.assert_close(got[a:b], alone)
    whole = F.scaled_dot_product_attention(*(x.transpose(0, 1) for x in (q, k, v))).transpose(0, 1)
    assert not torch.allclose(got[a:b], whole[a:b], atol=1e-3)  # attending across texts differs
    torch.testing.assert_close(segment_attention(q, k, v, cu, cu, 40, 40), got)  # CPU: the reference


def test_varlen_attention_function_equals_padded_forward(model):
    wins = windows()
    expected = padded_logits(model, wins)
    use_varlen_attention(model)
    assert model.config._attn_implementation == VARLEN
    with torch.inference_mode():
        got = varlen_logits(model, pack(wins))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_slim_forward_equals_padded_forward(model):
    wins = windows(seed=3)
    with torch.inference_mode():
        got = SlimBert(model).eval()(pack(wins))
    torch.testing.assert_close(got, padded_logits(model, wins), atol=1e-5, rtol=1e-5)


def test_packed_forwards_refuse_a_model_that_would_attend_across_texts():
    model = tiny_model().eval()
    with pytest.raises(RuntimeError, match="use_varlen_attention"):
        varlen_logits(model, pack(windows()))  # still on sdpa: no document mask
    use_varlen_attention(model)
    with pytest.raises(RuntimeError, match="cu_seq_lens"):
        model(**pad_batch(windows(), 0, CPU))  # varlen attention without a packed batch


def whole_stream_attention(q, k, v, cu_q, cu_k, max_q, max_k):
    """Attention over the whole packed stream: every text sees every other (no document mask)."""
    q, k, v = (x.transpose(0, 1) for x in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(0, 1)


def test_load_check_catches_a_packed_forward_without_a_document_mask():
    # Built from attention that ignores text boundaries by construction, not from what some
    # transformers release does with a packed batch (5.25's sdpa masks restarting positions itself)
    model = tiny_model().eval()
    with torch.inference_mode():
        leaky = SlimBert(model, attention=whole_stream_attention).eval()
        wins = windows()
        expected = padded_logits(model, wins)
        assert (leaky(pack(wins)) - expected).abs().max() > 2e-4 * (1 + expected.abs().max())  # it leaks
        with pytest.raises(RuntimeError, match="disagrees with padded scoring"):
            checked_packed_forward(model, lambda m: leaky, CPU, 64)
        assert checked_packed_forward(model, lambda m: SlimBert(m).eval(), CPU, 64) is not None


@pytest.mark.parametrize("options", [{"fuse_gelu": True}, {"fp8": True}, {"fp8": True, "fuse_gelu": True}],
                         ids=["fused-gelu", "fp8", "fp8+fused-gelu"])
def test_slim_options_agree_with_the_padded_forward(model, options):
    wins = windows()
    with torch.inference_mode():
        got = SlimBert(model, **options).eval()(pack(wins))
    expected = padded_logits(model, wins)
    tolerance = 1e-5 if not options.get("fp8") else FP8_TOLERANCE * (1 + float(expected.abs().max()))
    assert (got - expected).abs().max() <= tolerance
    if options.get("fp8"):  # quantised: close, not equal
        assert (got - expected).abs().max() > 0


def test_fused_gelu_runs_in_the_gemm_and_fp8_replaces_the_encoder_linears(model):
    slim = SlimBert(model, fuse_gelu=True, fp8=True)
    assert all(isinstance(m, Fp8Linear) for layer in slim.layers for m in (layer.qkv, layer.attn_out,
                                                                             layer.up, layer.down))
    assert sum(isinstance(m, Fp8Linear) for m in slim.modules()) == 4 * len(slim.layers)
    assert not isinstance(slim.classifier, Fp8Linear)  # only the encoder's GEMMs are quantised
    x = torch.randn(7, model.config.hidden_size)
    plain = SlimBert(model, fuse_gelu=True).layers[0]
    torch.testing.assert_close(plain.up_gelu(x, True), plain.act(plain.up(x)), atol=1e-6, rtol=1e-5)
    relu = tiny_model().eval()
    relu.config.hidden_act = "relu"
    with pytest.raises(ValueError, match="fuse_gelu needs hidden_act 'gelu'"):
        SlimBert(relu, fuse_gelu=True)


def test_fp8_rows_keep_their_scale_and_lose_little():
    g = torch.Generator().manual_seed(8)  # seeded: the loss bound below is a figure of this data
    x = torch.randn(64, 256, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # rows, 1e-3 to 1e3
    xq, scale = quantize_rows(x)
    assert xq.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert float(xq.float().abs().amax(dim=1).min()) == pytest.approx(448.0)  # each row's max maps to 448
    relative = (dequantize(xq, scale) - x).abs() / x.abs().amax(dim=1, keepdim=True)
    assert float(relative.max()) <= 2 ** -4  # e4m3: 3 mantissa bits
    layer = torch.nn.Linear(256, 96)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(96, 256, generator=g) - 0.5) / 8)
        layer.bias.copy_((torch.rand(96, generator=g) - 0.5) / 8)
        fp8 = Fp8Linear(layer)
        got, expected = fp8(x[32:40]), layer(x[32:40])
        xq, x_scale = quantize_rows(x[32:40])
        emulated = dequantize(xq, x_scale) @ (fp8.weight.float() * fp8.weight_scale.t()).t() + layer.bias
    assert got.dtype == x.dtype
    torch.testing.assert_close(got, emulated, atol=1e-4, rtol=1e-4)  # the kernel does the quantised GEMM
    assert float(((got - expected).abs() / expected.abs().max()).max()) < 0.05  # and loses little


def test_supports_packing_names_what_is_missing():
    assert supports_packing(tiny_model()) is None
    relative = tiny_model()
    relative.config.position_embedding_type = "relative_key"
    assert "absolute positions" in supports_packing(relative)


def test_prefetched_batches_arrive_in_order_and_errors_surface():
    batches = [np.array([i, i + 10]) for i in range(7)]
    doubled = prefetched(batches, lambda b: {"v": torch.tensor(b * 2)}, CPU)
    got = [(b.tolist(), x["v"].tolist()) for b, x in doubled]
    assert got == [(b.tolist(), (b * 2).tolist()) for b in batches]

    def fails(b):
        if b[0] == 4:
            raise KeyError("row 4 is bad")
        return {"v": torch.tensor(b)}

    seen = []
    with pytest.raises(KeyError, match="row 4"):
        for b, _ in prefetched(batches, fails, CPU):
            seen.append(int(b[0]))
    assert seen == [0, 1, 2, 3]
    for _ in prefetched(batches, lambda b: {"v": torch.tensor(b)}, CPU):
        break  # leaving early neither hangs nor raises


def test_collect_margins_restores_input_order(model):
    wins = windows()
    head = Head(model, [0], [1], False) if model.config.num_labels == 2 else Head(model, [0, 1], [2, 0], True)
    batches = token_batches([len(w) for w in wins], 48)
    assert len(batches) > 1
    got = collect_margins([head], batches, lambda b: pad_batch([wins[i] for i in b], 0),
                          lambda h, x: h.model(**x).logits, CPU, len(wins))
    logits = padded_logits(model, wins).numpy()
    expected = logits[:, 1:2] - logits[:, :1] if not head.multi_label else logits[:, [2, 0]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("forward", ["varlen", "slim"])
def test_engine_packed_forward_scores_as_padded(tiny_registry, forward):
    torch.set_num_threads(1)
    texts = ["依法治国，公正司法。", "经济发展，国家富强。" * 90, "邻里互助。", "诚信经营" * 3, "友善"]
    padded = Ensemble.from_registry(tiny_registry, device="cpu")
    packed = Ensemble.from_registry(tiny_registry, device="cpu", forward=forward, token_budget=512)
    assert (padded.forward, padded.token_budget) == ("padded", 16384)
    expected, got = padded.score(texts), packed.score(texts)
    assert got.windows.tolist() == expected.windows.tolist() and got.windows[1] > 1
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5)


def test_engine_scores_in_chunks_as_in_one_go(tiny_registry):
    torch.set_num_threads(1)
    texts = [f"第{i}条：依法治国，诚信经营。" * (1 + i % 7) for i in range(23)]
    engine = Ensemble.from_registry(tiny_registry, device="cpu")
    whole, chunked = engine.score(texts), engine.score(texts, chunk=5)
    np.testing.assert_allclose(chunked.probs, whole.probs, atol=1e-6)
    assert chunked.windows.tolist() == whole.windows.tolist() and len(chunked.labels) == len(texts)
    with pytest.raises(ValueError, match="text 21: empty"):
        engine.score([*texts[:21], " "], chunk=5)


def test_auto_falls_back_to_padded_where_packing_does_not_suit(tiny_registry, monkeypatch, caplog):
    import valuecsv_ray.scoring.engine as engine_module

    monkeypatch.setitem(engine_module.CPU_DEFAULTS, "forward", "slim")
    assert Ensemble.from_registry(tiny_registry, device="cpu").forward == "slim"
    monkeypatch.setattr(engine_module, "supports_packing", lambda model: "no pooler here")
    with caplog.at_level("WARNING"):
        engine = Ensemble.from_registry(tiny_registry, device="cpu")
    assert engine.forward == "padded" and "no pooler here" in caplog.text
    with pytest.raises(ValueError, match="forward 'slim': no pooler here; use forward 'padded'"):
        Ensemble.from_registry(tiny_registry, device="cpu", forward="slim")  # asked for: an error


def test_engine_refuses_an_unknown_forward(tiny_registry):
    with pytest.raises(ValueError, match="forward must be one of"):
        Ensemble.from_registry(tiny_registry, device="cpu", forward="flash")


def test_engine_slim_options_score_as_padded_does(tiny_registry):
    texts = ["依法治国，公正司法。", "经济发展，国家富强。" * 90, "邻里互助。", "诚信经营" * 3]
    padded = Ensemble.from_registry(tiny_registry, device="cpu", forward="padded").score(texts).probs
    fused = Ensemble.from_registry(tiny_registry, device="cpu", forward="slim", gelu="fused")
    assert fused.gelu == "fused" and fused.dtype == torch.float32
    np.testing.assert_allclose(fused.score(texts).probs, padded, atol=1e-5)
    fp8 = Ensemble.from_registry(tiny_registry, device="cpu", forward="slim", precision="fp8")
    assert any(isinstance(m, Fp8Linear) for head in fp8.groups[0]["heads"] for m in head.run.modules())
    dp = np.abs(fp8.score(texts).probs - padded).max()
    assert 0 < dp < 0.15  # e4m3 on 64-wide random models: 0.097 seen (the GPU suite measures BERT-base)


def test_engine_refuses_slim_options_on_another_forward(tiny_registry):
    with pytest.raises(ValueError, match="precision 'fp8': options of forward 'slim', not of forward 'pad"):
        Ensemble.from_registry(tiny_registry, device="cpu", precision="fp8")  # 'auto' is padded on CPU
    with pytest.raises(ValueError, match="gelu must be one of"):
        Ensemble.from_registry(tiny_registry, device="cpu", gelu="erf")


def test_auto_attention_that_fails_its_load_check_falls_back_to_flash(tiny_registry, monkeypatch, caplog):
    import valuecsv_ray.scoring.engine as engine_module
    import valuecsv_ray.scoring.varlen as varlen_module

    real = varlen_module.segment_attention

    def cudnn_leaks(q, k, v, cu_q, cu_k, max_q, max_k, kernel="flash"):  # a kernel that ignores boundaries
        return whole_stream_attention(q, k, v, cu_q, cu_k, max_q, max_k) if kernel == "cudnn" else real(
            q, k, v, cu_q, cu_k, max_q, max_k, kernel)

    monkeypatch.setattr(varlen_module, "segment_attention", cudnn_leaks)
    monkeypatch.setitem(engine_module.CPU_DEFAULTS, "attention", "cudnn")
    with caplog.at_level("WARNING"):
        engine = Ensemble.from_registry(tiny_registry, device="cpu", forward="slim")
    assert engine.attention == "flash" and "attention 'cudnn' failed its load check" in caplog.text
    with pytest.raises(RuntimeError, match="disagrees with padded scoring"):  # asked for by name: an error
        Ensemble.from_registry(tiny_registry, device="cpu", forward="slim", attention="cudnn")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (FlashAttention-2 / cuDNN)")
@pytest.mark.parametrize("kernel", ["flash", "cudnn"])
def test_packed_attention_kernels_match_the_reference_on_cuda(kernel):
    g = torch.Generator(device="cuda").manual_seed(0)
    cu = pack(windows((2, 511, 64, 300, 7))).cu_seqlens.cuda()
    q, k, v = (torch.randn(int(cu[-1]), 12, 64, device="cuda", dtype=torch.bfloat16, generator=g)
               for _ in range(3))
    got = segment_attention(q, k, v, cu, cu, 511, 511, kernel=kernel)
    torch.testing.assert_close(got.float(), reference_segment_attention(q, k, v, cu, cu).float(),
                               atol=2e-2, rtol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("forward", ["varlen", "slim"])
def test_engine_packed_forward_on_cuda_is_close_to_padded(tiny_registry, forward):
    texts = ["依法治国，公正司法。", "经济发展，国家富强。" * 90, "邻里互助。", "诚信经营" * 3]
    padded = Ensemble.from_registry(tiny_registry, device="cuda", forward="padded")
    packed = Ensemble.from_registry(tiny_registry, device="cuda", forward=forward)
    assert packed.dtype == torch.bfloat16
    np.testing.assert_allclose(packed.score(texts).probs, padded.score(texts).probs, atol=2e-2)


def test_padding_fraction_counts_the_pad_slots_of_each_batch():
    assert padding_fraction([2, 4, 4, 3], [[0, 1], [2, 3]]) == pytest.approx(3 / 16)
    assert padding_fraction([5, 5], [[0, 1]]) == 0.0
    assert padding_fraction([], []) == 0.0


def test_padding_fraction_matches_the_padded_batches_the_engine_builds():
    lengths = np.random.default_rng(0).integers(3, 512, size=300).tolist()
    batches = budget_batches(lengths, 16384)
    masks = [pad_batch([[7] * lengths[i] for i in b], 0)["attention_mask"] for b in batches]
    pads = sum(int((m == 0).sum()) for m in masks) / sum(m.numel() for m in masks)
    assert len(batches) > 5 and pads > 0
    assert padding_fraction(lengths, batches) == pytest.approx(pads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("options", [{"attention": "cudnn"}, {"gelu": "fused"}, {"precision": "fp8"}],
                         ids=["cudnn", "fused-gelu", "fp8"])
def test_engine_slim_options_on_cuda_are_close_to_padded(tiny_registry, options):
    if options.get("precision") == "fp8" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 GEMMs need sm89 or newer")
    texts = ["依法治国，公正司法。", "经济发展，国家富强。" * 90, "邻里互助。", "诚信经营" * 3]
    padded = Ensemble.from_registry(tiny_registry, device="cuda", forward="padded")
    slim = Ensemble.from_registry(tiny_registry, device="cuda", forward="slim", **options)
    assert all(getattr(slim, k) == v for k, v in options.items())  # no silent fallback
    np.testing.assert_allclose(slim.score(texts).probs, padded.score(texts).probs, atol=3e-2)
