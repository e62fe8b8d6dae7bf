"""The lossless ResNet VAE with an exact top-down path: what the decoder computes is the same bits everywhere.

The decoder of the lossless codec (paper, Section 4.1; docs/irec-method.md, Sections 2 and 5) evaluates the
RVAE's top-down path: the priors p(z_l | z_<l) of every level and the pixel likelihood p(x | z). Here these run
in the integer arithmetic of :mod:`irec.models.exact` (integer weights, fixed-point activations, tabulated ELU and
exp), so a file written on one machine decodes on any other. The encoder runs the same exact path, so encoder and
decoder share one computation; only the bottom-up (inference) pass, which the decoder never runs, uses the float
twin of the same integer weights (:meth:`ExactRVAE.float_model`).

:class:`ExactRVAE` keeps :class:`irec.models.rvae.RVAE`'s incremental API (``bottom_up``, ``top_down_init``,
``level_distributions``, ``top_down_step``, ``pixel_params``), so the codec is written once. Built from a float
model by :meth:`ExactRVAE.from_float` (post-training quantization: symmetric per-channel weights); saved and
loaded as any irec model (:func:`irec.checkpoint.save_model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from irec.distributions import DiagGaussian
from irec.models import exact
from irec.models.exact import QConv, Tables, exact_kernels, from_fixed, to_fixed
from irec.models.exact_logistic import ExactConditionedLogistic, ExactLogistic
from irec.models.rvae import RESIDUAL_SCALE, RVAE, InferenceTerms, RVAEConfig, TopDownState, check_image_size


@dataclass(frozen=True)
class ExactRVAEConfig(RVAEConfig):
    """The float model's architecture plus the integer weights' width."""

    weight_bits: int = 16  # integer weights of 8 bits (int8) or up to 16 (int16); see irec.models.exact


class _Up(torch.nn.Module):
    def __init__(self, hidden: int, latent: int, top: bool, bits: int) -> None:
        super().__init__()
        self.conv1 = QConv(hidden, 2 * latent + (0 if top else hidden), 3, bits=bits)
        self.conv2 = None if top else QConv(hidden, hidden, 3, bits=bits)


class _Down(torch.nn.Module):
    def __init__(self, hidden: int, latent: int, bits: int) -> None:
        super().__init__()
        self.split = (latent, latent, latent, latent, hidden)
        self.conv1 = QConv(hidden, 4 * latent + hidden, 3, bits=bits)
        self.conv2 = QConv(latent + hidden, hidden, 3, bits=bits)


class ExactRVAE(torch.nn.Module):
    """The RVAE with integer weights: exact top-down path, float twin for the bottom-up pass."""

    def __init__(self, config: ExactRVAEConfig = ExactRVAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        bits = c.weight_bits
        self.x_enc = QConv(3, c.hidden, 5, stride=2, bits=bits)
        self.up = torch.nn.ModuleList(_Up(c.hidden, c.latent_channels, level == 0, bits) for level in range(c.n_layers))
        self.down = torch.nn.ModuleList(_Down(c.hidden, c.latent_channels, bits) for _ in range(c.n_layers))
        self.x_dec = QConv(c.hidden, 3 if c.pixel_scale == "global" else 6, 5, stride=2, transposed=True, bits=bits)
        self.x_coeff = None
        if c.pixel_channels == "conditioned":
            self.x_coeff = QConv(c.hidden, 3, 5, stride=2, transposed=True, bits=bits)
        self.register_buffer("h_top", torch.zeros(c.hidden, dtype=torch.float64))  # fixed-point integers
        self.register_buffer("pixel_log_scale", torch.zeros((), dtype=torch.float64))  # fixed-point integer
        self.tables = Tables()
        self._twin: RVAE | None = None

    @property
    def n_levels(self) -> int:
        return self.config.n_layers

    # --- conversion ---------------------------------------------------------------------------------------
    @classmethod
    def from_float(cls, model: RVAE, weight_bits: int = 16) -> ExactRVAE:
        """Post-training quantization of a float RVAE: per-channel integer weights, biases and constants on the
        2^-16 grid."""
        config = ExactRVAEConfig(**asdict(model.config), weight_bits=weight_bits)
        out = cls(config)
        out.x_enc.quantize_from(model.x_enc.weight, model.x_enc.bias)
        for mine, theirs in zip(list(out.up) + list(out.down), list(model.up) + list(model.down)):
            mine.conv1.quantize_from(theirs.conv1.weight, theirs.conv1.bias)
            if mine.conv2 is not None:
                mine.conv2.quantize_from(theirs.conv2.weight, theirs.conv2.bias)
        out.x_dec.quantize_from(model.x_dec.weight, model.x_dec.bias)
        if out.x_coeff is not None:
            out.x_coeff.quantize_from(model.x_coeff.weight, model.x_coeff.bias)
        with torch.no_grad():
            out.h_top.copy_(to_fixed(model.h_top.detach().cpu()))
            out.pixel_log_scale.copy_(to_fixed(model.pixel_log_scale.detach().cpu()))
        return out.eval()

    def float_model(self) -> RVAE:
        """The float RVAE with the dequantized weights (the encoder's bottom-up pass; training and -ELBO)."""
        if self._twin is None:
            base = RVAEConfig(**{f.name: getattr(self.config, f.name) for f in fields(RVAEConfig)})
            with torch.random.fork_rng(devices=[]):  # its random initial weights are overwritten below:
                twin = RVAE(base)  # leave the caller's random stream where it was
            with torch.no_grad():
                _set_wn(twin.x_enc, self.x_enc)
                for mine, theirs in zip(list(self.up) + list(self.down), list(twin.up) + list(twin.down)):
                    _set_wn(theirs.conv1, mine.conv1)
                    if mine.conv2 is not None:
                        _set_wn(theirs.conv2, mine.conv2)
                _set_wn(twin.x_dec, self.x_dec)
                if self.x_coeff is not None:
                    _set_wn(twin.x_coeff, self.x_coeff)
                twin.h_top.copy_(from_fixed(self.h_top).float())
                twin.pixel_log_scale.copy_(from_fixed(self.pixel_log_scale).float())
            self._twin = twin.eval()
        return self._twin

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._twin = None  # new weights: rebuild the twin when next asked
        super()._load_from_state_dict(*args, **kwargs)

    def check_bounds(self) -> None:
        """Raise unless every layer's sums stay in float64's exact range (irec.models.exact)."""
        for module in self.modules():
            if isinstance(module, QConv):
                module.check_bound()

    # --- the incremental API the coder uses ----------------------------------------------------------------
    def bottom_up(self, x_uint8: torch.Tensor) -> InferenceTerms:
        """The inference pass (encoder only), by the float twin."""
        return self.float_model().bottom_up(x_uint8)

    def top_down_init(self, n: int, image_size: tuple[int, int]) -> TopDownState:
        height, width = check_image_size(image_size)
        return TopDownState(h=self.h_top.view(1, -1, 1, 1).expand(n, -1, height // 2, width // 2), level=0)

    def _terms(self, state: TopDownState, level: int) -> tuple[torch.Tensor, ...]:
        RVAE._check_level(self, state, level)
        terms = state.cache.get(level)
        if terms is None:
            with exact_kernels():
                out = self.down[level].conv1(exact.elu(state.h, self.tables.elu))
            terms = state.cache[level] = torch.split(out, self.down[level].split, dim=1)
        return terms

    def level_distributions(
        self, state: TopDownState, level: int, up: InferenceTerms | None = None
    ) -> tuple[DiagGaussian, DiagGaussian | None]:
        """p(z_level | z_<level), exact; with ``up``, q(z_level | x, z_<level) (encoder only, float)."""
        p_loc, p_log_scale, r_loc, r_log_scale, _ = self._terms(state, level)
        p = DiagGaussian(from_fixed(p_loc), exact.exp(p_log_scale, self.tables.exp2))
        if up is None:
            return p, None
        loc = up.loc[level].to(torch.float64) + from_fixed(r_loc)
        q = DiagGaussian(loc, torch.exp(up.log_scale[level].to(torch.float64) + from_fixed(r_log_scale)))
        return p, q

    def top_down_step(self, state: TopDownState, level: int, z: torch.Tensor) -> TopDownState:
        """The state after fixing z_level = ``z`` (rounded to the 2^-16 grid)."""
        branch = self._terms(state, level)[-1]
        expected = (branch.shape[0], self.config.latent_channels, *branch.shape[2:])
        if tuple(z.shape) != expected:
            raise ValueError(f"z of shape {tuple(z.shape)} does not fit level {level}: expected {expected}")
        with exact_kernels():
            inner = exact.elu(torch.cat([to_fixed(z), branch], dim=1), self.tables.elu)
            h = (state.h + self.down[level].conv2(inner, gain=RESIDUAL_SCALE)).clamp_(-exact.ACT_LIMIT, exact.ACT_LIMIT)
        return TopDownState(h=h, level=level + 1)

    def pixel_params(self, state: TopDownState) -> ExactLogistic | ExactConditionedLogistic:
        """p(x | z) once every level is fixed, with an exactly computed CDF table (and, for a conditioned model,
        channel coefficients on the fixed-point grid)."""
        if state.level != self.n_levels:
            raise ValueError(f"pixel_params needs all {self.n_levels} levels fixed; the state is at {state.level}")
        with exact_kernels():
            features = exact.elu(state.h, self.tables.elu)
            out = self.x_dec(features)
            coeff = None if self.x_coeff is None else self.x_coeff(features)
        if self.config.pixel_scale == "global":
            loc, log_scale = out, self.pixel_log_scale.expand_as(out)
        else:
            loc, log_scale = torch.split(out, 3, dim=1)
        loc, log_scale = from_fixed(loc), from_fixed(log_scale + self.pixel_log_scale)
        if coeff is None:
            return ExactLogistic(loc, log_scale, self.tables)
        return ExactConditionedLogistic(loc, log_scale, from_fixed(coeff), self.tables)

    # RVAE's sampling, posterior pass and -ELBO run on the incremental API: here through the exact top-down path,
    # the one the codec codes under
    sample = RVAE.sample
    posterior_pass = RVAE.posterior_pass
    negative_elbo = RVAE.negative_elbo


def _set_wn(conv: torch.nn.Module, q: QConv) -> None:
    """Give a weight-normalized conv the dequantized weight: v = w, g = ||w|| per output channel (an all-zero
    channel, e.g. an untrained channel coefficient, gets g = 0 and v = 1: w = g v / ||v|| needs ||v|| > 0)."""
    w = q.float_weight()
    dims = [d for d in range(4) if d != q.out_dim]
    params = conv.parametrizations.weight
    norm = torch.linalg.vector_norm(w, dim=dims, keepdim=True)
    params.original1.copy_(torch.where(norm > 0, w, torch.ones_like(w)))
    params.original0.copy_(norm)
    conv.bias.copy_(q.bias.float())

