"""Synthetic Gaussian posterior/prior pairs shaped like the latents of the paper's models.

Used by the coder's tests and benchmark (:mod:`irec.bench.coder`), which need no trained model. A trained VAE's
posterior is near its prior in most dimensions and far from it in a few (posterior collapse of unused units), so:

- the prior has loc ~ N(0, 0.5^2) and scale exp(N(0, 0.3^2));
- an ``active_fraction`` of the dimensions has a narrow posterior, scale s_p * U(0.15, 0.6), whose
  mean is shifted by s_p * N(0, a^2);
- the other dimensions have s_q = s_p * U(0.97, 1) and a shift of s_p * N(0, 0.03^2);
- the shift ``a`` is found by bisection so that the total KL(q || p) hits ``kl_nats``.

Workloads of the benchmark (paper section 4): a CIFAR-10 RVAE latent of 24 levels of 32x16x16 carrying about
6,000 nats in all, and a Kodak lossy level-1 latent of 196x32x48 carrying about 110,000 nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianPair:
    """A diagonal Gaussian posterior q and prior p of the same shape."""

    q_loc: torch.Tensor
    q_scale: torch.Tensor
    p_loc: torch.Tensor
    p_scale: torch.Tensor

    def kl_nats(self) -> float:
        """Analytic KL(q || p) in nats, summed over all dimensions (float64)."""
        qm, qs, pm, ps = (x.double() for x in (self.q_loc, self.q_scale, self.p_loc, self.p_scale))
        return float((torch.log(ps / qs) + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5).sum())


def synthetic_pair(shape: tuple[int, ...], kl_nats: float, active_fraction: float = 0.1, seed: int = 0) -> GaussianPair:
    """A posterior/prior pair of ``shape`` whose KL is ``kl_nats`` (to 0.1%), as described in the module."""
    g = torch.Generator().manual_seed(seed)
    p_loc = 0.5 * torch.randn(shape, generator=g)
    p_scale = torch.exp(0.3 * torch.randn(shape, generator=g))
    active = torch.rand(shape, generator=g) < active_fraction
    ratio = torch.where(active, 0.15 + 0.45 * torch.rand(shape, generator=g), 0.97 + 0.03 * torch.rand(shape, generator=g))
    direction = torch.randn(shape, generator=g)
    quiet = 0.03 * torch.randn(shape, generator=g)

    def pair(a: float) -> GaussianPair:
        shift = torch.where(active, a * direction, quiet)
        return GaussianPair(p_loc + p_scale * shift, p_scale * ratio, p_loc, p_scale)

    low, high = 0.0, 1.0
    if pair(low).kl_nats() > kl_nats:
        raise ValueError(f"kl_nats={kl_nats} is below the minimum {pair(low).kl_nats():.1f} for this shape and fraction")
    if not active.any():
        raise ValueError(f"no dimension of {shape} came out active at active_fraction={active_fraction}; raise it")
    while pair(high).kl_nats() < kl_nats:
        high *= 2
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if pair(mid).kl_nats() < kl_nats else (low, mid)
    return pair(0.5 * (low + high))


def cifar_rvae_workload(seed: int = 0, kl_nats: float = 6000.0) -> list[GaussianPair]:
    """24 levels of 32x16x16 carrying ``kl_nats`` in all (the lossless RVAE on a CIFAR-10 image)."""
    return [synthetic_pair((32, 16, 16), kl_nats / 24, 0.03, seed * 100 + level) for level in range(24)]


def kodak_lossy_workload(seed: int = 0, kl_nats: float = 110_000.0) -> GaussianPair:
    """One 196x32x48 level carrying ``kl_nats`` (the level-1 latent of the lossy VAE on a Kodak image)."""
    return synthetic_pair((196, 32, 48), kl_nats, 0.15, seed)
