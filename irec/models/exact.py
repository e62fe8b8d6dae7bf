"""Exact arithmetic for the decoder's networks: integer weights, fixed-point activations, tabulated functions.

Everything a decoder computes to set a coding distribution or to rebuild an image must come out as the same bits on
every machine (paper, Section 3: encoder and decoder share p exactly; measured facts in docs/exact-arithmetic.md). Float32
convolutions do not: the order of their sums depends on the CPU's vector width, the kernel library and the thread
split. Following Ballé, Johnston & Minnen ("Integer networks for data compression with latent-variable models",
ICLR 2019), the decoder's layers here compute on integers whose every operation is exact or correctly rounded:

- **Activations** are fixed-point: a float64 tensor holding integers X, the value X * 2^-FRAC_BITS, clamped to
  |X| <= ACT_LIMIT (|value| <= 1024) after every layer.
- **Weights** are integers W with one float64 scale s_c per output channel (the value W * s_c), at most
  ``weight_limit(fan_in)`` in magnitude. A convolution sums the products W * X in float64: each product and each
  partial sum is an integer below fan_in * max|W| * ACT_LIMIT < 2^53, so it is exact whatever the order of the
  additions, the blocking, the vector width, the thread split or fused multiply-adds (direct, im2col + GEMM and
  col2im all qualify; Winograd and FFT convolutions leave the integers, so oneDNN and cuDNN are switched off around
  the exact path, see :func:`exact_kernels`, and the native im2col + GEMM runs). :class:`QConv` checks the bound
  when weights are loaded.
- **Requantization** is ``round(acc * m_c) + B_c``: one correctly rounded IEEE multiply, round-half-even and an
  integer add. IEEE 754 makes +, -, *, / and sqrt correctly rounded, so a sequence of them, each a separate torch
  operation (eager mode never fuses them), gives the same float64 on every machine.
- **Non-linearities** that need exp or log (ELU, softplus, exp for scales and the logistic CDF) use tables stored
  in the model file, read at an integer index and interpolated linearly in int64 arithmetic, so no math library is
  ever asked for a transcendental function at decode time. ``exp`` splits x * log2(e) into an integer exponent and
  a fraction; the fraction's power of two comes from a table and the exponent is put into the float's bits.
  GDN's square root is IEEE sqrt over an exact sum.

Limits the code checks or enforces: activations are clamped to +-ACT_LIMIT; each layer's largest integer weight
satisfies fan_in * max|W| * ACT_LIMIT < 2^53; exp's exponent is clamped to +-EXP_LIMIT; tables cover their domain
and saturate outside it (ELU below -16 is -1, softplus above 20 is the identity, below -20 is 0).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FRAC_BITS = 16  # activations are X * 2^-16
ONE = float(1 << FRAC_BITS)
ACT_LIMIT = float(1 << 26)  # |X| <= 2^26, |value| <= 1024
EXACT_SUM_LIMIT = float(1 << 53)  # float64 holds every integer below this exactly
TABLE_BITS = 30  # table entries are integers in units of 2^-30
INTERP_BITS = 8  # ELU and softplus tables: one entry per 2^-8, the low 8 bits of X interpolate
EXP_FRAC_BITS = 10  # the 2^f table has 2^10 + 1 entries over [0, 1]
EXP_Y_BITS = 24  # x * log2(e) is computed to 2^-24
EXP_LIMIT = 900  # 2^k for |k| <= 900: far inside float64's normal range
LOG2E_BITS = 30
LOG2E = round(math.log2(math.e) * (1 << LOG2E_BITS))  # log2(e) in units of 2^-30, an integer constant
ELU_RANGE = 16  # the ELU table spans [-16, 0]
SOFTPLUS_RANGE = 20  # the softplus table spans [-20, 20]


@contextlib.contextmanager
def exact_kernels():
    """oneDNN and cuDNN off (their Winograd / FFT algorithms leave the integers), and so TF32 too, on a GPU."""
    mkldnn, cudnn = torch._C._get_mkldnn_enabled(), torch._C._get_cudnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_cudnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)
        torch._C._set_cudnn_enabled(cudnn)


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """A float tensor as fixed-point activations: round(x * 2^16) (a power-of-two scaling, then one rounding)."""
    return torch.round(x.to(torch.float64) * ONE).clamp_(-ACT_LIMIT, ACT_LIMIT)


def from_fixed(x: torch.Tensor) -> torch.Tensor:
    """The float64 values of fixed-point activations (exact: X * 2^-16)."""
    return x * (1.0 / ONE)


def weight_limit(fan_in: int, bits: int) -> int:
    """The largest integer weight of a ``bits``-bit layer whose sums stay exact: fan_in * W * ACT_LIMIT < 2^53."""
    return min((1 << (bits - 1)) - 1, int((EXACT_SUM_LIMIT - 1) // (fan_in * ACT_LIMIT)))


# ---------------------------------------------------------------------------------------------- tables
def _table(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.round(values * (1 << TABLE_BITS)).astype(np.int64))


def elu_table() -> torch.Tensor:
    """exp(-i / 2^8) - 1 for i = 0 .. 16 * 2^8 (ELU's negative branch), units 2^-30."""
    return _table(np.expm1(-np.arange(ELU_RANGE * (1 << INTERP_BITS) + 1) / (1 << INTERP_BITS)))


def softplus_table() -> torch.Tensor:
    """log(1 + exp(x)) at x = -20 + i / 2^8, i = 0 .. 40 * 2^8, units 2^-30."""
    x = -SOFTPLUS_RANGE + np.arange(2 * SOFTPLUS_RANGE * (1 << INTERP_BITS) + 1) / (1 << INTERP_BITS)
    return _table(np.logaddexp(0.0, x))


def exp2_table() -> torch.Tensor:
    """2^(i / 2^10) for i = 0 .. 2^10, units 2^-30."""
    return _table(np.exp2(np.arange((1 << EXP_FRAC_BITS) + 1) / (1 << EXP_FRAC_BITS)))


def _interpolate(table: torch.Tensor, u: torch.Tensor, shift: int) -> torch.Tensor:
    """table at u / 2^shift (u >= 0, int64), linear between entries, in units 2^-30 * 2^shift (int64, exact)."""
    i, f = u >> shift, u & ((1 << shift) - 1)
    below = torch.index_select(table, 0, i.reshape(-1)).view(i.shape)  # index_select: 10x faster than table[i]
    above = torch.index_select(table, 0, (i + 1).clamp_(max=len(table) - 1).reshape(-1)).view(i.shape)
    return below * ((1 << shift) - f) + above * f


def _shift_round(v: torch.Tensor, shift: int) -> torch.Tensor:
    """round(v / 2^shift) for int64 v, halves up (floor of v + 2^(shift-1))."""
    return (v + (1 << (shift - 1))) >> shift


def elu(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """ELU of fixed-point activations: x for x >= 0, the tabulated exp(x) - 1 below (-1 under -16)."""
    u = (-x).clamp(0, ELU_RANGE * ONE).to(torch.int64)
    shift = FRAC_BITS - INTERP_BITS
    negative = _shift_round(_interpolate(table, u, shift), TABLE_BITS + shift - FRAC_BITS).to(torch.float64)
    return torch.where(x >= 0, x, negative)


def softplus(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """softplus of fixed-point activations as float64 values: tabulated on [-20, 20], x above, 0 below."""
    u = (x + SOFTPLUS_RANGE * ONE).clamp(0, 2 * SOFTPLUS_RANGE * ONE).to(torch.int64)
    shift = FRAC_BITS - INTERP_BITS
    inside = _interpolate(table, u, shift).to(torch.float64) * 2.0 ** -(TABLE_BITS + shift)
    return torch.where(x > SOFTPLUS_RANGE * ONE, from_fixed(x), inside)


def power_of_two(k: torch.Tensor) -> torch.Tensor:
    """2^k as float64 for int64 |k| <= 1022, written into the exponent bits (no pow from a math library)."""
    return ((k + 1023) << 52).view(torch.float64)


def exp(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """e^x of fixed-point activations as float64: x * log2(e) = k + f, 2^f from the table, 2^k into the bits.

    x * log2(e) is kept to 2^-24 (|X * LOG2E| < 2^57 fits int64); the result is within 1e-7 of e^x, relatively.
    """
    y = _shift_round(x.to(torch.int64) * LOG2E, LOG2E_BITS + FRAC_BITS - EXP_Y_BITS)  # units 2^-24
    k = (y >> EXP_Y_BITS).clamp_(-EXP_LIMIT, EXP_LIMIT)
    f = y & ((1 << EXP_Y_BITS) - 1)
    shift = EXP_Y_BITS - EXP_FRAC_BITS
    mantissa = _interpolate(table, f, shift).to(torch.float64)  # 2^f in units 2^-(30 + shift), below 2^46
    return mantissa * power_of_two(k - (TABLE_BITS + shift))


class Tables(nn.Module):
    """The tabulated functions, stored with the model (buffers) so that no machine recomputes them."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("elu", elu_table())
        self.register_buffer("softplus", softplus_table())
        self.register_buffer("exp2", exp2_table())


# ---------------------------------------------------------------------------------------------- layers
def _integer_dtype(bits: int) -> torch.dtype:
    """The storage of ``bits``-bit integer weights."""
    return torch.int8 if bits <= 8 else torch.int16


class QConv(nn.Module):
    """A convolution (or stride-2 transposed one) with integer weights: exact on fixed-point activations, and
    the dequantized float weights for the encoder's and the training's float twin.

    Buffers: ``weight`` (int8 or int16), ``scale`` (float64 per output channel: the value of one weight unit),
    ``bias`` (float64 values, rounded to the 2^-16 grid).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, transposed: bool = False,
                 bits: int = 16) -> None:
        super().__init__()
        self.stride, self.padding, self.transposed, self.bits = stride, kernel // 2, transposed, bits
        self.output_padding = stride - kernel + 2 * (kernel // 2) if transposed else 0
        shape = (c_in, c_out, kernel, kernel) if transposed else (c_out, c_in, kernel, kernel)
        self.fan_in = c_in * kernel * kernel
        self.register_buffer("weight", torch.zeros(shape, dtype=_integer_dtype(bits)))
        self.register_buffer("scale", torch.ones(c_out, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(c_out, dtype=torch.float64))

    @property
    def out_dim(self) -> int:
        return 1 if self.transposed else 0

    @property
    def _per_channel(self) -> tuple[int, ...]:
        """The view that puts a per-output-channel vector against the weight's output dimension."""
        return (1, -1, 1, 1) if self.transposed else (-1, 1, 1, 1)

    def quantize_from(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Set the integers from float weights (in this layer's layout) and bias: per-channel symmetric scales."""
        limit = weight_limit(self.fan_in, self.bits)
        w = weight.detach().to(torch.float64).cpu()
        dims = [d for d in range(4) if d != self.out_dim]
        peak = w.abs().amax(dim=dims)
        scale = torch.where(peak > 0, peak / limit, torch.ones_like(peak))
        self.weight.copy_(torch.round(w / scale.view(self._per_channel)).to(self.weight.dtype))
        self.scale.copy_(scale)
        b = torch.zeros_like(scale) if bias is None else bias.detach().to(torch.float64).cpu()
        self.bias.copy_(torch.round(b * ONE) / ONE)

    def float_weight(self) -> torch.Tensor:
        return (self.weight.to(torch.float64) * self.scale.view(self._per_channel)).to(torch.float32)

    def check_bound(self) -> None:
        peak = int(self.weight.abs().max()) if self.weight.numel() else 0
        if self.fan_in * peak * ACT_LIMIT >= EXACT_SUM_LIMIT:
            raise ValueError(f"integer weights up to {peak} with fan-in {self.fan_in} leave float64's exact range")

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """Fixed-point in, fixed-point out: round(sum W * X * s_c * gain) + round(bias * gain), clamped."""
        w = self.weight.to(torch.float64)
        if self.transposed:
            acc = F.conv_transpose2d(x, w, None, self.stride, self.padding, self.output_padding)
        else:
            acc = F.conv2d(x, w, None, self.stride, self.padding)
        multiplier = (self.scale * gain).view(1, -1, 1, 1)
        bias = torch.round(self.bias * (ONE * gain)).view(1, -1, 1, 1)
        return acc.mul_(multiplier).round_().add_(bias).clamp_(-ACT_LIMIT, ACT_LIMIT)  # in place: the same ops


class QGDN(nn.Module):
    """Inverse GDN with integer gamma: y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2) on fixed-point x.

    x_j^2 is taken at 2^-16 resolution (X^2 / 2^16, exact below 2^53) and clamped so that sum_j G_ij S_j stays
    below 2^53; the scale, the beta add and the sqrt are single correctly rounded operations.
    """

    def __init__(self, channels: int, bits: int = 16) -> None:
        super().__init__()
        self.bits = bits
        self.register_buffer("gamma", torch.zeros(channels, channels, dtype=_integer_dtype(bits)))
        self.register_buffer("gamma_scale", torch.ones(channels, dtype=torch.float64))
        self.register_buffer("beta", torch.ones(channels, dtype=torch.float64))

    def quantize_from(self, gamma: torch.Tensor, beta: torch.Tensor) -> None:
        g = gamma.detach().to(torch.float64).cpu()
        peak = g.abs().amax(dim=1)
        scale = torch.where(peak > 0, peak / ((1 << (self.bits - 1)) - 1), torch.ones_like(peak))
        self.gamma.copy_(torch.round(g / scale[:, None]).to(self.gamma.dtype))
        self.gamma_scale.copy_(scale)
        self.beta.copy_(beta.detach().to(torch.float64).cpu())

    def float_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.gamma.to(torch.float64) * self.gamma_scale[:, None]).float(), self.beta.float()

    @property
    def square_limit(self) -> float:
        """The clamp of X^2 / 2^16 that keeps every channel's sum exact."""
        peak = max(1, int(self.gamma.abs().max()))
        return float((EXACT_SUM_LIMIT - 1) // (self.gamma.shape[0] * peak))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squares = (x * x).mul_(1.0 / ONE).round_().clamp_(max=self.square_limit)  # X^2 < 2^53: exact, then scaled
        norm = F.conv2d(squares, self.gamma.to(torch.float64)[:, :, None, None])
        norm.mul_((self.gamma_scale / ONE).view(1, -1, 1, 1)).add_(self.beta.view(1, -1, 1, 1)).sqrt_()
        return norm.mul_(x).round_().clamp_(-ACT_LIMIT, ACT_LIMIT)  # in place: the same correctly rounded ops
