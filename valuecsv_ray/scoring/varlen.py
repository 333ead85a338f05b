"""Unpadded ("varlen") scoring: a batch of windows packed into one token stream, no padding.

    packed = pack(windows, device)              # ids (1, T), positions, cu_seqlens
    logits = varlen_logits(model, packed)       # HF model, varlen attention function
    logits = SlimBert(model)(packed)            # the same weights, a leaner forward
    logits == model(**pad_batch(windows, ...)).logits   # within bf16 tolerance

Padded batches spend compute on pad tokens and on masked attention; packing spends it only on
real tokens. Two forwards run a packed batch over an HF `BertForSequenceClassification`'s
weights (the checkpoint format does not change):
- `varlen_logits`: the HF model itself, with attention registered as a transformers attention
  function (`VARLEN`); the [CLS] rows (`cu_seqlens[:-1]`) go through the pooler and classifier.
- `SlimBert`: a forward over the same weights (as MosaicBERT and TEI do): one fused QKV GEMM
  per layer, and the last layer computed for the [CLS] rows only (the only rows classified).
Attention runs through `torch.nn.attention.varlen.varlen_attn` (FlashAttention-2, in the torch
wheel since 2.10) on CUDA in bf16/fp16, and through a per-text SDPA loop elsewhere: the
reference that CPU tests check the packing against. Under `sdpa` or `eager` a packed batch
would silently attend across texts, so `check_packed` compares packed and padded logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from transformers import AttentionInterface

from valuecsv_ray.scoring.core import Head, collect_margins, pad_batch, token_batches
from valuecsv_ray.scoring.fp8 import Fp8Linear

VARLEN = "valuecsv_varlen"  # the registered attention name (no "flash": that name means FA2 to HF)
FLASH_DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Packed:
    """Windows of token ids as one stream: text i is rows cu_seqlens[i]:cu_seqlens[i + 1]."""

    input_ids: torch.Tensor  # (1, T) long
    position_ids: torch.Tensor  # (1, T) long, restarting at 0 for each text
    cu_seqlens: torch.Tensor  # (n + 1,) int32 cumulative lengths, 0 first
    max_length: int  # longest text, a Python int (the kernel wants one)

    @property
    def cls_rows(self) -> torch.Tensor:
        """Row of each text's first token ([CLS]) in the stream."""
        return self.cu_seqlens[:-1].long()

    @property
    def n_texts(self) -> int:
        return len(self.cu_seqlens) - 1

    def to(self, device: torch.device, non_blocking: bool = False) -> Packed:
        return Packed(*(t.to(device, non_blocking=non_blocking)
                        for t in (self.input_ids, self.position_ids, self.cu_seqlens)), self.max_length)

    def pin_memory(self) -> Packed:
        return Packed(self.input_ids.pin_memory(), self.position_ids.pin_memory(),
                      self.cu_seqlens.pin_memory(), self.max_length)


def pack(windows: Sequence[Sequence[int]]) -> Packed:
    """Concatenate token id lists into one stream with per-text positions (on the CPU)."""
    if not windows or any(len(w) == 0 for w in windows):
        raise ValueError("pack() needs at least one window, and no empty window")
    lengths = torch.tensor([len(w) for w in windows], dtype=torch.int32)
    cu = torch.zeros(len(windows) + 1, dtype=torch.int32)
    torch.cumsum(lengths, 0, out=cu[1:])
    ids = torch.tensor([t for w in windows for t in w], dtype=torch.long)
    starts = torch.repeat_interleave(cu[:-1].long(), lengths.long())
    positions = torch.arange(len(ids), dtype=torch.long) - starts
    return Packed(ids.unsqueeze(0), positions.unsqueeze(0), cu, int(lengths.max()))


def segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                      cu_k: torch.Tensor, max_q: int, max_k: int, kernel: str = "flash") -> torch.Tensor:
    """Non-causal attention of each text with itself, scale D^-0.5; (T, H, D) in and out.

    On CUDA in bf16/fp16 `kernel` picks FlashAttention-2 (`varlen_attn`, "flash") or cuDNN's
    SDPA over ragged batches ("cudnn"); elsewhere a per-text SDPA loop (the reference).
    """
    if q.is_cuda and q.dtype in FLASH_DTYPES:
        if kernel == "cudnn":
            return torch.ops.aten._cudnn_attention_forward(q, k, v, None, cu_q, cu_k, max_q, max_k,
                                                           False, 0.0, False, False)[0]
        from torch.nn.attention.varlen import varlen_attn

        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k)
    return reference_segment_attention(q, k, v, cu_q, cu_k)


