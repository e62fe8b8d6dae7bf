"""Datasets and image I/O for iREC (Flamich et al. 2020, Section 4: CIFAR-10, ImageNet32, Kodak, CLIC 2018).

- :mod:`irec.data.images`: 8-bit RGB image files in and out, pad to a multiple / crop back;
- :mod:`irec.data.download`: data folders, downloads and checksums;
- :mod:`irec.data.registry`: the datasets, their official sources, and which are present;
- :mod:`irec.data.datasets`: loaders returning named uint8 images;
- :mod:`irec.data.torch_datasets`: torch datasets for training and evaluation.
"""

from irec.data.datasets import (
    held_back_indices, load_cifar10, load_clic, load_folder, load_images, load_imagenet32, load_kodak, subset_indices,
)
from irec.data.download import ChecksumError, DatasetMissingError, RemoteFile
from irec.data.images import (
    ImageFormatError, centre_crop, crop_to, decode_image, downsample_area, pad_to_multiple, pixel_sha256, read_image,
    write_png,
)
from irec.data.registry import REGISTRY, DatasetInfo, dataset_status
from irec.data.torch_datasets import ImageArrayDataset, RandomCropDataset

__all__ = [
    "REGISTRY",
    "ChecksumError",
    "DatasetInfo",
    "DatasetMissingError",
    "ImageArrayDataset",
    "ImageFormatError",
    "RandomCropDataset",
    "RemoteFile",
    "centre_crop",
    "crop_to",
    "dataset_status",
    "decode_image",
    "downsample_area",
    "held_back_indices",
    "load_cifar10",
    "load_clic",
    "load_folder",
    "load_imagenet32",
    "load_images",
    "load_kodak",
    "pad_to_multiple",
    "pixel_sha256",
    "read_image",
    "subset_indices",
    "write_png",
]
