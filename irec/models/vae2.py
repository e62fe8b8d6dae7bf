"""The lossy model: a two-level VAE in the style of Ballé et al. (2018) with Gaussian posteriors and no quantization.

iREC paper, Section 4 (lossy experiments); method notes (docs/irec-method.md) Section 5 (model, loss,
settings) and Section 2 step 7 (hierarchies). Layer details follow the original TensorFlow code
(``rec/models/lossy/large_2_level_vae.py`` and ``examples/lossy/train_lossy_model.py`` of
gergely-flamich/relative-entropy-coding): every scale is ``softplus(head) + 1e-7``; the hyper-analysis heads have
no bias; the hyper-synthesis heads are 3x3 stride 1; the loss divides the analytic KL (nats) by H*W*ln 2; the
MS-SSIM loss uses the original's uniform power factors (see ORIGINAL_MS_SSIM_WEIGHTS). Ours: convolutions pad with
zeros, not reflection (reflect padding fails on the 1-2 pixel grids of z2 for 64-128 px inputs), and the prior of z2
is computed once and broadcast (exactly equivalent, see ``__init__``).

Generative order (what the coder follows, one code path with the loss)::

    x in [0,1] --analysis--> enc = (loc, raw_scale) at H/16            (bottom-up, N channels)
    enc.loc --hyper-analysis--> q(z2 | x)                at H/64        (M channels)
    learned constant --> p(z2)                           (iid Gaussian per channel)
    z2 (the CODED sample) --hyper-synthesis--> p(z1 | z2) at H/16
    [enc, p(z1|z2)] --1x1 combiners--> q(z1 | x, z2)
    z1 (the coded sample) --synthesis--> x_hat (linear; clip to [0,1] only for evaluation)

Input convention: images are uint8 NCHW RGB tensors; the network sees ``x = uint8 / 255`` (float in [0, 1]).
Height and width must be multiples of 64 (:data:`DOWNSAMPLING`); the codec pads and crops back.
The KL is analytic (lower variance than a single-sample estimate for Gaussians); for z1 it is conditional on one
reparameterized sample of z2, as in the original. Model and loss settings: :class:`VAE2Config`; named presets
(``paper``, ``cpu``, ``smoke``): :data:`irec.settings.LOSSY_PRESETS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import nn

from irec.distributions import DiagGaussian
from irec.models.gdn import GDN

DOWNSAMPLING = 64  # total stride of z2 (H/64); image sides must be multiples of it
SCALE_FLOOR = 1e-7  # added after softplus to every scale, as in the original
MS_SSIM_WINDOW = 11  # the standard Gaussian window of MS-SSIM (Wang et al. 2003), shrunk for small crops
# The original's training loss calls tf.image.ssim_multiscale with power_factors=(1, 1, 1, 1, 1), not the standard
# weights of Wang et al. (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); the paper's MS-SSIM betas belong to that loss.
ORIGINAL_MS_SSIM_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)


class ImageShapeError(ValueError):
    """An input image has the wrong dtype, layout or size for the lossy model."""


class ConfigError(ValueError):
    """A lossy-model configuration or preset name is invalid."""


@dataclass(frozen=True)
class VAE2Config:
    """Model and loss settings of the two-level VAE (method notes, Section 5)."""

    n_channels: int = 196  # N: channels of the analysis/synthesis transforms and of z1 (paper: 196)
    m_channels: int = 128  # M: channels of the hyper transforms and of z2 (paper: 128)
    distortion: str = "mse"  # D in beta * D + bpp: "mse" (MSE * 255^2) or "ms_ssim" (255 * (1 - MS-SSIM))
    beta: float = 0.01  # rate-distortion weight (the paper's lambda); see irec.settings.MSE_BETAS / MS_SSIM_BETAS
    ms_ssim_weights: tuple[float, ...] = ORIGINAL_MS_SSIM_WEIGHTS  # MS-SSIM exponents per scale (5 scales)

    def __post_init__(self) -> None:
        if self.n_channels < 1 or self.m_channels < 1:
            raise ConfigError(f"channel counts must be positive, got N={self.n_channels}, M={self.m_channels}")
        if self.distortion not in ("mse", "ms_ssim"):
            raise ConfigError(f"distortion must be 'mse' or 'ms_ssim', got {self.distortion!r}")
        if not (self.beta > 0 and math.isfinite(self.beta)):
            raise ConfigError(f"beta must be a positive finite number, got {self.beta}")
        if len(self.ms_ssim_weights) != 5 or min(self.ms_ssim_weights) < 0:
            raise ConfigError(f"ms_ssim_weights needs 5 non-negative exponents, got {self.ms_ssim_weights}")


class Analysis(NamedTuple):
    """Bottom-up statistics of level 1 (the analysis transform's two heads), both (B, N, H/16, W/16)."""

    loc: torch.Tensor  # the analysis loc head; also the input of the hyper-analysis
    raw_scale: torch.Tensor  # the "log-scale" head before softplus (the original's name); feeds the z1 combiner


class RateDistortionTerms(NamedTuple):
    """The terms of the rate-distortion loss, as tensors with gradients."""

    loss: torch.Tensor  # beta * distortion + bpp
    bpp: torch.Tensor  # (KL(q1||p1) + KL(q2||p2)) / (H * W * ln 2), mean over the batch: the ideal rate
    bpp_z1: torch.Tensor  # the z1 part of bpp
    bpp_z2: torch.Tensor  # the z2 part of bpp
    distortion: torch.Tensor  # MSE * 255^2 or 255 * (1 - MS-SSIM), mean over the batch
    x_hat: torch.Tensor  # the linear (unclipped) reconstruction


def _conv(c_in: int, c_out: int, kernel: int, stride: int, bias: bool = True) -> nn.Conv2d:
    """A "same" convolution: stride 2 halves an even side exactly."""
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias)


