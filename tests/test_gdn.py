"""Tests for irec.models.gdn: GDN/IGDN definitions, approximate inversion and the nonnegative parametrization."""

from __future__ import annotations

import pytest
import torch

from irec.models.gdn import GDN, NonNegativeParametrizer


def _randomize(layer: GDN, generator: torch.Generator, beta_spread: float = 1.0) -> None:
    """Give the layer beta in [1 - spread/2, 1 + spread/2] and small non-negative cross-channel gamma."""
    c = layer.channels
    beta = 1.0 + beta_spread * (torch.rand(c, generator=generator) - 0.5)
    gamma = 0.05 * torch.eye(c) + 0.01 * torch.rand(c, c, generator=generator)
    with torch.no_grad():
        layer.beta_stored.copy_(layer.beta_reparam.init(beta))
        layer.gamma_stored.copy_(layer.gamma_reparam.init(gamma))


def test_gdn_and_igdn_match_their_definitions_on_a_random_input():
    gen = torch.Generator().manual_seed(0)
    layer, inverse = GDN(4), GDN(4, inverse=True)
    _randomize(layer, gen)
    inverse.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 3, 5, generator=gen)
    beta, gamma = layer.beta.detach(), layer.gamma.detach()
    norm = torch.sqrt(beta[None, :, None, None] + torch.einsum("ij,bjhw->bihw", gamma, x * x))
    torch.testing.assert_close(layer(x), x / norm)
    torch.testing.assert_close(inverse(x), x * norm)


def test_igdn_with_the_same_parameters_approximately_inverts_gdn():
    gen = torch.Generator().manual_seed(1)
    gdn, igdn = GDN(8), GDN(8, inverse=True)
    # With shared parameters the inverse is close only for beta = 1 (otherwise y ~ x / sqrt(beta) already at
    # first order); gamma stays random with cross-channel terms.
    _randomize(gdn, gen, beta_spread=0.0)
    igdn.load_state_dict(gdn.state_dict())
    x = 0.3 * torch.randn(3, 8, 6, 6, generator=gen)
    with torch.no_grad():
        round_trip = igdn(gdn(x))
    # IGDN is one fixed-point step of the exact inverse: the error is second order in gamma * x^2.
    rel_err = (round_trip - x).norm() / x.norm()
    assert rel_err < 2e-3
    # ... and it is a real approximation, not an identity: a large input breaks it.
    with torch.no_grad():
        big = 30.0 * x
        assert (igdn(gdn(big)) - big).norm() / big.norm() > 10 * rel_err


def test_a_fresh_gdn_is_close_to_the_identity_for_small_inputs():
    x = 1e-2 * torch.randn(1, 5, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(GDN(5)(x), x, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(GDN(5, inverse=True)(x), x, rtol=1e-4, atol=1e-7)


def test_beta_and_gamma_stay_positive_whatever_the_stored_values():
    layer = GDN(3, beta_min=1e-6)
    with torch.no_grad():
        layer.beta_stored.fill_(-5.0)
        layer.gamma_stored.copy_(-torch.rand(3, 3))
    assert torch.all(layer.beta >= 1e-6)
    assert torch.all(layer.gamma >= 0)
    y = layer(torch.randn(2, 3, 4, 4))
    assert torch.isfinite(y).all()


def test_many_descent_steps_that_push_beta_down_never_cross_its_minimum():
    layer = GDN(3, beta_min=1e-3)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        (layer.beta.sum() + layer.gamma.sum()).backward()
        opt.step()
    assert torch.all(layer.beta >= 1e-3 - 1e-9)
    assert torch.all(layer.gamma >= 0)
    assert layer.beta.min() < 0.01  # it really was pushed to the bound


def test_a_parameter_at_its_bound_gets_a_gradient_only_towards_the_inside():
    reparam = NonNegativeParametrizer(minimum=0.1)
    stored = torch.full((2,), -1.0, requires_grad=True)  # far below the bound
    reparam(stored).sum().backward()  # minimizing would push the value down: blocked
    assert torch.all(stored.grad == 0)
    stored.grad = None
    (-reparam(stored)).sum().backward()  # minimizing would push the value up: allowed
    assert torch.all(stored.grad < 0)


def test_the_parametrizer_round_trips_values_above_its_minimum():
    reparam = NonNegativeParametrizer(minimum=1e-6)
    value = torch.tensor([1e-6, 0.1, 1.0, 7.5])
    torch.testing.assert_close(reparam(reparam.init(value)), value)
    assert reparam(reparam.init(torch.tensor([-3.0]))).item() == pytest.approx(1e-6, abs=1e-9)


def test_gdn_rejects_a_tensor_with_the_wrong_channel_count():
    with pytest.raises(ValueError, match="3 channels"):
        GDN(3)(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="beta_min"):
        GDN(3, beta_min=0.0)
