"""irec.metrics: rates from byte counts, PSNR, MS-SSIM and its dB form, against known values."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irec import metrics


def test_bits_per_dim_counts_every_subpixel_as_one_dimension():
    assert metrics.bits_per_dim(3, (1, 1, 3)) == 8.0
    assert metrics.bits_per_dim(1536, (32, 32, 3)) == pytest.approx(4.0)


def test_bits_per_pixel_counts_all_channels_of_a_pixel_together():
    assert metrics.bits_per_pixel(3, 1, 1) == 24.0
    assert metrics.bits_per_pixel(49152, 512, 768) == pytest.approx(1.0)


@given(n_bytes=st.integers(0, 10**7), height=st.integers(1, 2000), width=st.integers(1, 2000))
@settings(max_examples=50, deadline=None)
def test_bpp_of_an_rgb_image_is_three_times_its_bpd(n_bytes, height, width):
    assert metrics.bits_per_pixel(n_bytes, height, width) == pytest.approx(
        3 * metrics.bits_per_dim(n_bytes, (height, width, 3))
    )


def test_rates_of_empty_images_or_negative_sizes_raise_a_clear_error():
    with pytest.raises(ValueError, match="non-empty shape"):
        metrics.bits_per_dim(10, (0, 5, 3))
    with pytest.raises(ValueError, match="positive image size"):
        metrics.bits_per_pixel(10, 0, 5)
    with pytest.raises(ValueError, match="n_bytes"):
        metrics.bits_per_dim(-1, (2, 2, 3))


def test_psnr_of_uint8_images_with_mse_one_is_20_log10_255():
    x = np.full((8, 8, 3), 100, np.uint8)
    y = x + np.uint8(1)
    assert metrics.psnr(x, y) == pytest.approx(20 * math.log10(255))


def test_psnr_of_float_images_uses_a_peak_of_one():
    x = np.zeros((4, 4, 3))
    y = np.full((4, 4, 3), 0.1)  # MSE = 0.01
    assert metrics.psnr(x, y) == pytest.approx(20.0)
    assert metrics.psnr(x, y, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2.0))


def test_psnr_of_identical_images_is_infinite():
    x = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert metrics.psnr(x, x.copy()) == math.inf


def test_psnr_of_images_of_different_shapes_raises_a_clear_error():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_psnr_of_mixed_dtypes_asks_for_an_explicit_data_range():
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32))


def test_ms_ssim_of_identical_images_is_one(rng):
    x = rng.integers(0, 256, (176, 192, 3), dtype=np.uint8)
    assert metrics.ms_ssim(x, x.copy()) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_falls_as_noise_grows_and_stays_below_one(rng):
    x = np.clip(np.add.outer(np.arange(192), np.arange(192))[..., None] / 2.0, 0, 255).repeat(3, 2).astype(np.uint8)
    values = []
    for sigma in (2, 10, 40):
        noisy = np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)
        values.append(metrics.ms_ssim(x, noisy))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0


def test_ms_ssim_of_an_image_too_small_for_five_scales_is_nan_with_a_logged_reason(caplog):
    x = np.zeros((32, 32, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="irec.metrics"):
        metrics._warned_shapes.discard(x.shape)
        assert math.isnan(metrics.ms_ssim(x, x))
    assert "too small" in caplog.text and "160" in caplog.text
    assert metrics.ms_ssim_unavailable_reason((160, 500, 3)) is not None
    assert metrics.ms_ssim_unavailable_reason((161, 161, 3)) is None


def test_ms_ssim_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        metrics.ms_ssim(np.zeros((200, 200, 3)), np.zeros((200, 200, 3)))


def test_ms_ssim_db_of_0_99_is_20_db():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)


def test_ms_ssim_db_of_one_is_infinite_and_of_nan_is_nan():
    assert metrics.ms_ssim_db(1.0) == math.inf
    assert math.isnan(metrics.ms_ssim_db(math.nan))
    with pytest.raises(ValueError, match="exceed 1"):
        metrics.ms_ssim_db(1.5)
