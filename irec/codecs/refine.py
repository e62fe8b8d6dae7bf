"""Encoder-side refinement of the posteriors, per image, before iREC codes them: the lossy model's level-1 mean
(:func:`refine_posterior`) and every level of the lossless RVAE (:func:`refine_levels`).

Beyond the paper (its section 4 codes the amortized posterior q(z1 | x, z2) as the analysis network gives it).
iREC codes any Gaussian the encoder chooses: the decoder only regenerates candidates from p(z1 | z2), so the
encoder may aim at a better posterior than the amortized one without any change to the file format or the decoder.
This is semi-amortized inference (Kim et al. 2018; Marino, Yue & Mandt 2018), which Yang, Bamler & Mandt (2020,
"Improving inference for neural image compression") applied to neural codecs; with iREC no quantization gets in
the way, the posterior is coded as it is.

A few preconditioned gradient steps lower the objective

    beta * D(x, g(mu)) * H * W * ln 2  +  kappa * KL(N(mu, s_q^2) || p(z1 | z2))    (nats)

in the mean mu only, the scales s_q kept: ``mu <- mu - eta * s_q^2 * gradient`` (eta: ``Refinement.step_size``;
kappa: ``Refinement.kl_weight``). The first term is the training loss's distortion at the posterior mean (one
synthesis pass and its backward per step); kappa weighs the rate more than the training loss does (kappa = 1),
because the distortion at the mean understates that of a sample. A step that does not lower the objective is
undone. The gain comes from the amortization gap of the analysis network, not from the coder; at the lowest rates
the refinement mostly moves along the R-D curve. The settings (:data:`irec.settings.DEFAULT_REFINEMENT`), what each
alternative gave on Kodak, and what was tried and dropped: docs/lossy-coder-history.md.

The lossless RVAE's posterior q(z_l | x, z_<l) adds the bottom-up pass's location and log-scale of level l to terms
of the top-down state, so :func:`refine_levels` refines the bottom-up pass's outputs, all levels at once, by Adam on

    -log p(x | z)  +  kappa * sum_l KL(q(z_l | x, z_<l) || p(z_l | z_<l))    (nats, z drawn from q, reparameterized)

with kappa = ``LosslessRefinement.kl_weight`` (the coder pays about 1.2 bits per bit of KL and one per bit of
-log p(x|z)). The objective is a one-sample estimate, so the result is kept only if its objective under fixed noise
(common random numbers) is below the amortized posterior's. Measured, and why it is off by default:
docs/reference-run.md, "Refining the lossless posteriors".
"""

from __future__ import annotations

import math
import torch

from irec.codecs.container import pinned
from irec.distributions import DiagGaussian
from irec.models.rvae import RVAE, InferenceTerms
from irec.models.vae2 import TwoLevelVAE
from irec.settings import LosslessRefinement, Refinement


def refine_posterior(
    model: TwoLevelVAE, x: torch.Tensor, q1: DiagGaussian, p1: DiagGaussian, refinement: Refinement
) -> DiagGaussian:
    """q1 with its mean refined for the image ``x`` (float (1, 3, H, W) in [0, 1], padded as the codec pads it).

    Encoder only: the result is what iREC codes against ``p1``. Deterministic on one machine (one thread, pinned).
    A step that does not lower the objective ends the refinement and is undone, so the result's objective is never
    above the amortized posterior's (an untrained model's gradients can be too steep for ``step_size``).
    """
    if refinement.steps == 0:
        return q1
    height, width = x.shape[-2:]
    to_nats = model.config.beta * height * width * math.log(2.0)  # beta * D (bpp units) -> nats per image
    variance = q1.scale.detach() ** 2
    p_loc, p_precision = p1.loc.detach().to(q1.loc.dtype), p1.scale.detach().to(q1.loc.dtype) ** -2
    loc, best, best_objective = q1.loc.detach(), None, math.inf
    with pinned(model), torch.enable_grad():
        for step in range(refinement.steps + 1):  # the last pass only evaluates the last step
            z = loc.clone().requires_grad_(step < refinement.steps)
            with torch.set_grad_enabled(z.requires_grad):
                distortion = model.distortion(x, model.synthesis(z)) * to_nats
            kl_part = 0.5 * float(((loc - p_loc) ** 2 * p_precision).sum())  # KL(q || p) up to a constant in mu
            objective = float(distortion.detach()) + refinement.kl_weight * kl_part
            if not objective < best_objective:  # never uphill (nor to a NaN): keep the best mean so far
                break
            best, best_objective = loc, objective
            if step == refinement.steps:
                break
            (gradient,) = torch.autograd.grad(distortion, z)
            gradient = gradient + refinement.kl_weight * (loc - p_loc) * p_precision
            loc = (loc - refinement.step_size * variance * gradient).detach()
    return DiagGaussian(best, q1.scale)


def _lossless_objective(model: RVAE, x_uint8: torch.Tensor, up: InferenceTerms, kl_weight: float,
                        generator: torch.Generator) -> torch.Tensor:
    """-log p(x|z) + kl_weight * sum of the levels' analytic KL, in nats, z one reparameterized sample of q."""
    levels, px = model.posterior_pass(x_uint8, up, generator)
    kl = sum(q.kl(p).sum() for p, q, _ in levels)
    return -px.log_prob(x_uint8).sum() + kl_weight * kl


def refine_levels(model: RVAE, x_uint8: torch.Tensor, up: InferenceTerms,
                  refinement: LosslessRefinement) -> InferenceTerms:
    """The bottom-up terms ``up`` of one image ``x_uint8`` (1, 3, H, W), refined for coding (module docstring).

    Encoder only: the decoder never sees q. ``model`` is the float RVAE (an exact model's float twin); the result is
    ``up`` itself when ``refinement.steps`` is 0 or when the refined terms are not better under fixed noise, so it
    never codes a worse posterior than the amortized one by that measure. Deterministic on one machine (seeded,
    one thread).
    """
    if refinement.steps == 0:
        return up
    loc = [t.detach().clone().requires_grad_(True) for t in up.loc]
    log_scale = [t.detach().clone().requires_grad_(True) for t in up.log_scale]
    leaves = loc + log_scale
    optimizer = torch.optim.Adam(leaves, lr=refinement.lr)
    generator = torch.Generator().manual_seed(refinement.seed)

    def fixed_noise_objective(terms: InferenceTerms) -> float:
        with torch.no_grad():
            noise = torch.Generator().manual_seed(refinement.seed + 1)
            return float(_lossless_objective(model, x_uint8, terms, refinement.kl_weight, noise))

    with pinned(model), torch.enable_grad():
        before = fixed_noise_objective(up)
        for _ in range(refinement.steps):
            objective = _lossless_objective(model, x_uint8, InferenceTerms(tuple(loc), tuple(log_scale)),
                                            refinement.kl_weight, generator)
            gradients = torch.autograd.grad(objective, leaves)  # not backward(): no gradients of the weights
            for leaf, gradient in zip(leaves, gradients):
                leaf.grad = gradient
            optimizer.step()
        refined = InferenceTerms(tuple(t.detach() for t in loc), tuple(t.detach() for t in log_scale))
        after = fixed_noise_objective(refined)
    return refined if after < before else up
