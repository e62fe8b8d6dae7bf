"""p(x | z) with PixelCNN++'s channel conditioning: the likelihood, the model that predicts it, and its files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irec.checkpoint import load_model, save_model
from irec.codecs.encoding import PIXELS
from irec.codecs.lossless import LosslessCodec
from irec.models.exact import ONE, Tables
from irec.models.exact_logistic import ExactConditionedLogistic, ExactLogistic
from irec.models.logistic import ConditionedLogistic, DiscretizedLogistic, to_unit_interval
from irec.models.rvae import RVAE
from irec.training.runs import _start_from
from tests.models import small_lossless
from tests.roundtrip import assert_roundtrip


def random_likelihood(shape=(2, 3, 4, 5), seed=0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    loc = 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    log_scale = -3.0 + 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    coeff = torch.randn(shape, generator=g, dtype=torch.float64)
    return loc, log_scale, coeff


def pixels(shape=(2, 3, 4, 5), seed=1) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def on_grid(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 2**16) / 2**16


def conditioned_model(seed: int = 0) -> RVAE:
    """A smoke RVAE with a conditioned p(x|z) whose coefficients are not zero, and q unlike p (real latent bits)."""
    model = small_lossless(seed, pixel_channels="conditioned")
    with torch.no_grad():
        model.x_coeff.parametrizations.weight.original0.fill_(0.5)
        model.x_coeff.bias.copy_(torch.tensor([0.9, 0.4, 0.5]))
        for layer in model.up:
            layer.conv1.bias.add_(0.5 * torch.randn_like(layer.conv1.bias))
    return model.eval()


def test_zero_coefficients_give_the_independent_likelihood():
    loc, log_scale, coeff = random_likelihood()
    x = pixels()
    conditioned = ConditionedLogistic(loc, log_scale, torch.zeros_like(coeff))
    assert torch.equal(conditioned.log_prob(x), DiscretizedLogistic(loc, log_scale).log_prob(x))


def test_green_moves_with_red_and_blue_with_red_and_green():
    loc, log_scale, coeff = random_likelihood()
    x = pixels()
    got = ConditionedLogistic(loc, log_scale, coeff).given(x).loc
    scaled = to_unit_interval(x).to(torch.float64)
    assert torch.equal(got[:, 0], loc[:, 0])
    assert torch.allclose(got[:, 1], loc[:, 1] + coeff[:, 0] * scaled[:, 0])
    assert torch.allclose(got[:, 2], loc[:, 2] + coeff[:, 1] * scaled[:, 0] + coeff[:, 2] * scaled[:, 1])
    changed_blue = x.clone()
    changed_blue[:, 2] = 255 - changed_blue[:, 2]
    assert torch.equal(ConditionedLogistic(loc, log_scale, coeff).given(changed_blue).loc, got)


@pytest.mark.parametrize("exact", [False, True])
def test_the_decoders_channel_by_channel_distributions_are_the_encoders(exact):
    loc, log_scale, coeff = (on_grid(t) for t in random_likelihood())
    x = pixels()
    px = ExactConditionedLogistic(loc, log_scale, coeff, Tables()) if exact else ConditionedLogistic(loc, log_scale, coeff)
    encoder = px.given(x)
    assert isinstance(encoder, ExactLogistic if exact else DiscretizedLogistic)
    decoded = torch.zeros_like(x)  # what the decoder knows when it reaches each channel
    for c in range(3):
        decoder = px.channel(c, decoded)
        np.testing.assert_array_equal(decoder.probabilities(), encoder[:, c].probabilities())
        decoded[:, c] = x[:, c]
    if exact:  # every location on the fixed-point grid, as ExactLogistic needs
        assert torch.equal(encoder.loc * ONE, torch.round(encoder.loc * ONE))


def test_a_sharp_conditioned_distribution_samples_green_at_red_and_blue_at_green():
    shape = (1, 3, 6, 6)
    coeff = torch.zeros(shape, dtype=torch.float64)
    coeff[:, 0] = 1.0  # green = red
    coeff[:, 2] = 1.0  # blue = green
    px = ConditionedLogistic(torch.zeros(shape, dtype=torch.float64), torch.full(shape, -12.0, dtype=torch.float64),
                             coeff)
    px.loc[:, 0] = torch.linspace(-0.4, 0.4, 36, dtype=torch.float64).view(6, 6)
    sample = px.sample(torch.Generator().manual_seed(0))
    assert sample.dtype == torch.uint8
    assert torch.equal(sample[:, 1], sample[:, 0]) and torch.equal(sample[:, 2], sample[:, 0])
    assert len(torch.unique(sample[:, 0])) > 10
    assert torch.equal(px.median(), sample)


def test_a_conditioned_model_fine_tuned_from_an_independent_one_starts_as_that_model(tmp_path, shared_data):
    independent = small_lossless(0)
    save_model(independent, tmp_path / "independent.pt")
    conditioned = small_lossless(1, pixel_channels="conditioned")
    _start_from(conditioned, tmp_path / "independent.pt", tmp_path)
    x = torch.from_numpy(np.load(shared_data / "cifar10" / "cifar10_test.npz")["images"][:2].transpose(0, 3, 1, 2).copy())
    torch.manual_seed(3)
    expected = independent.negative_elbo(x).bpd
    torch.manual_seed(3)
    assert torch.equal(conditioned.negative_elbo(x).bpd, expected)
    loss, _ = conditioned.training_loss(x)
    loss.backward()  # the coefficients learn from the first step
    assert conditioned.x_coeff.parametrizations.weight.original0.grad.abs().sum() > 0


def test_fine_tuning_an_independent_model_from_a_conditioned_one_is_a_clear_error(tmp_path):
    save_model(small_lossless(0, pixel_channels="conditioned"), tmp_path / "conditioned.pt")
    with pytest.raises(ValueError, match="another architecture"):
        _start_from(small_lossless(0), tmp_path / "conditioned.pt", tmp_path)


def test_a_conditioned_models_files_decode_bit_exactly_at_any_size_near_the_ideal_rate(tmp_path, shared_data):
    save_model(conditioned_model(), tmp_path / "conditioned.pt")
    model, fingerprint = load_model(tmp_path / "conditioned.pt")
    codec = LosslessCodec(model, fingerprint)
    images = np.load(shared_data / "cifar10" / "cifar10_test.npz")["images"][:2]
    for image in (images[0], np.ascontiguousarray(images[1][:13, :21])):
        encoding = codec.encode(image)
        assert_roundtrip(lambda: (encoding.data, image), codec.decompress)
        assert encoding.bits[PIXELS] == pytest.approx(encoding.ideal_bits[PIXELS], rel=0.01, abs=64)
    # the coefficients matter: the same model with them at zero codes other pixel distributions
    plain = conditioned_model()
    with torch.no_grad():
        plain.x_coeff.parametrizations.weight.original0.zero_()
        plain.x_coeff.bias.zero_()
    assert LosslessCodec(plain, fingerprint).encode(images[0]).ideal_bits[PIXELS] != pytest.approx(
        codec.encode(images[0]).ideal_bits[PIXELS])
