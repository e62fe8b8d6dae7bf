"""The discretized logistic likelihood p(x|z) over 256 pixel levels, with proper edge bins.

Kingma et al. (2016, IAF appendix) and the iREC lossless model (paper, Section 4.1; method note, Section 5) model
each subpixel k in {0..255} by a logistic with location mu and scale s in the scaled space x = (k + 0.5)/256 - 0.5,
integrated over the bin [x - 1/512, x + 1/512]. The original code loses the mass outside [0, 255] (method note,
Section 3, "Likelihood"). Here, as in PixelCNN++ (Salimans et al., 2017), the edge bins take the tails: bin 0 is
(-inf, -0.5 + 1/256] and bin 255 is [0.5 - 1/256, inf), so the 256 probabilities sum to exactly one.

:meth:`DiscretizedLogistic.log_prob` is for training (float32, stable in the tails);
:meth:`DiscretizedLogistic.probabilities` gives the float64 tables with which the pixels are entropy-coded
(e.g. ``constriction.stream.model.Categorical(perfect=False)`` with one row per subpixel).

:class:`ConditionedLogistic` adds PixelCNN++'s linear channel conditioning (Salimans et al., 2017, Section 2.2):
within a pixel, green's location moves with red's value and blue's with red's and green's. The codec codes the
channels of each band in order (red, green, blue), so the decoder knows what each location depends on;
:meth:`DiscretizedLogistic.channel` and :meth:`DiscretizedLogistic.given` give both classes one interface.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

N_BINS = 256
BIN_WIDTH = 1.0 / N_BINS  # bins tile [-0.5, 0.5] in the scaled space


class InvalidPixelsError(ValueError):
    """Pixels given to the likelihood are not uint8 images in {0..255}, or do not match its shape."""


def to_unit_interval(x_uint8: torch.Tensor) -> torch.Tensor:
    """The model's input scaling x = (k + 0.5)/256 - 0.5, from uint8 (or integer) pixels k, as float32."""
    return (x_uint8.to(torch.float32) + 0.5) * BIN_WIDTH - 0.5


