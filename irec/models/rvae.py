"""The lossless model: a bidirectional ResNet VAE (Kingma et al. 2016, without IAF), as used by iREC and HiLLoC.

Paper, Section 4.1 ("lossless compression", following Townsend et al.'s HiLLoC); method note, Section 5.

    x (uint8) -> (k + 0.5)/256 - 0.5 -> conv 5x5/2 -> h            all latents live at H/2 x W/2
    bottom-up:  h -> up[L-1] -> ... -> up[0]                       each gives q's inference loc / log-scale
    top-down:   h_top (learned) -> down[0] -> ... -> down[L-1]     each gives p(z_l | z_<l) and q's generative terms
                q(z_l | x, z_<l) = N(inference loc + generative loc, exp(inference log-scale + generative log-scale))
    output:     ELU -> transposed conv 5x5/2 -> discretized logistic p(x | z)   (with ``pixel_channels`` =
                "conditioned", a second transposed conv gives PixelCNN++'s channel coefficients)

Level 0 is the top level, coded first. The coder codes the levels top-down and conditions every level on the
*coded* samples above it (method note, Section 2.7), so the model exposes one incremental top-down API,
``bottom_up`` / ``top_down_init`` / ``level_distributions`` / ``top_down_step`` / ``pixel_params``, and
``training_loss`` and ``negative_elbo`` run through exactly these functions with z drawn from q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from irec.distributions import DiagGaussian
from irec.models.layers import conv2d_wn, conv_transpose2d_wn
from irec.models.logistic import ConditionedLogistic, DiscretizedLogistic, InvalidPixelsError, to_unit_interval

RESIDUAL_SCALE = 0.1  # residual branches are scaled by 0.1 (Kingma et al. 2016; method note, Section 5)


@dataclass(frozen=True)
class RVAEConfig:
    """Architecture and loss of the ResNet VAE; the defaults are the paper's, except the per-subpixel scale."""

    n_layers: int = 24  # L, stochastic layers (levels) z_0 (top) .. z_{L-1}, all at H/2 x W/2
    hidden: int = 160  # channels of the deterministic ResNet features h
    latent_channels: int = 32  # channels of each z_l
    free_bits: float = 0.1  # lambda: KL floor in nats per channel per layer (summed over positions, batch mean)
    kl_estimate: str = "sample"  # "sample": log q(z) - log p(z) at the drawn z (paper); "analytic": KL(q||p)
    # p(x|z)'s logistic scale: "global", one learned log-scale (the paper's; a defect per the method note,
    # Section 3), or "per_subpixel", predicted with the location (0.2-0.45 bpd better in our short pilots)
    pixel_scale: str = "per_subpixel"
    initial_pixel_log_scale: float = -2.0  # starting value of the learned global log-scale of p(x|z)
    # p(x|z)'s channels: "independent" (the paper's), or "conditioned": green's location moves linearly with red's
    # value and blue's with red's and green's (PixelCNN++'s channel conditioning; irec.models.logistic)
    pixel_channels: str = "independent"
    # weight of the (free-bits) KL in the training loss: 1 trains the ELBO (the paper's); above 1 trains for the coded
    # rate, since the coder pays about 1.2 bits per bit of the latents' KL and 1.0 per bit of -log p(x|z)
    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_layers", "hidden", "latent_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RVAEConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.free_bits < 0:
            raise ValueError(f"RVAEConfig.free_bits must be >= 0 nats, got {self.free_bits}")
        if self.kl_estimate not in ("sample", "analytic"):
            raise ValueError(f"RVAEConfig.kl_estimate must be 'sample' or 'analytic', got {self.kl_estimate!r}")
        if self.pixel_scale not in ("global", "per_subpixel"):
            raise ValueError(f"RVAEConfig.pixel_scale must be 'global' or 'per_subpixel', got {self.pixel_scale!r}")
        if not self.kl_weight > 0:
            raise ValueError(f"RVAEConfig.kl_weight must be > 0, got {self.kl_weight}")
        if self.pixel_channels not in ("independent", "conditioned"):
            raise ValueError(
                f"RVAEConfig.pixel_channels must be 'independent' or 'conditioned', got {self.pixel_channels!r}"
            )