def reference_segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                                cu_k: torch.Tensor) -> torch.Tensor:
    """The plain definition, one text at a time (any device and dtype)."""
    out = torch.empty_like(q)
    bounds_q, bounds_k = cu_q.tolist(), cu_k.tolist()
    for i in range(len(bounds_q) - 1):
        a, b, c, d = bounds_q[i], bounds_q[i + 1], bounds_k[i], bounds_k[i + 1]
        attended = F.scaled_dot_product_attention(q[a:b].transpose(0, 1), k[c:d].transpose(0, 1),
                                                  v[c:d].transpose(0, 1))
        out[a:b] = attended.transpose(0, 1)
    return out


def varlen_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, scaling: float | None = None,
                     dropout: float = 0.0, cu_seq_lens_q: torch.Tensor | None = None,
                     cu_seq_lens_k: torch.Tensor | None = None, max_length_q: int | None = None,
                     max_length_k: int | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """A transformers attention function over a packed batch: (1, H, T, D) in, (1, T, H, D) out."""
    if cu_seq_lens_q is None or query.shape[0] != 1:
        raise RuntimeError(f"attention {VARLEN!r} needs one packed row and cu_seq_lens_q/k: "
                           "call it through valuecsv_ray.scoring.varlen.varlen_logits")
    if scaling is not None and abs(scaling - query.shape[-1] ** -0.5) > 1e-6:
        raise ValueError(f"attention {VARLEN!r} supports the scale D^-0.5 only, got {scaling}")
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))
    out = segment_attention(q, k, v, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k)
    return out.unsqueeze(0), None


AttentionInterface.register(VARLEN, varlen_attention)


def supports_packing(model: nn.Module) -> str | None:
    """Why `model` cannot run packed, or None when it can."""
    config = model.config
    if config.model_type != "bert" or not hasattr(model, "bert") or not hasattr(model, "classifier"):
        return f"packed scoring supports BERT sequence classifiers, not {type(model).__name__}"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"packed scoring needs absolute positions, not {config.position_embedding_type!r}"
    if model.bert.pooler is None:
        return "packed scoring needs the model's pooler (add_pooling_layer=True)"
    return None


def use_varlen_attention(model: nn.Module) -> nn.Module:
    """Switch an HF BERT to the varlen attention function (in place)."""
    model.set_attn_implementation(VARLEN)
    if model.config._attn_implementation != VARLEN:
        raise RuntimeError(f"{type(model).__name__} did not take attention {VARLEN!r}")
    return model


def varlen_logits(model: nn.Module, packed: Packed) -> torch.Tensor:
    """(n_texts, labels) logits of an HF BERT classifier (attention `VARLEN`) on a packed batch."""
    if model.config._attn_implementation != VARLEN:
        raise RuntimeError(f"the model runs attention {model.config._attn_implementation!r}: a packed "
                           f"batch would attend across texts; call use_varlen_attention(model) first")
    cu = packed.cu_seqlens
    hidden = model.bert(input_ids=packed.input_ids, position_ids=packed.position_ids,
                        token_type_ids=torch.zeros_like(packed.input_ids), cu_seq_lens_q=cu,
                        cu_seq_lens_k=cu, max_length_q=packed.max_length,
                        max_length_k=packed.max_length).last_hidden_state
    pooled = model.bert.pooler(hidden[0, packed.cls_rows].unsqueeze(1))
    return model.classifier(model.dropout(pooled))


class SlimBert(nn.Module):
    """An inference forward over an HF BertForSequenceClassification's weights, on packed batches.

    Shares the model's parameters (only the fused QKV weights, and fp8 copies, are new tensors):
    embeddings, one QKV GEMM per layer, varlen attention, the last layer on the [CLS] rows only.
    - `attention`: the packed attention kernel ("flash", "cudnn"; see `segment_attention`), or a
      function with `segment_attention`'s signature (tests pass one that ignores text boundaries).
    - `fuse_gelu`: the intermediate GEMM applies GELU in its epilogue (`torch._addmm_activation`:
      cuBLASLt's GELU_BIAS on CUDA, which is the tanh approximation; exact GELU on the CPU),
      instead of writing the GEMM's output and reading it back for a separate GELU kernel.
    - `fp8`: the encoder's linear layers run as fp8 GEMMs (`Fp8Linear`); the rest stays in the
      model's dtype.
    """

    def __init__(self, model: nn.Module, max_length: int | None = None, attention: str | Callable = "flash",
                 fuse_gelu: bool = False, fp8: bool = False):
        super().__init__()
        self.max_length = max_length  # a constant bound for the kernel (no recompiles under compile)
        if (why := supports_packing(model)) is not None:
            raise ValueError(why)
        if fuse_gelu and model.config.hidden_act != "gelu":
            raise ValueError(f"fuse_gelu needs hidden_act 'gelu', the model has {model.config.hidden_act!r}")
        bert, config = model.bert, model.config
        self.embeddings = bert.embeddings
        self.heads = config.num_attention_heads
        self.attention = attention if callable(attention) else partial(segment_attention, kernel=attention)
        self.fuse_gelu = fuse_gelu
        linear = Fp8Linear if fp8 else None
        self.layers = nn.ModuleList(SlimLayer(layer, linear) for layer in bert.encoder.layer)
        self.pooler, self.classifier = bert.pooler.dense, model.classifier

    def forward(self, packed: Packed) -> torch.Tensor:
        emb = self.embeddings
        ids, cu = packed.input_ids[0], packed.cu_seqlens
        x = emb.word_embeddings(ids) + emb.position_embeddings(packed.position_ids[0])
        x = emb.LayerNorm(x + emb.token_type_embeddings.weight[0])
        cls, longest = packed.cls_rows, self.max_length or packed.max_length
        one_each = torch.arange(packed.n_texts + 1, dtype=torch.int32, device=ids.device)
        for i, layer in enumerate(self.layers):
            q, k, v = layer.qkv(x).view(len(x), 3, self.heads, -1).unbind(1)
            if i == len(self.layers) - 1:  # only the [CLS] rows are classified
                q, x = q[cls], x[cls]
                attended = self.attention(q, k, v, one_each, cu, 1, longest)
            else:
                attended = self.attention(q, k, v, cu, cu, longest, longest)
            x = layer.norm1(layer.attn_out(attended.reshape(len(x), -1)) + x)
            x = layer.norm2(layer.down(layer.up_gelu(x, self.fuse_gelu)) + x)
        return self.classifier(torch.tanh(self.pooler(x)))