class DiscretizedLogistic:
    """Independent discretized logistics, one per subpixel; ``loc`` and ``log_scale`` broadcast to the image shape."""

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor) -> None:
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)

    @property
    def shape(self) -> torch.Size:
        return self.loc.shape

    def _check(self, x_uint8: torch.Tensor) -> None:
        if x_uint8.dtype != torch.uint8:
            raise InvalidPixelsError(
                f"pixels must be a uint8 tensor, got {x_uint8.dtype}; convert with .to(torch.uint8)"
            )
        if x_uint8.shape != self.loc.shape:
            raise InvalidPixelsError(
                f"pixels of shape {tuple(x_uint8.shape)} do not match the likelihood's shape {tuple(self.loc.shape)}"
            )

    def log_prob(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """log P(x) per subpixel in nats (same shape as ``x_uint8``), differentiable in ``loc`` and ``log_scale``."""
        self._check(x_uint8)
        k = x_uint8.to(torch.long)
        centred = to_unit_interval(x_uint8) - self.loc
        inv_scale = torch.exp(-self.log_scale)
        plus = inv_scale * (centred + 0.5 * BIN_WIDTH)  # standardized upper edge of the bin
        minus = inv_scale * (centred - 0.5 * BIN_WIDTH)  # standardized lower edge
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): bin 0 takes the whole lower tail
        log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): bin 255 takes the whole upper tail
        # Interior bins: log(sigmoid(plus) - sigmoid(minus)) without cancellation, from the identity
        # sigmoid(a) - sigmoid(b) = sigmoid(a) * (1 - sigmoid(b)) * (1 - exp(b - a)).
        log_interior = log_cdf_plus + log_sf_minus + torch.log(-torch.expm1(minus - plus))
        return torch.where(k == 0, log_cdf_plus, torch.where(k == N_BINS - 1, log_sf_minus, log_interior))

    def cdf_table(self) -> np.ndarray:
        """The CDF at the 257 bin edges per subpixel, float64, shape ``(*shape, 257)``; starts at 0 and ends at 1.

        The inner edges are F(-0.5 + j/256) for j = 1..255; the outer ones are exactly 0 and 1 (the tails belong to
        the edge bins).
        """
        loc = self.loc.detach().to(torch.float64).unsqueeze(-1)
        inv_scale = torch.exp(-self.log_scale.detach().to(torch.float64)).unsqueeze(-1)
        edges = -0.5 + torch.arange(1, N_BINS, dtype=torch.float64, device=loc.device) * BIN_WIDTH
        inner = torch.sigmoid((edges - loc) * inv_scale)
        zeros = torch.zeros_like(inner[..., :1])
        return torch.cat([zeros, inner, zeros + 1.0], dim=-1).cpu().numpy()

    def probabilities(self) -> np.ndarray:
        """P(k) for k = 0..255 per subpixel, float64, shape ``(*shape, 256)``; each row sums to 1 (to rounding).

        Memory is 2 KiB per subpixel: for a large image, take slices (``d[..., rows, :].probabilities()``) and code
        them in turn.
        """
        return np.diff(self.cdf_table(), axis=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixels drawn from the distribution, as uint8 (a logistic draw by inverse CDF, binned with edge bins)."""
        u = torch.rand(self.loc.shape, generator=generator, dtype=torch.float64, device=self.loc.device)
        u = u.clamp(1e-12, 1.0 - 1e-12)
        x = self.loc.detach().to(torch.float64) + torch.exp(self.log_scale.detach().to(torch.float64)) * (
            torch.log(u) - torch.log1p(-u)
        )
        return torch.floor((x + 0.5) * N_BINS).clamp(0, N_BINS - 1).to(torch.uint8)

    def median(self) -> torch.Tensor:
        """The bin that holds ``loc`` (the median pixel value), clamped into 0..255, as uint8; for previews."""
        k = torch.floor((self.loc.detach() + 0.5) * N_BINS)
        return k.clamp(0, N_BINS - 1).to(torch.uint8)

    def given(self, x_uint8: torch.Tensor) -> DiscretizedLogistic:
        """The distribution of every subpixel once ``x_uint8`` is known (the encoder's view): here itself, since
        the subpixels are independent."""
        return self

    def channel(self, c: int, x_uint8: torch.Tensor) -> DiscretizedLogistic:
        """Channel ``c``'s distribution (dimension -3) given the channels before it in ``x_uint8`` (the decoder's
        view; here they do not matter)."""
        return self[..., c, :, :]

    def __getitem__(self, index) -> DiscretizedLogistic:
        return DiscretizedLogistic(self.loc[index], self.log_scale[index])

    def __repr__(self) -> str:
        return f"DiscretizedLogistic(shape={tuple(self.loc.shape)})"


class ConditionedLogistic:
    """Discretized logistics whose locations depend linearly on the earlier channels of the same pixel.

    With x_c = (k_c + 0.5)/256 - 0.5 the scaled subpixels and ``coeff`` = (a, b, c) per pixel (dimension -3):
    red ~ L(loc_r, s_r), green ~ L(loc_g + a x_r, s_g), blue ~ L(loc_b + b x_r + c x_g, s_b) (PixelCNN++'s
    channel conditioning with one mixture component). Zero coefficients give :class:`DiscretizedLogistic`.
    """

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, coeff: torch.Tensor) -> None:
        self.loc, self.log_scale, self.coeff = torch.broadcast_tensors(loc, log_scale, coeff)

    @property
    def shape(self) -> torch.Size:
        return self.loc.shape

    def _product(self, coeff: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One coefficient times one scaled channel (float here; on the fixed-point grid in the exact model)."""
        return coeff * x

    def _scaled(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """The pixels in the model's scaled space, in the dtype of the locations."""
        return to_unit_interval(x_uint8).to(self.loc.dtype)

    def _shift(self, c: int, x: torch.Tensor) -> torch.Tensor:
        """What channel ``c``'s location moves by, given the earlier channels of the scaled pixels ``x``."""
        if c == 0:
            return torch.zeros_like(self.loc[..., 0, :, :])
        if c == 1:
            return self._product(self.coeff[..., 0, :, :], x[..., 0, :, :])
        return self._product(self.coeff[..., 1, :, :], x[..., 0, :, :]) + self._product(
            self.coeff[..., 2, :, :], x[..., 1, :, :])

    def given(self, x_uint8: torch.Tensor) -> DiscretizedLogistic:
        """Every subpixel's distribution once ``x_uint8`` is known (training and the encoder)."""
        if x_uint8.shape != self.loc.shape:
            raise InvalidPixelsError(
                f"pixels of shape {tuple(x_uint8.shape)} do not match the likelihood's shape {tuple(self.loc.shape)}"
            )
        x = self._scaled(x_uint8)
        shift = torch.stack([self._shift(c, x) for c in range(3)], dim=-3)
        return self._make(self.loc + shift, self.log_scale)

    def channel(self, c: int, x_uint8: torch.Tensor) -> DiscretizedLogistic:
        """Channel ``c``'s distribution given channels 0..c-1 of ``x_uint8`` (the decoder, one channel at a time)."""
        return self._make(self.loc[..., c, :, :] + self._shift(c, self._scaled(x_uint8)), self.log_scale[..., c, :, :])

    def _make(self, loc: torch.Tensor, log_scale: torch.Tensor) -> DiscretizedLogistic:
        return DiscretizedLogistic(loc, log_scale)

    def log_prob(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """log P(x) per subpixel in nats, differentiable in ``loc``, ``log_scale`` and ``coeff``."""
        return self.given(x_uint8).log_prob(x_uint8)

    def _channel_by_channel(self, draw) -> torch.Tensor:
        x = torch.zeros(self.loc.shape, dtype=torch.uint8, device=self.loc.device)
        for c in range(3):
            x[..., c, :, :] = draw(self.channel(c, x))
        return x

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixels drawn channel by channel, as uint8."""
        return self._channel_by_channel(lambda d: d.sample(generator))

    def median(self) -> torch.Tensor:
        """Each channel's median given the medians of the channels before it, as uint8; for previews."""
        return self._channel_by_channel(lambda d: d.median())

    def __getitem__(self, index) -> ConditionedLogistic:
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.loc, out.log_scale, out.coeff = self.loc[index], self.log_scale[index], self.coeff[index]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.loc.shape)})"
