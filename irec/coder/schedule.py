"""Blocks, step counts and the auxiliary-variable variance schedule of iREC.

Paper, section 3.2 and appendix (auxiliary variables), and docs/irec-method.md section 2, steps 1-3:

- the flattened latent is permuted by a seeded permutation and cut into blocks of about ``block_size``
  dimensions (here of near-equal sizes, differing by at most one, so that all blocks batch together);
- block b takes ``K_b = ceil(KL_b / kl_per_step)`` steps (KL in nats, as in the paper);
- with adaptive blocks (``steps_per_block`` > 0, not in the paper) each level takes the largest block size, at
  most ``block_size``, whose blocks take about ``steps_per_block`` steps K_b on average, steps_per_block * Omega *
  n_dims / KL_level: the coder's overhead per block (the last step's rounding, the step count) is then a near-fixed
  share 1 / steps_per_block of the rate, and
  rates high enough to afford it get smaller blocks, which keep the coded sample nearer the posterior;
- the step with ``n`` auxiliary variables still to go, counting itself, takes the fraction
  ``r_n = n ** -0.7864636765648174`` of the remaining prior variance; the last step takes all that is left.

The schedule depends only on the integer K, so it is computed once per K in float64 by the standard library
on the CPU and shared by the encoder and the decoder as float32 *square roots* of the step fractions (``math.sqrt``
is correctly rounded). A candidate's standard deviation is then ``s_p * sqrt(c_t)``, one float32 product, exact
on every device; no tensor square root is taken, because torch's CPU sqrt is not correctly rounded.

A block whose KL is zero (q == p) takes no step at all: its sample is drawn from p with the shared randomness, an exact sample of q at
zero bits (``z = p_loc`` would not be a sample).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from irec.coder import randomness

# The power law fitted by the original authors to their learned per-step variance ratios.
SCHEDULE_EXPONENT = 0.7864636765648174
# KL_b at or below this many nats counts as zero (q equals p up to float rounding).
ZERO_KL_NATS = 1e-9

MAX_DIMS = 1 << 34  # sanity bound on a level's size read from a file


@functools.cache
def _fractions(n_steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(step fractions c_t, cumulative fractions C_t) of the prior variance for a block of ``n_steps`` steps."""
    remaining = 1.0
    step, cumulative = [], []
    for t in range(n_steps):
        n_left = n_steps - t
        take = remaining if n_left == 1 else remaining * n_left ** -SCHEDULE_EXPONENT
        remaining -= take
        step.append(take)
        cumulative.append(1.0 - remaining if n_left > 1 else 1.0)
    return tuple(step), tuple(cumulative)


def schedule_tables(n_steps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded per-block schedules: float32 sqrt(c[b, t]) of the step fractions and float64 cumulative fractions.

    Blocks with zero steps get the single step (c = 1, C = 1) that draws their prior sample.
    """
    width = max(1, int(n_steps.max(initial=0)))
    step = np.zeros((len(n_steps), width), dtype=np.float64)
    cumulative = np.ones((len(n_steps), width), dtype=np.float64)
    for b, k in enumerate(n_steps):
        c, cc = _fractions(max(1, int(k)))
        step[b, : len(c)] = [math.sqrt(x) for x in c]
        cumulative[b, : len(cc)] = cc
    return torch.from_numpy(step.astype(np.float32)), torch.from_numpy(cumulative)


def step_counts(kl_blocks: np.ndarray, kl_per_step: float) -> np.ndarray:
    """K_b = ceil(KL_b / kl_per_step), zero for blocks whose KL is zero."""
    kl = np.asarray(kl_blocks, dtype=np.float64)
    counts = np.ceil(kl / kl_per_step - 1e-12).astype(np.int64)
    return np.where(kl <= ZERO_KL_NATS, 0, np.maximum(counts, 1))


def adaptive_block_size(n_dims: int, kl_nats: float, kl_per_step: float, steps_per_block: float,
                        max_size: int) -> int:
    """Block size of a level whose blocks take about ``steps_per_block`` steps on average (encoder only: the file
    records the result), at most ``max_size``; ``max_size`` when ``steps_per_block`` is 0 (fixed blocks)."""
    if steps_per_block <= 0 or kl_nats <= 0:
        return max_size
    return int(min(max_size, max(1, math.floor(steps_per_block * kl_per_step * n_dims / kl_nats))))


@dataclass(frozen=True)
class BlockLayout:
    """How one level's flattened, permuted dimensions fall into near-equal blocks."""

    n_dims: int  # number of latent dimensions of the level
    sizes: np.ndarray  # int64 [n_blocks], dimensions per block (differ by at most one)
    index: torch.Tensor  # int64 [n_blocks, width]: position in the flat latent, n_dims for padding

    @property
    def n_blocks(self) -> int:
        return len(self.sizes)

    @property
    def width(self) -> int:
        return int(self.index.shape[1])

    def gather(self, flat: torch.Tensor, pad: float) -> torch.Tensor:
        """[n_blocks, width] view of a flat latent, padded with ``pad``."""
        padded = torch.cat([flat, flat.new_full((1,), pad)])
        return padded[self.index]

    def scatter(self, blocks: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`gather`: the flat latent from its [n_blocks, width] block layout."""
        flat = blocks.new_empty(self.n_dims + 1)
        flat[self.index.reshape(-1)] = blocks.reshape(-1)
        return flat[: self.n_dims]


def block_layout(n_dims: int, block_size: int, perm: np.ndarray) -> BlockLayout:
    """Cut ``perm`` (a permutation of range(n_dims)) into ceil(n_dims / block_size) near-equal blocks."""
    n_blocks = max(1, math.ceil(n_dims / block_size))
    base, extra = divmod(n_dims, n_blocks)
    sizes = np.full(n_blocks, base, dtype=np.int64)
    sizes[:extra] += 1
    width = int(sizes.max())
    index = np.full((n_blocks, width), n_dims, dtype=np.int64)
    start = 0
    for b, size in enumerate(sizes):
        index[b, :size] = perm[start : start + size]
        start += size
    return BlockLayout(n_dims=n_dims, sizes=sizes, index=torch.from_numpy(index))


def level_layout(seed: int, level: int, n_dims: int, block_size: int) -> BlockLayout:
    """The block layout of one level: its seeded permutation cut into near-equal blocks (encoder and decoder)."""
    return block_layout(n_dims, block_size, randomness.permutation(seed, level, n_dims))


def validate_gaussians(q_loc, q_scale, p_loc, p_scale) -> None:
    """Raise ValueError unless q and p are finite float tensors of one non-empty shape with positive scales."""
    tensors = {"q_loc": q_loc, "q_scale": q_scale, "p_loc": p_loc, "p_scale": p_scale}
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if x.shape != p_loc.shape:
            raise ValueError(f"shape mismatch: {name} has shape {tuple(x.shape)}, p_loc {tuple(p_loc.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
    for name in ("q_scale", "p_scale"):
        if not (tensors[name] > 0).all():
            raise ValueError(f"{name} must be strictly positive everywhere")
    if p_loc.numel() == 0:
        raise ValueError("cannot code an empty latent")
