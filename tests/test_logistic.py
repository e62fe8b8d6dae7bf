"""Tests of the discretized logistic p(x|z): normalization, edge bins, stability, coding with constriction."""

from __future__ import annotations

import math

import constriction
import numpy as np
import pytest
import torch

from irec.models.logistic import DiscretizedLogistic, InvalidPixelsError, to_unit_interval


def _random_logistic(shape=(2, 3, 4, 5), seed=0) -> DiscretizedLogistic:
    g = torch.Generator().manual_seed(seed)
    loc = torch.rand(shape, generator=g) * 1.6 - 0.8  # some locations outside [-0.5, 0.5]
    log_scale = torch.rand(shape, generator=g) * 8.0 - 8.0  # from very sharp to very flat
    return DiscretizedLogistic(loc, log_scale)


def test_the_input_scaling_puts_bin_centres_at_k_plus_half_over_256_minus_half():
    k = torch.tensor([0, 127, 255], dtype=torch.uint8)
    expected = torch.tensor([0.5 / 256 - 0.5, 127.5 / 256 - 0.5, 255.5 / 256 - 0.5])
    torch.testing.assert_close(to_unit_interval(k), expected)


def test_probabilities_over_the_256_bins_sum_to_one():
    probs = _random_logistic().probabilities()
    assert probs.shape == (2, 3, 4, 5, 256) and probs.dtype == np.float64
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(_random_logistic()[:, 1, 2:].probabilities(), probs[:, 1, 2:])  # slices agree


def test_edge_bins_include_the_tail_mass_outside_0_to_255():
    loc = torch.tensor([-0.5, 0.5, 2.0])
    log_scale = torch.full_like(loc, math.log(0.05))
    s = math.exp(log_scale[0].item())  # the float32 scale the table uses
    d = DiscretizedLogistic(loc, log_scale)
    probs = d.probabilities()
    sigmoid = lambda t: 1.0 / (1.0 + math.exp(-t))  # noqa: E731
    # bin 0 is (-inf, -0.5 + 1/256]: about half the mass when the location sits on the lower edge
    assert probs[0, 0] == pytest.approx(sigmoid((-0.5 + 1 / 256 + 0.5) / s), rel=1e-9)
    assert probs[0, 0] > 0.5
    # bin 255 is [0.5 - 1/256, inf)
    assert probs[1, 255] == pytest.approx(1.0 - sigmoid((0.5 - 1 / 256 - 0.5) / s), rel=1e-9)
    # a location far above the range puts (nearly) all the mass in the top bin, none is lost
    assert probs[2, 255] == pytest.approx(1.0, abs=1e-12)


def test_log_prob_agrees_with_the_float64_table_at_every_bin_including_the_edges():
    d = _random_logistic(shape=(256,), seed=1)
    k = torch.arange(256, dtype=torch.uint8)
    table = d.probabilities()[np.arange(256), np.arange(256)]
    log_prob = d.log_prob(k).double().numpy()
    likely = table > 1e-6
    assert likely.sum() > 50
    np.testing.assert_allclose(log_prob[likely], np.log(table[likely]), atol=1e-4)
    # far in the tails the float32 log_prob keeps a few digits (the float64 table is the coder's reference)
    unlikely = (table > 1e-30) & ~likely
    np.testing.assert_allclose(log_prob[unlikely], np.log(table[unlikely]), rtol=1e-2)


def test_log_prob_stays_finite_with_a_sharp_distribution_far_from_the_pixel():
    loc = torch.tensor([0.49, -0.49, 0.0], requires_grad=True)
    log_scale = torch.full((3,), -7.0, requires_grad=True)
    x = torch.tensor([0, 255, 128], dtype=torch.uint8)
    log_prob = DiscretizedLogistic(loc, log_scale).log_prob(x)
    assert bool(torch.all(torch.isfinite(log_prob)))
    log_prob.sum().backward()
    assert bool(torch.all(torch.isfinite(loc.grad))) and bool(torch.all(torch.isfinite(log_scale.grad)))


def test_pixels_coded_with_constriction_decode_exactly_at_close_to_the_ideal_rate():
    d = _random_logistic(shape=(3, 8, 8), seed=2)
    d = DiscretizedLogistic(d.loc, d.log_scale.clamp(min=-5.0, max=-2.0))
    pixels = d.sample(torch.Generator().manual_seed(5))
    probs = d.probabilities().reshape(-1, 256)
    symbols = pixels.reshape(-1).numpy().astype(np.int32)
    model = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, model, probs)
    compressed = encoder.get_compressed()
    decoded = constriction.stream.queue.RangeDecoder(compressed).decode(model, probs)
    np.testing.assert_array_equal(decoded, symbols)
    ideal_bits = -d.log_prob(pixels).sum().item() / math.log(2.0)
    real_bits = 32 * len(compressed)
    assert ideal_bits < real_bits < ideal_bits * 1.02 + 64


def test_samples_are_uint8_and_a_very_sharp_distribution_samples_its_own_bin():
    loc = to_unit_interval(torch.tensor([0, 17, 200, 255], dtype=torch.uint8))
    d = DiscretizedLogistic(loc, torch.full_like(loc, -12.0))
    sample = d.sample(torch.Generator().manual_seed(0))
    assert sample.dtype == torch.uint8
    assert sample.tolist() == [0, 17, 200, 255] == d.median().tolist()


def test_pixels_that_are_not_uint8_or_do_not_match_the_shape_raise_a_clear_error():
    d = _random_logistic(shape=(1, 3, 2, 2))
    with pytest.raises(InvalidPixelsError, match="uint8"):
        d.log_prob(torch.zeros(1, 3, 2, 2))
    with pytest.raises(InvalidPixelsError, match="do not match"):
        d.log_prob(torch.zeros(1, 3, 2, 4, dtype=torch.uint8))
