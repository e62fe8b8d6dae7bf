"""Tests of the lossless ResNet VAE: the incremental top-down API the coder relies on, the loss and the presets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from irec.models.logistic import InvalidPixelsError
from irec.models.rvae import RVAE, RVAEConfig
from irec.settings import LOSSLESS_PRESETS as PRESETS
from irec.settings import lossless_preset as preset
from tests.models import small_lossless

TINY = RVAEConfig(n_layers=4, hidden=12, latent_channels=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(config: RVAEConfig = TINY, seed: int = 0) -> RVAE:
    torch.manual_seed(seed)
    model = RVAE(config)
    with torch.no_grad():  # move the generative terms away from their zero-bias start so levels interact
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _images(n=2, h=8, w=6, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8))


@torch.no_grad()
def test_the_decoder_side_rebuilds_the_encoders_priors_and_pixel_likelihood_from_the_coded_latents():
    model, x = _model(), _images()
    up = model.bottom_up(x)
    enc, dec = model.top_down_init(2, (8, 6)), model.top_down_init(2, (8, 6))
    g = torch.Generator().manual_seed(7)
    for level in range(model.n_levels):
        p_enc, q = model.level_distributions(enc, level, up)
        p_dec, none = model.level_distributions(dec, level)
        assert none is None
        assert torch.equal(p_enc.loc, p_dec.loc) and torch.equal(p_enc.scale, p_dec.scale)
        z = q.sample(g)  # stands in for the coded sample
        enc, dec = model.top_down_step(enc, level, z), model.top_down_step(dec, level, z)
    px_enc, px_dec = model.pixel_params(enc), model.pixel_params(dec)
    assert torch.equal(px_enc.loc, px_dec.loc) and torch.equal(px_enc.log_scale, px_dec.log_scale)


@torch.no_grad()
def test_each_level_depends_on_the_coded_samples_above_it_and_not_on_those_below():
    model, x = _model(), _images()
    up = model.bottom_up(x)

    def priors(z2_shift: float) -> list[torch.Tensor]:
        state, locs = model.top_down_init(2, (8, 6)), []
        for level in range(model.n_levels):
            p, q = model.level_distributions(state, level, up)
            locs.append(p.loc)
            state = model.top_down_step(state, level, q.loc + (z2_shift if level == 2 else 0.0))
        return locs

    a, b = priors(0.0), priors(1.0)
    for level in range(3):
        assert torch.equal(a[level], b[level])
    assert not torch.allclose(a[3], b[3])


@torch.no_grad()
def test_the_posterior_uses_the_inference_terms_of_the_image():
    model = _model()
    state = model.top_down_init(2, (8, 6))
    _, q1 = model.level_distributions(state, 0, model.bottom_up(_images(seed=1)))
    _, q2 = model.level_distributions(state, 0, model.bottom_up(_images(seed=2)))
    assert not torch.allclose(q1.loc, q2.loc)


def test_levels_must_be_coded_top_down_in_order():
    model = _model()
    state = model.top_down_init(1, (4, 4))
    with pytest.raises(ValueError, match="top-down in order"):
        model.level_distributions(state, 1)
    with pytest.raises(ValueError, match="all 4 levels"):
        model.pixel_params(state)
    with pytest.raises(ValueError, match="does not fit level 0"):
        model.top_down_step(state, 0, torch.zeros(1, 5, 2, 2))


@pytest.mark.parametrize("size", [(2, 2), (6, 10), (32, 32)])
def test_the_model_works_for_any_even_image_size(size):
    model, x = _model(), _images(1, *size)
    elbo = model.negative_elbo(x)
    assert elbo.kl.shape == (1, TINY.n_layers) and bool(torch.all(torch.isfinite(elbo.bpd)))
    assert model.sample(1, size).shape == (1, 3, *size)


def test_odd_sizes_and_non_uint8_images_raise_a_clear_error():
    model = _model()
    with pytest.raises(InvalidPixelsError, match="even"):
        model.bottom_up(_images(1, 5, 6))
    with pytest.raises(InvalidPixelsError, match="uint8"):
        model.bottom_up(_images(1, 4, 4).float())
    with pytest.raises(InvalidPixelsError, match="pad"):
        model.top_down_init(1, (4, 7))


def test_without_free_bits_the_analytic_training_loss_is_the_honest_negative_elbo():
    model, x = _model(dataclasses.replace(TINY, free_bits=0.0, kl_estimate="analytic")), _images(3)
    torch.manual_seed(11)
    loss, metrics = model.training_loss(x)
    torch.manual_seed(11)
    elbo = model.negative_elbo(x)
    assert loss.item() == pytest.approx(elbo.bpd.mean().item(), rel=1e-5)
    assert metrics["elbo_bpd"] == pytest.approx(metrics["nll_bpd"] + metrics["kl_bpd"], rel=1e-5)


def test_a_kl_weight_weighs_the_kl_in_the_training_loss_and_leaves_the_reported_elbo_alone():
    base = dataclasses.replace(TINY, free_bits=0.0, kl_estimate="analytic")
    x = _images(3)
    results = []
    for weight in (1.0, 1.5):
        torch.manual_seed(11)
        results.append(_model(dataclasses.replace(base, kl_weight=weight)).training_loss(x))
    (loss1, m1), (loss2, m2) = results
    assert m2["elbo_bpd"] == pytest.approx(m1["elbo_bpd"], rel=1e-6)
    assert loss2.item() == pytest.approx(m1["nll_bpd"] + 1.5 * m1["kl_bpd"], rel=1e-5)
    with pytest.raises(ValueError, match="kl_weight"):
        dataclasses.replace(base, kl_weight=0.0)


@pytest.mark.parametrize("kl_estimate", ["analytic", "sample"])
def test_free_bits_floor_each_channels_kl_at_lambda_nats(kl_estimate):
    free_bits = 50.0  # far above any channel's KL here, so every channel costs exactly lambda
    model, x = _model(dataclasses.replace(TINY, free_bits=free_bits, kl_estimate=kl_estimate)), _images(2)
    torch.manual_seed(3)
    loss, metrics = model.training_loss(x)
    floor = TINY.n_layers * TINY.latent_channels * free_bits / (x[0].numel() * math.log(2.0))
    assert loss.item() == pytest.approx(metrics["nll_bpd"] + floor, rel=1e-5)
    assert metrics["kl_bpd"] < floor


def test_gradients_of_the_training_loss_reach_every_parameter():
    model = _model(dataclasses.replace(TINY, pixel_scale="per_subpixel")).train()
    loss, _ = model.training_loss(_images(2))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not bool(torch.any(p.grad != 0))]
    assert missing == []


def test_a_per_subpixel_scale_varies_across_subpixels_and_a_global_one_does_not():
    x = _images(1)
    for pixel_scale, varies in [("global", False), ("per_subpixel", True)]:
        model = _model(dataclasses.replace(TINY, pixel_scale=pixel_scale))
        levels, px = model.posterior_pass(x)
        assert (torch.unique(px.log_scale).numel() > 1) == varies


def test_a_few_training_steps_on_cifar10_images_lower_the_loss(shared_data):
    images = np.load(shared_data / "cifar10" / "cifar10_test.npz")["images"][:16]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    model = small_lossless(seed=0).train()
    optimizer = torch.optim.Adamax(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss, _ = model.training_loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def test_the_paper_preset_has_the_papers_settings():
    paper = preset("paper")
    assert (paper.model.n_layers, paper.model.hidden, paper.model.latent_channels) == (24, 160, 32)
    assert paper.model.free_bits == 0.1 and paper.model.kl_estimate == "sample"
    t = paper.train
    assert (t.optimizer, t.lr, t.batch_size, t.n_steps, t.ema_decay) == ("adamax", 1e-3, 8, 500_000, 0.999)
    assert t.lr_milestones == (50_000, 100_000, 150_000, 200_000) and t.lr_gamma == 0.3
    assert set(PRESETS) == {"paper", "cpu", "cpu-rate", "photos", "photos-cond", "photos-rate", "photos-2x", "smoke"}


def test_unknown_presets_and_invalid_configs_raise_a_clear_error():
    with pytest.raises(ValueError, match="unknown lossless preset"):
        preset("huge")
    with pytest.raises(ValueError, match="kl_estimate"):
        RVAEConfig(kl_estimate="mc")
    with pytest.raises(ValueError, match="free_bits"):
        RVAEConfig(free_bits=-1.0)
