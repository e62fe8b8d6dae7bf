"""Diagonal Gaussian distributions shared by the models and the relative entropy coder.

Both iREC models have diagonal Gaussian priors p(z) and posteriors q(z|x) (paper, Sections 2 and 4; method note,
Section 2: "Notation per dimension: prior N(mu_p, s_p^2) and posterior N(mu_q, s_q^2)"). This one small object,
in the manner of vdvae's ``Normal``, gives sampling, log-densities and the analytic KL(q||p) that sets the number of
coding steps K_b = ceil(KL_b / Omega). Everything is elementwise: sum over the dimensions you need.
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class InvalidDistributionError(ValueError):
    """A distribution was given parameters it cannot have (e.g. a non-positive scale)."""


class DiagGaussian:
    """N(loc, scale^2) independently in every element; ``loc`` and ``scale`` broadcast against each other.

    Build it from a log-scale with :meth:`from_log_scale` when a network predicts log sigma (more accurate than
    ``exp`` followed by ``log``).
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, *, validate: bool = True) -> None:
        loc = torch.as_tensor(loc)
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if validate and not bool(torch.all(scale > 0)):
            raise InvalidDistributionError(
                "DiagGaussian needs scale > 0 everywhere (got a zero, negative or NaN scale); "
                "predict a log-scale and use DiagGaussian.from_log_scale"
            )
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self._log_scale: torch.Tensor | None = None

    @classmethod
    def from_log_scale(cls, loc: torch.Tensor, log_scale: torch.Tensor, *, validate: bool = True) -> DiagGaussian:
        """N(loc, exp(log_scale)^2); ``log_scale`` must be finite.

        ``validate=False`` skips the check (it synchronizes a GPU); the training loop catches non-finite losses.
        """
        if validate and not bool(torch.all(torch.isfinite(log_scale))):
            raise InvalidDistributionError("DiagGaussian.from_log_scale needs a finite log_scale everywhere")
        dist = cls(loc, torch.exp(log_scale), validate=False)
        dist._log_scale = torch.broadcast_to(log_scale, dist.loc.shape)
        return dist

    @property
    def log_scale(self) -> torch.Tensor:
        """log sigma, elementwise."""
        if self._log_scale is None:
            self._log_scale = torch.log(self.scale)
        return self._log_scale

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.square()

    @property
    def shape(self) -> torch.Size:
        return self.loc.shape

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterized sample loc + scale * eps, eps ~ N(0, I) drawn from ``generator`` (or torch's global RNG).

        Gradients flow to ``loc`` and ``scale`` (the reparameterization trick of the VAE).
        """
        eps = torch.randn(self.loc.shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; loc, scale^2), elementwise, in nats."""
        z = (x - self.loc) / self.scale
        return -0.5 * z.square() - self.log_scale - _HALF_LOG_TWO_PI

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        """The analytic KL(self || other), elementwise, in nats (self = q, other = p in the paper's notation)."""
        if not isinstance(other, DiagGaussian):
            raise TypeError(f"kl needs another DiagGaussian, got {type(other).__name__}")
        var_ratio = (self.scale / other.scale).square()
        mean_term = ((self.loc - other.loc) / other.scale).square()
        return 0.5 * (var_ratio + mean_term - 1.0) - (self.log_scale - other.log_scale)

    def entropy(self) -> torch.Tensor:
        """The differential entropy, elementwise, in nats."""
        return self.log_scale + 0.5 + _HALF_LOG_TWO_PI

    def __repr__(self) -> str:
        return f"DiagGaussian(shape={tuple(self.loc.shape)}, dtype={self.loc.dtype})"
