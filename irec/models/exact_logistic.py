"""The exact discretized logistic p(x | z) of the lossless model: its CDF table the same bits on every machine.

The lossless decoder codes each subpixel under the 256-bin discretized logistic of
:mod:`irec.models.logistic` (paper, Section 4.1; docs/irec-method.md, Section 5). Its probabilities must be the
encoder's to the last bit, so the CDF at each inner bin edge is computed from the fixed-point loc and log-scale of
:mod:`irec.models.exact` with integer operations and correctly rounded IEEE operations only:

    inv = exp(-log_scale)                         tabulated exp (irec.models.exact.exp)
    t   = round((edge - loc) * inv * 2^16)        one multiply, a power-of-two scaling, round-half-even, clamp
    F   = 1 / (1 + exp(-t))                       tabulated exp, one add, one divide

A CIFAR-10 image has 3,072 subpixels x 255 edges; written as a chain of torch operations this took twice the whole
float decoder's time, so one compiled numba kernel (:func:`_cdf_rows`) does it per subpixel. numba compiles without
fast-math, so LLVM keeps every operation separate and IEEE (no contraction into fused multiply-adds, no
reassociation); the integer steps are the ones of :func:`irec.models.exact.exp`, and a test checks that the kernel
and the torch operations agree bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from irec.models import exact
from irec.models.exact import Tables, to_fixed
from irec.models.logistic import BIN_WIDTH, N_BINS, ConditionedLogistic, DiscretizedLogistic

_Y_SHIFT = exact.LOG2E_BITS + exact.FRAC_BITS - exact.EXP_Y_BITS
_F_SHIFT = exact.EXP_Y_BITS - exact.EXP_FRAC_BITS
_POW2_LOW = -1022
# 2^k for k = -1022 .. 1023, written into the exponent bits (exact; no pow from a math library)
_POW2 = ((np.arange(_POW2_LOW, 1024, dtype=np.int64) + 1023) << 52).view(np.float64)


@numba.njit(inline="always", cache=True)
def _exp(x, table, pow2):
    """irec.models.exact.exp of one fixed-point value (float64 holding an integer), the same integer steps."""
    v = np.int64(x) * exact.LOG2E
    y = (v + (np.int64(1) << (_Y_SHIFT - 1))) >> _Y_SHIFT
    k = min(max(y >> exact.EXP_Y_BITS, -exact.EXP_LIMIT), exact.EXP_LIMIT)
    f = y & ((np.int64(1) << exact.EXP_Y_BITS) - 1)
    i = f >> _F_SHIFT
    g = f & ((np.int64(1) << _F_SHIFT) - 1)
    above = table[min(i + 1, len(table) - 1)]
    mantissa = np.float64(table[i] * ((np.int64(1) << _F_SHIFT) - g) + above * g)
    return mantissa * pow2[k - (exact.TABLE_BITS + _F_SHIFT) - _POW2_LOW]


@numba.njit(parallel=True, cache=True)
def _cdf_rows(loc, inv_scale, edges, table, pow2, out):
    """out[n, 1 + j] = 1 / (1 + exp(-t)), t = fixed((edges[j] - loc[n]) * inv_scale[n]); out[n, 0] = 0, out[n, -1] = 1."""
    for n in numba.prange(len(loc)):
        out[n, 0] = 0.0
        out[n, out.shape[1] - 1] = 1.0
        for j in range(len(edges)):
            t = np.rint(((edges[j] - loc[n]) * inv_scale[n]) * exact.ONE)
            t = min(max(t, -exact.ACT_LIMIT), exact.ACT_LIMIT)
            out[n, 1 + j] = 1.0 / (1.0 + _exp(-t, table, pow2))


def inner_edges() -> np.ndarray:
    """The 255 inner bin edges -0.5 + j/256, j = 1..255, in the model's scaled pixel space (exact dyadics)."""
    return -0.5 + np.arange(1, N_BINS, dtype=np.float64) * BIN_WIDTH


class ExactLogistic(DiscretizedLogistic):
    """The discretized logistic whose CDF table is computed exactly from fixed-point loc and log-scale.

    ``loc`` and ``log_scale`` hold float64 values on the 2^-16 grid (:func:`irec.models.exact.from_fixed`).
    """

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, tables: Tables) -> None:
        super().__init__(loc, log_scale)
        self.tables = tables

    def cdf_table(self) -> np.ndarray:
        """The CDF at the 257 bin edges per subpixel, float64, shape ``(*shape, 257)``: exactly 0, the 255 inner
        edges, exactly 1."""
        inv_scale = exact.exp(-to_fixed(self.log_scale), self.tables.exp2)
        loc = self.loc.detach().to(torch.float64).cpu().reshape(-1).contiguous().numpy()
        out = np.empty((loc.size, N_BINS + 1), dtype=np.float64)
        _cdf_rows(loc, inv_scale.cpu().reshape(-1).contiguous().numpy(), inner_edges(),
                  self.tables.exp2.cpu().numpy(), _POW2, out)
        return out.reshape(*self.loc.shape, N_BINS + 1)

    def cdf_table_torch(self) -> np.ndarray:
        """:meth:`cdf_table` as a chain of torch operations (any device): the reference the kernel is tested on."""
        table = self.tables.exp2
        inv_scale = exact.exp(-to_fixed(self.log_scale), table).unsqueeze(-1)
        edges = torch.from_numpy(inner_edges()).to(self.loc.device)
        t = to_fixed((edges - self.loc.to(torch.float64).unsqueeze(-1)) * inv_scale)
        inner = 1.0 / (1.0 + exact.exp(-t, table))
        zeros = torch.zeros_like(inner[..., :1])
        return torch.cat([zeros, inner, zeros + 1.0], dim=-1).cpu().numpy()

    def __getitem__(self, index) -> ExactLogistic:
        return ExactLogistic(self.loc[index], self.log_scale[index], self.tables)


class ExactConditionedLogistic(ConditionedLogistic):
    """:class:`irec.models.logistic.ConditionedLogistic` on the fixed-point grid: each coefficient's product with
    a scaled channel (a dyadic of 9 fractional bits) is exact in float64 and rounded half-even onto the 2^-16 grid,
    so every location is on the grid and :class:`ExactLogistic` takes it from there."""

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, coeff: torch.Tensor, tables: Tables) -> None:
        super().__init__(loc, log_scale, coeff)
        self.tables = tables

    def _product(self, coeff: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return exact.from_fixed(to_fixed(coeff * x))

    def _make(self, loc: torch.Tensor, log_scale: torch.Tensor) -> ExactLogistic:
        return ExactLogistic(loc, log_scale, self.tables)
