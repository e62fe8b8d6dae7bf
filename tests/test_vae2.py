"""Tests for irec.models.vae2: shapes, the staged coding API, the rate-distortion loss and the presets."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_msssim import ms_ssim

from irec import checkpoint
from irec.distributions import DiagGaussian
from irec.models.vae2 import (
    ConfigError,
    ImageShapeError,
    TwoLevelVAE,
    VAE2Config,
    latent_hw,
    ms_ssim_distortion,
    uint8_to_float,
)
from irec.settings import LOSSY_PRESETS as PRESETS
from irec.settings import MS_SSIM_BETAS, MSE_BETAS
from irec.settings import lossy_preset as preset
from irec.training.loop import train
from tests.models import small_lossy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images (a low-resolution pattern upsampled), so there is structure to learn."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, h // 16, w // 16, generator=gen)
    fine = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (255 * fine).round().to(torch.uint8)


@pytest.mark.parametrize("hw", [(64, 64), (128, 192)])
def test_every_stage_has_the_shape_of_its_level(hw):
    model = small_lossy()
    n, m = model.config.n_channels, model.config.m_channels
    (h1, w1), (h2, w2) = latent_hw(hw)
    assert (h1, w1, h2, w2) == (hw[0] // 16, hw[1] // 16, hw[0] // 64, hw[1] // 64)
    x = uint8_to_float(_images(2, *hw))
    enc = model.analysis(x)
    assert enc.loc.shape == enc.raw_scale.shape == (2, n, h1, w1)
    q2 = model.posterior_z2(enc)
    p2 = model.prior_z2((h2, w2), batch_size=2)
    assert isinstance(q2, DiagGaussian) and q2.shape == p2.shape == (2, m, h2, w2)
    p1 = model.prior_z1(q2.sample())
    q1 = model.posterior_z1(enc, p1)
    assert p1.shape == q1.shape == (2, n, h1, w1)
    assert model.synthesis(q1.sample()).shape == (2, 3, *hw)


def test_the_staged_api_and_training_loss_give_the_same_loss_for_the_same_noise():
    model = small_lossy(beta=0.03)
    x_uint8 = _images(2, 64, 128)
    loss, metrics = model.training_loss(x_uint8, generator=torch.Generator().manual_seed(7))

    gen = torch.Generator().manual_seed(7)
    x = x_uint8.float() / 255
    enc = model.analysis(x)
    q2 = model.posterior_z2(enc)
    p2 = model.prior_z2(q2.shape[-2:], batch_size=2)
    z2 = q2.sample(gen)
    p1 = model.prior_z1(z2)
    q1 = model.posterior_z1(enc, p1)
    x_hat = model.synthesis(q1.sample(gen))
    kl_nats = q1.kl(p1).sum() / 2 + q2.kl(p2).sum() / 2
    bpp = kl_nats / (64 * 128 * math.log(2))
    mse = ((x_hat - x) ** 2).mean() * 255**2
    torch.testing.assert_close(loss, 0.03 * mse + bpp)
    assert metrics["bpp"] == pytest.approx(bpp.item(), rel=1e-5)
    assert metrics["mse"] == pytest.approx(mse.item(), rel=1e-5)
    assert metrics["bpp"] == pytest.approx(metrics["bpp_z1"] + metrics["bpp_z2"], rel=1e-6)
    # a different noise draw gives a different loss: the test above really compares samples
    other, _ = model.training_loss(x_uint8, generator=torch.Generator().manual_seed(8))
    assert other.item() != loss.item()


def test_the_kl_of_both_levels_is_non_negative_everywhere():
    model = small_lossy(seed=3)
    with torch.no_grad():  # make the posterior differ from the prior a lot
        for p in model.parameters():
            p.mul_(3.0)
    x = uint8_to_float(_images(2, 128, 128, seed=1))
    enc = model.analysis(x)
    q2 = model.posterior_z2(enc)
    p2 = model.prior_z2(q2.shape[-2:], batch_size=2)
    p1 = model.prior_z1(q2.sample())
    q1 = model.posterior_z1(enc, p1)
    kl2, kl1 = q2.kl(p2), q1.kl(p1)
    assert kl2.min() >= -1e-5 and kl1.min() >= -1e-5
    assert kl2.sum() > 1.0 and kl1.sum() > 1.0


def test_the_prior_of_z2_is_iid_per_channel():
    p2 = small_lossy().prior_z2((3, 2), batch_size=4)
    assert p2.shape == (4, 8, 3, 2)
    for t in (p2.loc, p2.scale):
        torch.testing.assert_close(t, t[:1, :, :1, :1].expand_as(t))
    assert p2.loc[0, :, 0, 0].unique().numel() > 1  # but channels differ


def test_the_z1_posterior_and_prior_depend_on_the_z2_they_are_given():
    model = small_lossy()
    enc = model.analysis(uint8_to_float(_images(1, 64, 64)))
    z2 = model.posterior_z2(enc).loc
    p1a, p1b = model.prior_z1(z2), model.prior_z1(z2 + 1.0)
    q1a, q1b = model.posterior_z1(enc, p1a), model.posterior_z1(enc, p1b)
    assert not torch.allclose(p1a.loc, p1b.loc) and not torch.allclose(q1a.loc, q1b.loc)


def test_beta_is_honoured_and_only_weights_the_distortion():
    model_a = small_lossy(seed=5, beta=0.001)
    model_b = small_lossy(seed=5, beta=0.05)
    x = _images(2, 64, 64)
    terms_a = model_a.rate_distortion(uint8_to_float(x), generator=torch.Generator().manual_seed(1))
    terms_b = model_b.rate_distortion(uint8_to_float(x), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(terms_a.bpp, terms_b.bpp)
    torch.testing.assert_close(terms_a.distortion, terms_b.distortion)
    torch.testing.assert_close(terms_a.loss, 0.001 * terms_a.distortion + terms_a.bpp)
    torch.testing.assert_close(terms_b.loss, 0.05 * terms_b.distortion + terms_b.bpp)
    # the gradient of the synthesis transform scales with beta (the rate does not reach it)
    grads = []
    for model, terms in ((model_a, terms_a), (model_b, terms_b)):
        terms.loss.backward()
        grads.append(model.synthesis_body[-1].bias.grad.clone())
    torch.testing.assert_close(grads[1], grads[0] * 50, rtol=1e-3, atol=1e-6)


def test_twenty_adam_steps_reduce_the_loss_on_a_fixed_batch():
    smoke = preset("smoke")
    model = small_lossy(seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=smoke.train.lr)
    x = _images(smoke.train.batch_size, smoke.crop_size, smoke.crop_size, seed=4)
    losses = []
    for step in range(20):
        loss, _ = model.training_loss(x, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3


def test_the_ms_ssim_loss_matches_pytorch_msssim_and_shrinks_its_window_for_small_crops():
    weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    x = uint8_to_float(_images(2, 192, 192))
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    expected = 255 * (1 - ms_ssim(y, x, data_range=1.0, weights=list(weights)))
    torch.testing.assert_close(ms_ssim_distortion(x, y, weights), expected)
    for side in (64, 128):
        small_x, small_y = x[..., :side, :side], y[..., :side, :side]
        d = ms_ssim_distortion(small_x, small_y, weights)
        assert 0 < d.item() < ms_ssim_distortion(small_x, small_x.flip(-1), weights).item()
        assert ms_ssim_distortion(small_x, small_x, weights).item() == pytest.approx(0, abs=1e-3)
    assert ms_ssim_distortion(x[..., :33, :33], y[..., :33, :33], weights).item() > 0
    with pytest.raises(ImageShapeError, match="33 px"):
        ms_ssim_distortion(x[..., :32, :32], y[..., :32, :32], weights)
    loss, metrics = small_lossy(distortion="ms_ssim").training_loss(_images(2, 64, 64))
    assert 0 < metrics["distortion"] <= 255 and math.isfinite(loss.item())


def test_bad_inputs_raise_clear_errors():
    model = small_lossy()
    with pytest.raises(ImageShapeError, match="uint8"):
        model.training_loss(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ImageShapeError, match="multiples of 64"):
        model.training_loss(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    with pytest.raises(ImageShapeError, match=r"\(B, 3, H, W\)"):
        model.training_loss(torch.zeros(64, 64, 3, dtype=torch.uint8))
    with pytest.raises(ImageShapeError, match="float"):
        model.analysis(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="beta"):
        VAE2Config(beta=0.0)
    with pytest.raises(ConfigError, match="distortion"):
        VAE2Config(distortion="psnr")
    with pytest.raises(ConfigError, match="unknown lossy preset"):
        preset("huge")


def test_the_presets_hold_the_paper_settings_and_usable_crops():
    paper = preset("paper")
    assert (paper.model.n_channels, paper.model.m_channels) == (196, 128)
    train_numbers = (paper.train.optimizer, paper.train.lr, paper.train.batch_size, paper.train.n_steps)
    assert train_numbers == ("adam", 1e-4, 8, 200_000)
    assert paper.crop_size == 256
    assert MSE_BETAS == (0.001, 0.003, 0.01, 0.03, 0.05) and MS_SSIM_BETAS == (0.003, 0.01, 0.03, 0.08)
    for p in PRESETS.values():
        assert p.crop_size % 64 == 0 and p.train.optimizer == "adam"
        assert p.config(0.08, "ms_ssim").beta == 0.08 and p.config(0.08, "ms_ssim").distortion == "ms_ssim"


def test_the_smoke_preset_trains_through_irec_train_and_reloads(tmp_path):
    smoke = preset("smoke")
    model = small_lossy(seed=1)
    images = [_images(1, smoke.crop_size, smoke.crop_size, seed=s)[0] for s in range(4)]
    result = train(model, None, images, smoke.train, tmp_path / "run")
    assert result.finished and result.step == smoke.train.n_steps
    assert math.isfinite(result.metrics["loss"]) and result.metrics["bpp"] > 0
    loaded, _ = checkpoint.load_model(result.model_path)
    assert isinstance(loaded, TwoLevelVAE) and loaded.config == model.config
    with torch.no_grad():
        loss, _ = loaded.training_loss(torch.stack(images))
    assert math.isfinite(loss.item())
