"""Rate and distortion metrics: bits per dimension / pixel from real bytes, PSNR, MS-SSIM and its dB form.

Conventions follow the iREC paper (Flamich et al., NeurIPS 2020):
- Section 4 / Table 1 (lossless): rate in bits per dimension (bpd), one dimension = one sub-pixel,
  so an H x W RGB image has 3HW dimensions.
- Section 4 / Figure 4 (lossy Kodak): rate in bits per pixel (bpp = 8 * bytes / (H * W)), quality as
  PSNR (dB, RGB, peak 255) and MS-SSIM (Wang et al. 2003, five scales, computed with pytorch-msssim),
  with MS-SSIM also shown in decibels: -10 log10(1 - MS-SSIM).
Rates are always computed from the length of a real file, never from an estimate (CompressAI's
``bpp = sum(len(s)) * 8 / num_pixels``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

MS_SSIM_WIN_SIZE = 11  # Gaussian window of pytorch-msssim (and of Wang et al. 2003)
MS_SSIM_SCALES = 5  # number of scales, i.e. 4 downsamplings by 2
# pytorch-msssim asserts min(H, W) > (win_size - 1) * 2**(scales - 1) = 160 for the default 5 scales.
MS_SSIM_MIN_SIDE = (MS_SSIM_WIN_SIZE - 1) * 2 ** (MS_SSIM_SCALES - 1)

_warned_shapes: set[tuple[int, ...]] = set()


class MetricInputError(ValueError):
    """A metric was given arrays it cannot compare (different shapes, wrong dtype or range)."""


def bits_per_dim(n_bytes: int, shape: Sequence[int]) -> float:
    """Bits per dimension of a file of ``n_bytes`` bytes holding an array of ``shape`` (e.g. (H, W, 3))."""
    n_dims = math.prod(int(s) for s in shape)
    if n_dims <= 0:
        raise MetricInputError(f"bits_per_dim needs a non-empty shape, got {tuple(shape)}")
    if n_bytes < 0:
        raise MetricInputError(f"n_bytes must be >= 0, got {n_bytes}")
    return 8.0 * n_bytes / n_dims


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    """Bits per pixel (all colour channels together) of a file of ``n_bytes`` bytes for an H x W image."""
    if height <= 0 or width <= 0:
        raise MetricInputError(f"bits_per_pixel needs a positive image size, got {height} x {width}")
    if n_bytes < 0:
        raise MetricInputError(f"n_bytes must be >= 0, got {n_bytes}")
    return 8.0 * n_bytes / (height * width)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape != y.shape:
        raise MetricInputError(
            f"images differ in shape: {x.shape} vs {y.shape}; compare an image with its own decoding"
        )


def psnr(x: np.ndarray, y: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE), over all pixels and channels.

    ``data_range`` defaults to 255 for uint8 images and 1.0 for float images in [0, 1]. Identical images
    give ``inf``.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    _check_pair(x, y)
    if data_range is None:
        if x.dtype == np.uint8 and y.dtype == np.uint8:
            data_range = 255.0
        elif np.issubdtype(x.dtype, np.floating) and np.issubdtype(y.dtype, np.floating):
            data_range = 1.0
        else:
            raise MetricInputError(
                f"psnr cannot infer data_range for dtypes {x.dtype} and {y.dtype}; pass data_range explicitly"
            )
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


def ms_ssim_unavailable_reason(shape: Sequence[int]) -> str | None:
    """Why MS-SSIM cannot be computed for an (H, W[, C]) image, or None when it can."""
    if len(shape) not in (2, 3):
        return f"MS-SSIM needs an H x W or H x W x C image, got shape {tuple(shape)}"
    smaller_side = min(int(shape[0]), int(shape[1]))
    if smaller_side <= MS_SSIM_MIN_SIDE:
        return (
            f"image {shape[0]}x{shape[1]} too small for {MS_SSIM_SCALES}-scale MS-SSIM "
            f"(pytorch-msssim needs min side > (win_size-1)*2**{MS_SSIM_SCALES - 1} = {MS_SSIM_MIN_SIDE})"
        )
    return None


def ms_ssim(x_uint8: np.ndarray, y_uint8: np.ndarray) -> float:
    """Five-scale MS-SSIM of two uint8 H x W x C (or H x W) images, via pytorch-msssim, data range 255.

    Returns NaN (and logs a warning once per image size, with the reason) when the image is too small for
    five scales; see :func:`ms_ssim_unavailable_reason`.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x = np.asarray(x_uint8)
    y = np.asarray(y_uint8)
    _check_pair(x, y)
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise MetricInputError(f"ms_ssim takes uint8 images, got {x.dtype} and {y.dtype}; convert with (x*255).round()")
    reason = ms_ssim_unavailable_reason(x.shape)
    if reason is not None:
        if x.shape not in _warned_shapes:
            _warned_shapes.add(x.shape)
            log.warning("MS-SSIM is NaN: %s", reason)
        return math.nan

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        a = a[..., None] if a.ndim == 2 else a
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float32)[None]

    with torch.no_grad():
        value = _ms_ssim(to_tensor(x), to_tensor(y), data_range=255.0, size_average=True, win_size=MS_SSIM_WIN_SIZE)
    return float(value)


def ms_ssim_db(ms_ssim_value: float) -> float:
    """MS-SSIM in decibels, -10 log10(1 - MS-SSIM), as plotted in the iREC paper; inf for MS-SSIM = 1."""
    if math.isnan(ms_ssim_value):
        return math.nan
    if ms_ssim_value > 1.0 + 1e-12:
        raise MetricInputError(f"MS-SSIM cannot exceed 1, got {ms_ssim_value}")
    if ms_ssim_value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - ms_ssim_value)
