"""The lossy two-level VAE with an exact decoder: p(z2), p(z1 | z2) and the synthesis are the same bits everywhere.

The lossy decoder (paper, Section 4; docs/irec-method.md, Section 5) computes the prior of z2, the hyper-synthesis
p(z1 | z2) of the coded z2, and the synthesis transform of the coded z1, which gives the image. Here all three
run in the integer arithmetic of :mod:`irec.models.exact`: integer weights, fixed-point activations, ReLU, the
tabulated softplus behind the scales, and IGDN with integer gamma, an exact sum and an IEEE square root. p(z2) does
not depend on the image; it is computed once, when the model is quantized, and stored as constants.

The encoder's analysis, the posteriors and the encoder's refinement (gradients through the synthesis) use the float
twin of the same integer weights (:meth:`ExactTwoLevelVAE.float_model`); the encoder's view of what the decoder
computes is this exact path, so encoder and decoder share one computation. :class:`ExactTwoLevelVAE` keeps
:class:`irec.models.vae2.TwoLevelVAE`'s staged API. Built from a float model by
:meth:`ExactTwoLevelVAE.from_float`; saved and loaded as any irec model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from irec.distributions import DiagGaussian
from irec.models import exact
from irec.models.exact import QConv, QGDN, Tables, exact_kernels, from_fixed, to_fixed
from irec.models.vae2 import SCALE_FLOOR, Analysis, TwoLevelVAE, VAE2Config, check_z2_grid


@dataclass(frozen=True)
class ExactVAE2Config(VAE2Config):
    """The float model's architecture and loss plus the integer weights' width."""

    weight_bits: int = 16  # integer weights of 8 bits (int8) or up to 16 (int16); see irec.models.exact


# (name, c_in, c_out, kernel, stride, transposed, bias) of every convolution, named as in TwoLevelVAE
def _layers(n: int, m: int) -> list[tuple[str, int, int, int, int, bool, bool]]:
    return [
        ("analysis_body.0", 3, n, 5, 2, False, True), ("analysis_body.2", n, n, 5, 2, False, True),
        ("analysis_body.4", n, n, 5, 2, False, True), ("analysis_loc", n, n, 5, 2, False, True),
        ("analysis_scale", n, n, 5, 2, False, True),
        ("hyper_analysis_body.0", n, m, 3, 1, False, True), ("hyper_analysis_body.2", m, m, 5, 2, False, True),
        ("hyper_analysis_loc", m, m, 5, 2, False, False), ("hyper_analysis_scale", m, m, 5, 2, False, False),
        ("prior_z2_body.0", m, m, 1, 1, False, True), ("prior_z2_loc", m, m, 1, 1, False, True),
        ("prior_z2_scale", m, m, 1, 1, False, True),
        ("hyper_synthesis_body.0", m, m, 5, 2, True, True), ("hyper_synthesis_body.2", m, m, 5, 2, True, True),
        ("hyper_synthesis_loc", m, n, 3, 1, False, True), ("hyper_synthesis_scale", m, n, 3, 1, False, True),
        ("posterior_z1_loc", 2 * n, n, 1, 1, False, True), ("posterior_z1_scale", 2 * n, n, 1, 1, False, True),
        ("synthesis_body.0", n, n, 5, 2, True, True), ("synthesis_body.2", n, n, 5, 2, True, True),
        ("synthesis_body.4", n, n, 5, 2, True, True), ("synthesis_body.6", n, 3, 5, 2, True, True),
    ]


GDNS = ("analysis_body.1", "analysis_body.3", "analysis_body.5", "synthesis_body.1", "synthesis_body.3",
        "synthesis_body.5")


def _key(name: str) -> str:
    return name.replace(".", "_")


class ExactTwoLevelVAE(nn.Module):
    """The two-level VAE with integer weights: exact p(z2), p(z1 | z2) and synthesis; float twin for the rest."""

    def __init__(self, config: ExactVAE2Config = ExactVAE2Config()) -> None:
        super().__init__()
        self.config = config
        n, m, bits = config.n_channels, config.m_channels, config.weight_bits
        self.convs = nn.ModuleDict({
            _key(name): QConv(c_in, c_out, k, stride, transposed, bits)
            for name, c_in, c_out, k, stride, transposed, _ in _layers(n, m)
        })
        self.gdns = nn.ModuleDict({_key(name): QGDN(n, bits) for name in GDNS})
        self.register_buffer("prior_z2_base", torch.zeros(1, m, 1, 1, dtype=torch.float64))
        self.register_buffer("prior_z2_loc", torch.zeros(m, dtype=torch.float64))  # p(z2)'s constants, exact
        self.register_buffer("prior_z2_scale", torch.ones(m, dtype=torch.float64))
        self.tables = Tables()
        self._twin: TwoLevelVAE | None = None

    # --- conversion ---------------------------------------------------------------------------------------
    @classmethod
    def from_float(cls, model: TwoLevelVAE, weight_bits: int = 16) -> ExactTwoLevelVAE:
        """Post-training quantization of a float two-level VAE: per-channel integer weights and gammas; p(z2)
        evaluated once by the twin in float64 and stored."""
        out = cls(ExactVAE2Config(**asdict(model.config), weight_bits=weight_bits))
        modules = dict(model.named_modules())
        for name, *_, bias in _layers(model.config.n_channels, model.config.m_channels):
            conv = modules[name]
            out.convs[_key(name)].quantize_from(conv.weight, conv.bias if bias else None)
        for name in GDNS:
            out.gdns[_key(name)].quantize_from(modules[name].gamma, modules[name].beta)
        with torch.no_grad():
            out.prior_z2_base.copy_(model.prior_z2_base.detach().double().cpu())
            twin = out.float_model().double()
            p2 = twin.prior_z2((1, 1))
            out.prior_z2_loc.copy_(p2.loc.reshape(-1))
            out.prior_z2_scale.copy_(p2.scale.reshape(-1))
        out._twin = None
        return out.eval()

    def float_model(self) -> TwoLevelVAE:
        """The float two-level VAE with the dequantized weights (analysis, posteriors, refinement, training)."""
        if self._twin is None:
            base = VAE2Config(**{f.name: getattr(self.config, f.name) for f in fields(VAE2Config)})
            with torch.random.fork_rng(devices=[]):  # its random initial weights are overwritten below:
                twin = TwoLevelVAE(base)  # leave the caller's random stream where it was
            modules = dict(twin.named_modules())
            with torch.no_grad():
                for name, *_, bias in _layers(base.n_channels, base.m_channels):
                    q = self.convs[_key(name)]
                    modules[name].weight.copy_(q.float_weight())
                    if bias:
                        modules[name].bias.copy_(q.bias.float())
                for name in GDNS:
                    gdn, (gamma, beta) = modules[name], self.gdns[_key(name)].float_params()
                    gdn.gamma_stored.copy_(gdn.gamma_reparam.init(gamma))
                    gdn.beta_stored.copy_(gdn.beta_reparam.init(beta))
                twin.prior_z2_base.copy_(self.prior_z2_base.float())
            self._twin = twin.eval()
        return self._twin

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._twin = None
        super()._load_from_state_dict(*args, **kwargs)

    def check_bounds(self) -> None:
        """Raise unless every layer's sums stay in float64's exact range (irec.models.exact)."""
        for conv in self.convs.values():
            conv.check_bound()

    # --- the staged API (encoder side: the float twin) -------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> Analysis:
        return self.float_model().analysis(x)

    def posterior_z2(self, enc: Analysis) -> DiagGaussian:
        return self.float_model().posterior_z2(enc)

    def posterior_z1(self, enc: Analysis, p1: DiagGaussian) -> DiagGaussian:
        twin = self.float_model()
        return twin.posterior_z1(enc, DiagGaussian(p1.loc.float(), p1.scale.float(), validate=False))

    def distortion(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        return self.float_model().distortion(x, x_hat)

    # --- the decoder's side: exact -------------------------------------------------------------------------
    def prior_z2(self, shape_hw: tuple[int, int], batch_size: int = 1) -> DiagGaussian:
        """p(z2): the stored per-channel constants, broadcast over a (batch, M, H/64, W/64) grid."""
        shape = (batch_size, self.config.m_channels, *check_z2_grid(shape_hw, batch_size))
        view = (1, -1, 1, 1)
        return DiagGaussian(self.prior_z2_loc.view(view).expand(shape), self.prior_z2_scale.view(view).expand(shape))

    def prior_z1(self, z2: torch.Tensor) -> DiagGaussian:
        """p(z1 | z2) of the coded z2 (rounded to the 2^-16 grid), exact."""
        c = self.convs
        with exact_kernels():
            h = c["hyper_synthesis_body_0"](to_fixed(z2)).clamp_(min=0)
            h = c["hyper_synthesis_body_2"](h).clamp_(min=0)
            loc, raw = c["hyper_synthesis_loc"](h), c["hyper_synthesis_scale"](h)
        return DiagGaussian(from_fixed(loc), exact.softplus(raw, self.tables.softplus) + SCALE_FLOOR)

    def synthesis(self, z1: torch.Tensor) -> torch.Tensor:
        """x_hat (float64 values on the 2^-16 grid) of the coded z1, exact; the codec clips and rounds it."""
        h = to_fixed(z1)
        with exact_kernels():
            for i in range(3):
                h = self.gdns[f"synthesis_body_{2 * i + 1}"](self.convs[f"synthesis_body_{2 * i}"](h))
            h = self.convs["synthesis_body_6"](h)
        return from_fixed(h)

