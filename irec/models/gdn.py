"""Generalized divisive normalization (GDN) and its approximate inverse (IGDN).

Implements the nonlinearity of the lossy model's analysis and synthesis transforms (iREC paper, section 4 and
appendix: "Ballé et al. 2018 style" two-level VAE; method notes section 5):

    GDN:   y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2)
    IGDN:  y_i = x_i * sqrt(beta_i + sum_j gamma_ij * x_j^2)

Sources: J. Ballé, V. Laparra, E. P. Simoncelli, "Density Modeling of Images using a Generalized Normalization
Transformation", ICLR 2016 (definition, IGDN as one fixed-point step of the inverse); J. Ballé, "Efficient
Nonlinear Transforms for Lossy Image Compression", PCS 2018 (the reparametrization below: beta and gamma are
stored as the square root of (value + pedestal) and bounded from below, with a gradient that still lets a
parameter sitting at its bound move back up). Written here because compressai is not a dependency
(see docs/setup-notes.md); the defaults (beta_min 1e-6, gamma_init 0.1, reparam_offset 2^-18) are those of
tensorflow/compression and CompressAI.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient passes where x >= bound, or where it would push x up towards the bound."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, bound)
        return torch.maximum(x, bound)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, bound = ctx.saved_tensors
        # Gradient descent moves x by -grad: a negative gradient raises x, which is always allowed.
        pass_through = (x >= bound) | (grad_output < 0)
        return pass_through.to(grad_output.dtype) * grad_output, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)`` with the straight-through gradient of Ballé (2018)."""
    return _LowerBound.apply(x, torch.as_tensor(bound, dtype=x.dtype, device=x.device))


class NonNegativeParametrizer(nn.Module):
    """Maps an unconstrained stored tensor p to a value >= ``minimum``: value = max(p, bound)^2 - pedestal."""

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2.0**-18) -> None:
        super().__init__()
        if minimum < 0:
            raise ValueError(f"minimum must be >= 0, got {minimum}")
        self.minimum = float(minimum)
        self.pedestal = float(reparam_offset) ** 2  # keeps the gradient of sqrt finite near zero
        self.bound = (self.minimum + self.pedestal) ** 0.5  # stored values below this are clipped

    def init(self, value: torch.Tensor) -> torch.Tensor:
        """The stored tensor whose :meth:`forward` is ``value`` (values below ``minimum`` are raised to it)."""
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return lower_bound(stored, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """GDN over channels (``inverse=False``) or IGDN (``inverse=True``) for NCHW tensors.

    Parameters are per layer: ``beta`` (C,) >= ``beta_min`` > 0 and ``gamma`` (C, C) >= 0, initialised to
    beta = 1 and gamma = ``gamma_init`` * identity, so that a fresh layer is close to the identity for small inputs.
    """

    def __init__(
        self,
        channels: int,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
        reparam_offset: float = 2.0**-18,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"GDN needs at least one channel, got {channels}")
        if beta_min <= 0:
            raise ValueError(f"beta_min must be > 0 so the normalizer never divides by zero, got {beta_min}")
        self.channels = int(channels)
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=beta_min, reparam_offset=reparam_offset)
        self.gamma_reparam = NonNegativeParametrizer(minimum=0.0, reparam_offset=reparam_offset)
        self.beta_stored = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma_stored = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    @property
    def beta(self) -> torch.Tensor:
        """The effective beta (C,), always >= beta_min."""
        return self.beta_reparam(self.beta_stored)

    @property
    def gamma(self) -> torch.Tensor:
        """The effective gamma (C, C), always >= 0; row i holds the weights of channel i's normalizer."""
        return self.gamma_reparam(self.gamma_stored)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"GDN expects an NCHW tensor with {self.channels} channels, got shape {tuple(x.shape)}")
        # norm_i = sqrt(beta_i + sum_j gamma_ij x_j^2), as a 1x1 convolution of x^2.
        norm = torch.sqrt(F.conv2d(x * x, self.gamma[:, :, None, None], self.beta))
        return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inverse={self.inverse}"
