"""torch datasets over uint8 images: whole images for evaluation, seeded random crops for training.

Flamich et al. 2020, Section 4 / docs/irec-method.md Section 5: the lossless RVAE trains on 32x32 images
(CIFAR-10, ImageNet32) and the lossy VAE on random 256x256 crops of CLIC 2018 professional train; here the
crops can come from the natural-photo stand-ins of the prepared data folder, with an optional area downsample for the
JPEG sources (docs/data.md). Items are uint8 (3, H, W) tensors; the model scales them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from irec.data.images import check_rgb_uint8, downsample_area


class ImageArrayDataset(Dataset):
    """The images of a uint8 (N, H, W, 3) array, each as a uint8 (3, H, W) tensor."""

    def __init__(self, images: np.ndarray):
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"images must be a uint8 (N, H, W, 3) numpy array, got {got}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(2, 0, 1)))


class RandomCropDataset(Dataset):
    """``length`` random ``crop`` x ``crop`` patches of a list of (H, W, 3) uint8 images, half of them flipped.

    Item ``i`` is a pure function of ``(seed, i)``: an image chosen uniformly, a uniform crop position and a
    horizontal flip with probability 1/2, drawn from ``numpy.random.default_rng((seed, i))``. So any worker
    order gives the same data; for fresh crops in a new epoch, build the dataset with another seed.
    ``downsample`` > 1 first box-averages every image by that factor (:func:`downsample_area`; lossy, meant
    for JPEG training photos such as sun_hays80).
    """

    def __init__(
        self, images: Sequence[np.ndarray], crop: int, length: int, seed: int = 0, *, downsample: int = 1,
        flip: bool = True,
    ):
        if not isinstance(crop, int) or crop < 1:
            raise ValueError(f"crop must be a positive integer, got {crop!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if len(images) == 0:
            raise ValueError("RandomCropDataset needs at least one image")
        prepared = []
        for k, image in enumerate(images):
            check_rgb_uint8(image, f"image {k}")
            image = downsample_area(image, downsample) if downsample != 1 else image
            if min(image.shape[:2]) < crop:
                raise ValueError(
                    f"image {k} is {image.shape[0]}x{image.shape[1]} (after a {downsample}x downsample), smaller "
                    f"than the {crop}x{crop} crop; drop it or use a smaller crop"
                )
            prepared.append(image)
        self.images = prepared
        self.crop, self.length, self.seed, self.flip = crop, length, seed, flip

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} crops")
        rng = np.random.default_rng((self.seed, index % self.length))
        image = self.images[rng.integers(len(self.images))]
        y = rng.integers(image.shape[0] - self.crop + 1)
        x = rng.integers(image.shape[1] - self.crop + 1)
        patch = image[y : y + self.crop, x : x + self.crop]
        if self.flip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))