@dataclass(frozen=True)
class InferenceTerms:
    """The bottom-up pass: q's inference loc and log-scale for every level (index 0 = top)."""

    loc: tuple[torch.Tensor, ...]  # per level, (N, latent_channels, H/2, W/2)
    log_scale: tuple[torch.Tensor, ...]  # per level, same shape


@dataclass
class TopDownState:
    """Where the top-down pass stands: the features h after levels 0..level-1 have been fixed."""

    h: torch.Tensor  # (N, hidden, H/2, W/2)
    level: int  # the next level to code; n_layers when all are done
    cache: dict = field(default_factory=dict, repr=False)  # this level's conv outputs, reused by top_down_step


@dataclass(frozen=True)
class ElboTerms:
    """The honest negative ELBO of a batch (no free bits): analytic KL per level and one sample's -log p(x|z)."""

    nll: torch.Tensor  # (N,) -log p(x | z), nats, z one posterior sample
    kl: torch.Tensor  # (N, n_layers) KL(q || p) per level, nats, analytic
    n_subpixels: int  # 3 * H * W, for bits per dimension

    @property
    def bpd(self) -> torch.Tensor:
        """-ELBO per image in bits per subpixel, shape (N,)."""
        return (self.nll + self.kl.sum(dim=1)) / (self.n_subpixels * math.log(2.0))


class _UpLayer(nn.Module):
    """One bottom-up residual block; its first conv also emits q's inference loc and log-scale.

    The top level's block has no residual branch: nothing consumes its output features.
    """

    def __init__(self, hidden: int, latent: int, top: bool) -> None:
        super().__init__()
        self.split = (latent, latent) if top else (latent, latent, hidden)
        self.conv1 = conv2d_wn(hidden, sum(self.split))
        self.conv2 = None if top else conv2d_wn(hidden, hidden)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, log_scale, *branch = torch.split(self.conv1(F.elu(h)), self.split, dim=1)
        if self.conv2 is not None:
            h = h + RESIDUAL_SCALE * self.conv2(F.elu(branch[0]))
        return h, loc, log_scale


