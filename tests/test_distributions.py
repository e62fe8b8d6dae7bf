"""Tests of irec.distributions.DiagGaussian against torch.distributions and Monte Carlo estimates."""

from __future__ import annotations

import math

import pytest
import torch

from irec.distributions import DiagGaussian, InvalidDistributionError


def _pair():
    g = torch.Generator().manual_seed(0)
    q = DiagGaussian(torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) + 0.2)
    p = DiagGaussian(torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) + 0.2)
    return q, p


def test_log_prob_kl_and_entropy_match_torch_normal():
    q, p = _pair()
    tq, tp = torch.distributions.Normal(q.loc, q.scale), torch.distributions.Normal(p.loc, p.scale)
    x = torch.randn(5, 7)
    torch.testing.assert_close(q.log_prob(x), tq.log_prob(x))
    torch.testing.assert_close(q.kl(p), torch.distributions.kl_divergence(tq, tp))
    torch.testing.assert_close(q.entropy(), tq.entropy())


def test_analytic_kl_agrees_with_a_monte_carlo_estimate():
    q = DiagGaussian(torch.tensor([0.3]), torch.tensor([0.5]))
    p = DiagGaussian(torch.tensor([-0.2]), torch.tensor([1.3]))
    z = DiagGaussian(q.loc.expand(200_000), q.scale.expand(200_000)).sample(torch.Generator().manual_seed(1))
    mc = (q.log_prob(z) - p.log_prob(z)).mean()
    assert abs(mc.item() - q.kl(p).item()) < 0.01


def test_kl_of_a_distribution_with_itself_is_zero_and_positive_otherwise():
    q, p = _pair()
    assert torch.allclose(q.kl(q), torch.zeros_like(q.loc), atol=1e-6)
    assert bool(torch.all(q.kl(p) > 0))


def test_samples_from_the_same_generator_seed_are_identical_and_have_the_right_moments():
    d = DiagGaussian(torch.full((100_000,), 2.0), torch.full((100_000,), 0.5))
    a = d.sample(torch.Generator().manual_seed(3))
    b = d.sample(torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(a.mean().item() - 2.0) < 0.01 and abs(a.std().item() - 0.5) < 0.01


def test_sampling_is_reparameterized_so_gradients_reach_loc_and_scale():
    loc = torch.zeros(4, requires_grad=True)
    log_scale = torch.zeros(4, requires_grad=True)
    DiagGaussian.from_log_scale(loc, log_scale).sample().square().sum().backward()
    assert loc.grad is not None and log_scale.grad is not None and bool(torch.any(log_scale.grad != 0))


def test_from_log_scale_matches_the_scale_constructor():
    loc, log_scale = torch.randn(3), torch.randn(3)
    a, b = DiagGaussian.from_log_scale(loc, log_scale), DiagGaussian(loc, log_scale.exp())
    x = torch.randn(3)
    torch.testing.assert_close(a.log_prob(x), b.log_prob(x))
    assert a.log_scale is log_scale or torch.equal(a.log_scale, log_scale)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_a_non_positive_or_nan_scale_raises_a_clear_error(bad):
    with pytest.raises(InvalidDistributionError, match="scale > 0"):
        DiagGaussian(torch.zeros(2), torch.tensor([1.0, bad]))
    assert issubclass(InvalidDistributionError, ValueError)


def test_a_non_finite_log_scale_raises_a_clear_error():
    with pytest.raises(InvalidDistributionError, match="finite"):
        DiagGaussian.from_log_scale(torch.zeros(2), torch.tensor([0.0, math.inf]))
