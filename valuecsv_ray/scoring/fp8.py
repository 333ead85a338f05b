"""FP8 GEMMs for inference (Hopper): linear layers quantised to float8 e4m3 with per-row scales.

    layer = Fp8Linear(model.bert.encoder.layer[0].intermediate.dense)   # weights quantised once
    y = layer(x)                       # x: (tokens, in) bf16 -> (tokens, out) bf16

Weights get one scale per output channel, activations one per row (token), computed at each
call; `torch._scaled_mm` applies both inside the GEMM (rowwise scaling: sm89/sm90 on CUDA, and a
CPU kernel that tests use). e4m3 keeps 3 mantissa bits, so a layer's output moves by about
1-2% of its magnitude: `SlimBert(fp8=True)` is guarded by the engine's load-time agreement
check against the bf16 padded forward (`FP8_TOLERANCE`), and is off unless asked for.
"""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
FP8_TOLERANCE = 0.3  # load check: max |logit diff| vs the padded forward, x (1 + max |logit|)


class Fp8Linear(nn.Module):
    """A linear layer as an fp8 (e4m3) GEMM; output in the input's dtype, the bias kept as it was."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach())
        self.register_buffer("weight", weight)  # (out, in) row-major: .t() is the column-major B
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, out) fp32
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, x_scale = quantize_rows(x)
        return torch._scaled_mm(xq, self.weight.t(), scale_a=x_scale, scale_b=self.weight_scale,
                                bias=self.bias, out_dtype=x.dtype)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / scale in fp8 e4m3, scale): one fp32 scale per row, the row's absolute max mapped to 448."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).to(FP8), scale


def dequantize(xq: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The fp32 values an fp8 tensor and its row scales stand for."""
    return xq.float() * scale