class SlimLayer(nn.Module):
    """One HF BertLayer's weights as SlimBert runs them (dropout is a no-op at inference); `linear`
    (e.g. Fp8Linear) wraps each of its four linear layers."""

    def __init__(self, layer: nn.Module, linear: Callable[[nn.Linear], nn.Module] | None = None):
        super().__init__()
        wrap = linear or (lambda m: m)
        self.qkv = wrap(_fused_qkv(layer.attention.self))
        self.attn_out, self.norm1 = wrap(layer.attention.output.dense), layer.attention.output.LayerNorm
        self.up, self.act = wrap(layer.intermediate.dense), layer.intermediate.intermediate_act_fn
        self.down, self.norm2 = wrap(layer.output.dense), layer.output.LayerNorm

    def up_gelu(self, x: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused and isinstance(self.up, nn.Linear):
            return torch._addmm_activation(self.up.bias, x, self.up.weight.t(), use_gelu=True)
        return self.act(self.up(x))  # fp8 GEMMs have no GELU epilogue: compile fuses it instead


def _fused_qkv(attention: nn.Module) -> nn.Linear:
    parts = (attention.query, attention.key, attention.value)
    fused = nn.Linear(parts[0].in_features, sum(p.out_features for p in parts),
                      device=parts[0].weight.device, dtype=parts[0].weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused.requires_grad_(False)


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of a padded run's token slots that are padding: 1 - real tokens / (rows x width)."""
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches if len(b))
    return 1.0 - sum(lengths) / slots if slots else 0.0


def run_packed_heads(heads: list[Head], window_ids: list[list[int]], token_budget: int,
                     device: torch.device) -> np.ndarray:
    """(n_windows, n_columns) margins, as `core.run_heads`, on packed batches of at most
    `token_budget` real tokens; every head runs its `run` forward on the same batches."""
    batches = token_batches([len(w) for w in window_ids], token_budget)
    return collect_margins(heads, batches, lambda b: pack([window_ids[i] for i in b]),
                           lambda head, packed: head.run(packed), device, len(window_ids))


@torch.inference_mode()
def checked_packed_forward(model: nn.Module, make_run: Callable[[nn.Module], Callable],
                           device: torch.device, max_length: int,
                           tolerance: float | None = None) -> Callable[[Packed], torch.Tensor]:
    """`make_run(model)` (a packed forward), after checking it against the model's padded forward on
    a probe batch of texts of different lengths: raises when they disagree, as they would if a
    packed batch attended across texts. `model` must still run padded attention when called.
    Allowed: max |logit diff| <= tolerance x (1 + max |logit|); tolerance 1e-4 for fp32 weights,
    0.05 for bf16, or as given (fp8: `fp8.FP8_TOLERANCE`)."""
    generator = torch.Generator().manual_seed(0)
    probe = [torch.randint(5, model.config.vocab_size, (n,), generator=generator).tolist()
             for n in sorted({2, min(9, max_length), min(40, max_length), max_length})]
    padded = model(**pad_batch(probe, 0, device)).logits.float()
    run = make_run(model)
    diff = float((run(pack(probe).to(device)).float() - padded).abs().max())
    exact = next(model.parameters()).dtype == torch.float32
    tolerance = (tolerance or (1e-4 if exact else 0.05)) * (1 + float(padded.abs().max()))
    if not diff <= tolerance:
        raise RuntimeError(f"packed scoring disagrees with padded scoring by {diff:.3g} (tolerance "
                           f"{tolerance:.3g}) on {device}: use forward 'padded' and report this")
    return run
