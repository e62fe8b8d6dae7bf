"""Weight-normalized convolutions, the building blocks of the ResNet VAE.

Weight normalization (Salimans & Kingma, 2016) writes each output filter as w = g * v / ||v||. Kingma et al. (2016,
"Improving variational inference with inverse autoregressive flow", Section 5 and appendix) build the ResNet VAE
that iREC uses for lossless coding (paper, Section 4.1; method note, Section 5) out of weight-normalized 3x3
convolutions; HiLLoC (Townsend et al., 2020) keeps the same layers. We use torch's own parametrization
(``torch.nn.utils.parametrizations.weight_norm``) rather than a hand-written one.

GDN / IGDN for the lossy model live in :mod:`irec.models.gdn`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def conv2d_wn(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Conv2d:
    """A weight-normalized ``Conv2d`` with "same" padding for odd kernels (so stride 2 halves even sizes exactly)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"conv2d_wn needs an odd kernel_size for symmetric padding, got {kernel_size}")
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
    nn.init.zeros_(conv.bias)
    return weight_norm(conv, dim=0)


def conv_transpose2d_wn(
    in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2
) -> nn.ConvTranspose2d:
    """A weight-normalized ``ConvTranspose2d`` that multiplies the spatial size by exactly ``stride``.

    The filter norm is taken per output channel (dim 1 of a transposed convolution's weight).
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"conv_transpose2d_wn needs an odd kernel_size, got {kernel_size}")
    padding = kernel_size // 2
    # out = (in - 1) * stride - 2 * padding + kernel_size + output_padding = stride * in
    output_padding = stride - kernel_size + 2 * padding
    conv = nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, output_padding=output_padding
    )
    nn.init.zeros_(conv.bias)
    conv = weight_norm(conv, dim=1)
    # The gain g of shape (1, C, 1, 1) comes out with strides (1, 1, 1, 1); give it the standard strides of its
    # gradient, or DistributedDataParallel warns and copies it every step.
    gain = conv.parametrizations.weight.original0
    gain.data = gain.data.clone(memory_format=torch.contiguous_format)
    return conv