def _deconv(c_in: int, c_out: int, kernel: int = 5) -> nn.ConvTranspose2d:
    """A stride-2 transposed convolution that doubles each side exactly."""
    return nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, output_padding=1)


def _scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + SCALE_FLOOR


def uint8_to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [0, 1], the model's input convention; checks dtype and layout."""
    if not isinstance(x_uint8, torch.Tensor) or x_uint8.dtype != torch.uint8:
        raise ImageShapeError(f"expected a uint8 torch tensor, got {getattr(x_uint8, 'dtype', type(x_uint8))}")
    if x_uint8.dim() != 4 or x_uint8.shape[1] != 3:
        raise ImageShapeError(f"expected a (B, 3, H, W) RGB batch, got shape {tuple(x_uint8.shape)}")
    return x_uint8.float() / 255.0


def latent_hw(image_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The spatial shapes ((h1, w1), (h2, w2)) of z1 (H/16) and z2 (H/64) for an image of size ``image_hw``."""
    h, w = (int(s) for s in image_hw)
    if h <= 0 or w <= 0 or h % DOWNSAMPLING or w % DOWNSAMPLING:
        raise ImageShapeError(
            f"image sides must be positive multiples of {DOWNSAMPLING}, got {h}x{w}; "
            "pad with irec.data.images.pad_to_multiple and crop back"
        )
    return (h // 16, w // 16), (h // DOWNSAMPLING, w // DOWNSAMPLING)


def check_z2_grid(shape_hw: tuple[int, int], batch_size: int) -> tuple[int, int]:
    """(H/64, W/64) of a z2 grid p(z2) can be laid on: positive sides and batch."""
    h2, w2 = (int(s) for s in shape_hw)
    if h2 <= 0 or w2 <= 0 or batch_size <= 0:
        raise ImageShapeError(f"prior_z2 needs a positive grid and batch, got {shape_hw} x {batch_size}")
    return h2, w2


def ms_ssim_distortion(x: torch.Tensor, x_hat: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """255 * (1 - MS-SSIM(x, x_hat)), mean over the batch, for images in [0, 1] (pytorch-msssim).

    pytorch-msssim requires ``min(H, W) > (win_size - 1) * 16`` (its four downsamplings are checked whatever
    the number of scales), i.e. > 160 px for the standard 11-tap window. For smaller crops we keep all scales and
    use the largest odd window that fits (7 taps at 128 px, 3 at 64 px; sigma stays 1.5). Crops of 32 px or
    less cannot be scored this way and raise :class:`ImageShapeError`.
    """
    side = min(x.shape[-2:])
    win = min(MS_SSIM_WINDOW, 2 * ((side - 1) // 32) + 1)  # largest odd win with (win - 1) * 16 < side
    if win < 3:
        raise ImageShapeError(f"MS-SSIM needs crops of at least 33 px per side, got {tuple(x.shape[-2:])}")
    score = ms_ssim(x_hat, x, data_range=1.0, size_average=True, win_size=win, weights=list(weights))
    return 255.0 * (1.0 - score)


class TwoLevelVAE(nn.Module):
    """The paper's two-level lossy VAE; see the module docstring for the data flow and input convention.

    The staged API (:meth:`analysis`, :meth:`posterior_z2`, :meth:`prior_z2`, :meth:`prior_z1`,
    :meth:`posterior_z1`, :meth:`synthesis`) is shared by :meth:`training_loss` and the codec, so the coder
    conditions level 1 on exactly the z2 it codes.
    """

    def __init__(self, config: VAE2Config) -> None:
        super().__init__()
        self.config = config
        n, m = config.n_channels, config.m_channels
        # Analysis g_a: 3 x [5x5/2 conv, GDN], then loc and raw-scale heads (5x5/2) -> H/16.
        self.analysis_body = nn.Sequential(
            _conv(3, n, 5, 2), GDN(n), _conv(n, n, 5, 2), GDN(n), _conv(n, n, 5, 2), GDN(n)
        )
        self.analysis_loc = _conv(n, n, 5, 2)
        self.analysis_scale = _conv(n, n, 5, 2)
        # Hyper-analysis h_a on the analysis loc: 3x3 conv + ReLU, 5x5/2 conv + ReLU, two 5x5/2 heads -> H/64.
        self.hyper_analysis_body = nn.Sequential(_conv(n, m, 3, 1), nn.ReLU(), _conv(m, m, 5, 2), nn.ReLU())
        self.hyper_analysis_loc = _conv(m, m, 5, 2, bias=False)
        self.hyper_analysis_scale = _conv(m, m, 5, 2, bias=False)
        # Prior of z2: learned constant -> conv + ELU -> loc and scale heads. The original applies 3x3 convs to the
        # constant tiled over the grid with reflect padding; on a constant that is exactly a 1x1 conv (summed
        # kernel), so we compute one position and broadcast it: an iid Gaussian per channel at any grid size.
        self.prior_z2_base = nn.Parameter(torch.zeros(1, m, 1, 1))
        self.prior_z2_body = nn.Sequential(_conv(m, m, 1, 1), nn.ELU())
        self.prior_z2_loc = _conv(m, m, 1, 1)
        self.prior_z2_scale = _conv(m, m, 1, 1)
        # Hyper-synthesis h_s: 2 x [5x5/2 transposed conv, ReLU], then 3x3 loc and raw-scale heads -> p(z1 | z2).
        self.hyper_synthesis_body = nn.Sequential(_deconv(m, m), nn.ReLU(), _deconv(m, m), nn.ReLU())
        self.hyper_synthesis_loc = _conv(m, n, 3, 1)
        self.hyper_synthesis_scale = _conv(m, n, 3, 1)
        # Posterior of z1: ELU, then a 1x1 conv, on [analysis loc, prior loc] and on [analysis raw scale, prior
        # log-scale].
        self.posterior_z1_loc = _conv(2 * n, n, 1, 1)
        self.posterior_z1_scale = _conv(2 * n, n, 1, 1)
        # Synthesis g_s: 3 x [5x5/2 transposed conv, IGDN], then a 5x5/2 transposed conv to RGB (linear output).
        self.synthesis_body = nn.Sequential(
            _deconv(n, n), GDN(n, inverse=True), _deconv(n, n), GDN(n, inverse=True),
            _deconv(n, n), GDN(n, inverse=True), _deconv(n, 3),
        )

    # ----- staged API (bottom-up, then generative order) -----

    def analysis(self, x: torch.Tensor) -> Analysis:
        """Bottom-up pass on ``x`` float (B, 3, H, W) in [0, 1] with H, W multiples of 64."""
        if not torch.is_floating_point(x) or x.dim() != 4 or x.shape[1] != 3:
            raise ImageShapeError(
                f"analysis expects a float (B, 3, H, W) batch in [0, 1] (uint8 / 255), got {x.dtype} {tuple(x.shape)}"
            )
        latent_hw(tuple(x.shape[-2:]))  # validates the size
        h = self.analysis_body(x)
        return Analysis(self.analysis_loc(h), self.analysis_scale(h))

    def posterior_z2(self, enc: Analysis) -> DiagGaussian:
        """q(z2 | x), (B, M, H/64, W/64)."""
        h = self.hyper_analysis_body(enc.loc)
        return DiagGaussian(self.hyper_analysis_loc(h), _scale(self.hyper_analysis_scale(h)))

    def prior_z2(self, shape_hw: tuple[int, int], batch_size: int = 1) -> DiagGaussian:
        """p(z2) on a z2 grid of ``shape_hw`` = (H/64, W/64) (see :func:`latent_hw`), broadcast over the batch."""
        h2, w2 = check_z2_grid(shape_hw, batch_size)
        h = self.prior_z2_body(self.prior_z2_base)
        shape = (batch_size, self.config.m_channels, h2, w2)
        return DiagGaussian(self.prior_z2_loc(h).expand(shape), _scale(self.prior_z2_scale(h)).expand(shape))

    def prior_z1(self, z2: torch.Tensor) -> DiagGaussian:
        """p(z1 | z2), (B, N, H/16, W/16); pass the CODED z2 when coding (method notes, Section 2 step 7)."""
        h = self.hyper_synthesis_body(z2)
        return DiagGaussian(self.hyper_synthesis_loc(h), _scale(self.hyper_synthesis_scale(h)))

    def posterior_z1(self, enc: Analysis, p1: DiagGaussian) -> DiagGaussian:
        """q(z1 | x, z2) from the bottom-up statistics and the prior p(z1 | z2).

        The original feeds the prior's pre-softplus head to the scale combiner; we feed log(scale) of ``p1``, the
        same information through a monotone map, so that only a DiagGaussian crosses the staged API.
        """
        loc = self.posterior_z1_loc(F.elu(torch.cat([enc.loc, p1.loc], dim=1)))
        raw = self.posterior_z1_scale(F.elu(torch.cat([enc.raw_scale, p1.log_scale], dim=1)))
        return DiagGaussian(loc, _scale(raw))

    def synthesis(self, z1: torch.Tensor) -> torch.Tensor:
        """x_hat (B, 3, H, W), linear; clip to [0, 1] (and round for uint8) only for evaluation."""
        return self.synthesis_body(z1)

    # ----- loss -----

    def distortion(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """The configured distortion D, mean over the batch: MSE * 255^2, or 255 * (1 - MS-SSIM)."""
        if self.config.distortion == "mse":
            return F.mse_loss(x_hat, x) * 255.0**2
        return ms_ssim_distortion(x, x_hat, self.config.ms_ssim_weights)

    def rate_distortion(self, x: torch.Tensor, generator: torch.Generator | None = None) -> RateDistortionTerms:
        """beta * D + KL in bits per pixel for ``x`` float in [0, 1], one reparameterized sample per level."""
        b, _, height, width = x.shape
        enc = self.analysis(x)
        q2 = self.posterior_z2(enc)
        p2 = self.prior_z2(q2.shape[-2:], batch_size=b)
        z2 = q2.sample(generator)
        p1 = self.prior_z1(z2)
        q1 = self.posterior_z1(enc, p1)
        z1 = q1.sample(generator)
        x_hat = self.synthesis(z1)
        to_bpp = 1.0 / (height * width * math.log(2.0))  # nats per image -> bits per pixel
        bpp_z1 = q1.kl(p1).sum(dim=(1, 2, 3)).mean() * to_bpp
        bpp_z2 = q2.kl(p2).sum(dim=(1, 2, 3)).mean() * to_bpp
        bpp = bpp_z1 + bpp_z2
        distortion = self.distortion(x, x_hat)
        loss = self.config.beta * distortion + bpp
        return RateDistortionTerms(loss, bpp, bpp_z1, bpp_z2, distortion, x_hat)

    def training_loss(
        self, x_uint8: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, metrics) for a uint8 (B, 3, H, W) batch; the interface of :func:`irec.training.loop.train`.

        Metrics (floats): loss, bpp, bpp_z1, bpp_z2, distortion, mse (0-255 scale, unclipped), psnr (dB, of the
        reconstruction clipped to [0, 1]).
        """
        x = uint8_to_float(x_uint8)
        terms = self.rate_distortion(x, generator)
        with torch.no_grad():
            mse_clipped = F.mse_loss(terms.x_hat.clamp(0.0, 1.0), x).item()
            metrics = {
                "loss": terms.loss.item(),
                "bpp": terms.bpp.item(),
                "bpp_z1": terms.bpp_z1.item(),
                "bpp_z2": terms.bpp_z2.item(),
                "distortion": terms.distortion.item(),
                "mse": F.mse_loss(terms.x_hat, x).item() * 255.0**2,
                "psnr": -10.0 * math.log10(max(mse_clipped, 1e-12)),
            }
        return terms.loss, metrics