class _DownLayer(nn.Module):
    """One top-down residual block: prior and generative posterior terms, then the update with the chosen z."""

    def __init__(self, hidden: int, latent: int) -> None:
        super().__init__()
        self.split = (latent, latent, latent, latent, hidden)
        self.conv1 = conv2d_wn(hidden, sum(self.split))
        self.conv2 = conv2d_wn(latent + hidden, hidden)

    def terms(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(prior loc, prior log-scale, generative loc, generative log-scale, deterministic branch)."""
        return torch.split(self.conv1(F.elu(h)), self.split, dim=1)

    def merge(self, h: torch.Tensor, branch: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return h + RESIDUAL_SCALE * self.conv2(F.elu(torch.cat([z, branch], dim=1)))


class RVAE(nn.Module):
    """The bidirectional ResNet VAE of iREC's lossless experiments; see the module docstring for the diagram."""

    def __init__(self, config: RVAEConfig = RVAEConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.x_enc = conv2d_wn(3, c.hidden, 5, stride=2)
        self.up = nn.ModuleList(_UpLayer(c.hidden, c.latent_channels, top=level == 0) for level in range(c.n_layers))
        self.down = nn.ModuleList(_DownLayer(c.hidden, c.latent_channels) for _ in range(c.n_layers))
        self.h_top = nn.Parameter(torch.zeros(c.hidden))
        out_channels = 3 if c.pixel_scale == "global" else 6
        self.x_dec = conv_transpose2d_wn(c.hidden, out_channels, 5, stride=2)
        # the channel coefficients (a, b, c) of a conditioned p(x|z): zero at the start (gain and bias), so a model
        # fine-tuned into this form from an independent one starts as exactly that model
        self.x_coeff = None
        if c.pixel_channels == "conditioned":
            self.x_coeff = conv_transpose2d_wn(c.hidden, 3, 5, stride=2)
            nn.init.zeros_(self.x_coeff.parametrizations.weight.original0)
        self.pixel_log_scale = nn.Parameter(torch.tensor(float(c.initial_pixel_log_scale)))

    @property
    def n_levels(self) -> int:
        return self.config.n_layers

    # --- the incremental API the coder uses -----------------------------------------------------------------
    def bottom_up(self, x_uint8: torch.Tensor) -> InferenceTerms:
        """The inference pass over uint8 images (N, 3, H, W) with even H and W."""
        _check_images(x_uint8)
        h = self.x_enc(to_unit_interval(x_uint8))
        loc: list[torch.Tensor] = [torch.empty(0)] * self.n_levels
        log_scale: list[torch.Tensor] = [torch.empty(0)] * self.n_levels
        for level in reversed(range(self.n_levels)):
            h, loc[level], log_scale[level] = self.up[level](h)
        return InferenceTerms(tuple(loc), tuple(log_scale))

    def top_down_init(self, n: int, image_size: tuple[int, int]) -> TopDownState:
        """The start of the top-down pass for ``n`` images of ``image_size`` = (H, W), both even."""
        height, width = check_image_size(image_size)
        h = self.h_top.view(1, -1, 1, 1).expand(n, -1, height // 2, width // 2)
        return TopDownState(h=h, level=0)

    def level_distributions(
        self, state: TopDownState, level: int, up: InferenceTerms | None = None
    ) -> tuple[DiagGaussian, DiagGaussian | None]:
        """p(z_level | z_<level) and, when ``up`` is given, q(z_level | x, z_<level); q is None at the decoder."""
        self._check_level(state, level)
        terms = state.cache.get(level)
        if terms is None:
            terms = state.cache[level] = self.down[level].terms(state.h)
        p_loc, p_log_scale, r_loc, r_log_scale, _ = terms
        check = not self.training  # validate at coding time; in training the loop catches non-finite losses
        p = DiagGaussian.from_log_scale(p_loc, p_log_scale, validate=check)
        if up is None:
            return p, None
        if up.loc[level].shape != p_loc.shape:
            raise InvalidPixelsError(
                f"inference terms of shape {tuple(up.loc[level].shape)} do not match the top-down state "
                f"{tuple(p_loc.shape)}; run bottom_up and top_down_init on the same images"
            )
        q = DiagGaussian.from_log_scale(up.loc[level] + r_loc, up.log_scale[level] + r_log_scale, validate=check)
        return p, q

    def top_down_step(self, state: TopDownState, level: int, z: torch.Tensor) -> TopDownState:
        """The state after fixing z_level = ``z`` (the coded sample, or a posterior sample in training)."""
        self._check_level(state, level)
        terms = state.cache.get(level)
        if terms is None:
            terms = self.down[level].terms(state.h)
        branch = terms[-1]
        expected = (branch.shape[0], self.config.latent_channels, *branch.shape[2:])
        if tuple(z.shape) != expected:
            raise ValueError(f"z of shape {tuple(z.shape)} does not fit level {level}: expected {expected}")
        return TopDownState(h=self.down[level].merge(state.h, branch, z.to(branch.dtype)), level=level + 1)

    def pixel_params(self, state: TopDownState) -> DiscretizedLogistic | ConditionedLogistic:
        """p(x | z) once every level is fixed: a discretized logistic per subpixel, its channels conditioned on the
        earlier ones if the config says so."""
        if state.level != self.n_levels:
            raise ValueError(
                f"pixel_params needs all {self.n_levels} levels fixed; the state is at level {state.level}"
            )
        features = F.elu(state.h)
        out = self.x_dec(features)
        if self.config.pixel_scale == "global":
            loc, log_scale = out, self.pixel_log_scale.expand_as(out)
        else:
            loc, log_scale = torch.split(out, 3, dim=1)
            log_scale = log_scale + self.pixel_log_scale
        if self.x_coeff is None:
            return DiscretizedLogistic(loc, log_scale)
        return ConditionedLogistic(loc, log_scale, self.x_coeff(features))

    def _check_level(self, state: TopDownState, level: int) -> None:
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level must be in 0..{self.n_levels - 1}, got {level}")
        if state.level != level:
            raise ValueError(f"levels go top-down in order: the state is at level {state.level}, not {level}")

    # --- training and evaluation, through the same functions ------------------------------------------------
    def posterior_pass(
        self, x_uint8: torch.Tensor, up: InferenceTerms | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[tuple[DiagGaussian, DiagGaussian, torch.Tensor]], DiscretizedLogistic]:
        """Every level's (p, q, z) with z ~ q (reparameterized, drawn from ``generator`` or torch's global RNG), then
        p(x | z); q from the bottom-up terms ``up`` (None: this model's bottom-up pass over ``x_uint8``)."""
        up = self.bottom_up(x_uint8) if up is None else up
        state = self.top_down_init(x_uint8.shape[0], tuple(x_uint8.shape[2:]))
        levels = []
        for level in range(self.n_levels):
            p, q = self.level_distributions(state, level, up)
            z = q.sample(generator)
            levels.append((p, q, z))
            state = self.top_down_step(state, level, z)
        return levels, self.pixel_params(state)

    def training_loss(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """-log p(x|z) + KL with free bits, in bits per subpixel (batch mean), and metrics for logging.

        The KL of each layer is taken per channel (summed over positions, averaged over the batch) and floored at
        ``free_bits`` nats (Kingma et al. 2016); ``kl_estimate`` picks the single-sample or the analytic KL, and
        ``kl_weight`` weighs it (1: the ELBO).
        """
        levels, px = self.posterior_pass(x_uint8)
        nll = -px.log_prob(x_uint8).sum(dim=(1, 2, 3)).mean()
        kl_objective = nll.new_zeros(())
        kl_total = nll.new_zeros(())
        for p, q, z in levels:
            kl_map = q.log_prob(z) - p.log_prob(z) if self.config.kl_estimate == "sample" else q.kl(p)
            kl_per_channel = kl_map.sum(dim=(2, 3)).mean(dim=0)
            kl_objective = kl_objective + kl_per_channel.clamp(min=self.config.free_bits).sum()
            kl_total = kl_total + kl_per_channel.sum()
        nats_per_bpd = x_uint8[0].numel() * math.log(2.0)
        loss = (nll + self.config.kl_weight * kl_objective) / nats_per_bpd
        metrics = {
            "loss_bpd": loss.item(),
            "elbo_bpd": ((nll + kl_total) / nats_per_bpd).item(),
            "nll_bpd": (nll / nats_per_bpd).item(),
            "kl_bpd": (kl_total / nats_per_bpd).item(),
            "pixel_log_scale": self.pixel_log_scale.item(),
        }
        return loss, metrics

    @torch.no_grad()
    def negative_elbo(self, x_uint8: torch.Tensor) -> ElboTerms:
        """The honest -ELBO without free bits: analytic KL per level plus one posterior sample's -log p(x|z)."""
        levels, px = self.posterior_pass(x_uint8)
        kl = torch.stack([q.kl(p).sum(dim=(1, 2, 3)) for p, q, _ in levels], dim=1)
        nll = -px.log_prob(x_uint8).sum(dim=(1, 2, 3))
        return ElboTerms(nll=nll, kl=kl, n_subpixels=x_uint8[0].numel())

    @torch.no_grad()
    def sample(self, n: int, image_size: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images (uint8, N x 3 x H x W) drawn from the model, z from the priors level by level."""
        state = self.top_down_init(n, image_size)
        for level in range(self.n_levels):
            p, _ = self.level_distributions(state, level)
            state = self.top_down_step(state, level, p.sample(generator))
        return self.pixel_params(state).sample(generator)


def check_image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of an image the top-down pass can start on: both even and >= 2 (the latents live at H/2 x W/2)."""
    height, width = image_size
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise InvalidPixelsError(f"the RVAE needs even image sizes >= 2, got {height}x{width}; pad the image")
    return height, width


def _check_images(x_uint8: torch.Tensor) -> None:
    if not isinstance(x_uint8, torch.Tensor) or x_uint8.dtype != torch.uint8:
        raise InvalidPixelsError("the RVAE takes uint8 image tensors (N, 3, H, W); convert the pixels to torch.uint8")
    if x_uint8.ndim != 4 or x_uint8.shape[1] != 3:
        raise InvalidPixelsError(f"the RVAE takes (N, 3, H, W) images, got shape {tuple(x_uint8.shape)}")
    if x_uint8.shape[2] % 2 or x_uint8.shape[3] % 2:
        raise InvalidPixelsError(
            f"the RVAE needs even H and W, got {x_uint8.shape[2]}x{x_uint8.shape[3]}; pad the image (the codec does)"
        )
