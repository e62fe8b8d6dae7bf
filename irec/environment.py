"""What this machine is, which datasets it has, and whether the coder works here (notebook 00).

Provenance for every run of the suite (non-negotiable 3: our numbers carry what produced them), and an early,
clear failure when a dataset that a profile needs is missing (non-negotiable 2).
"""

from __future__ import annotations

import platform
import sys

import torch

from irec import provenance
from irec.data import DatasetMissingError, dataset_status
from irec.paths import cache_root, data_root

# The distributions whose versions a run records.
LIBRARIES = (
    "torch", "numpy", "numba", "constriction", "imagecodecs", "pillow", "pillow-heif", "pytorch-msssim",
    "scikit-image", "scipy", "pandas", "matplotlib", "seaborn", "papermill", "ipywidgets", "tqdm", "tensorboard",
)

# Datasets each profile reads. ImageNet32 is not required by smoke/cpu: it cannot be downloaded here, and the
# results table says so in its column instead.
REQUIRED = {
    "smoke": ("kodak", "cifar10"),
    "cpu": ("kodak", "cifar10"),
    "paper": ("kodak", "cifar10", "imagenet32", "clic"),
}


def required_datasets(profile: str) -> tuple[str, ...]:
    """The datasets a profile of the suite needs."""
    if profile not in REQUIRED:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(REQUIRED)}")
    return REQUIRED[profile]


def report() -> dict:
    """Device, platform, threads, paths, commit and library versions."""
    return {
        "git_commit": provenance.git_commit(),
        "device": provenance.device_description(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "data_root": str(data_root()),
        "cache_root": str(cache_root()),
        "timestamp": provenance.now_iso(),
        "versions": {name: provenance.library_version(name) for name in LIBRARIES},
    }


def check_required(names: tuple[str, ...]) -> list[str]:
    """Raise :class:`DatasetMissingError` naming the folder and URL of the first missing dataset."""
    rows = {row["name"]: row for row in dataset_status()}
    for name in names:
        row = rows[name]
        if not row["present"]:
            raise DatasetMissingError(
                f"dataset {name!r} is missing: fill {row['path']} from {row['url']} ({row['note']})"
            )
    return list(names)


def coder_roundtrip(seed: int = 0) -> dict:
    """Code a small synthetic latent and decode it; report sizes and that the sample is rebuilt exactly."""
    from irec.coder import compress_latent, decompress_latent
    from irec.coder.synthetic import synthetic_pair

    pair = synthetic_pair((8, 16, 16), 200.0, 0.1, seed)
    data, z = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, seed=seed)
    exact = torch.equal(decompress_latent(data, pair.p_loc, pair.p_scale), z)
    if not exact:
        raise RuntimeError("the coder's round trip is not exact on this machine: please report it")
    kl_bits = pair.kl_nats() / 0.6931471805599453
    return {"kl_bits (ideal)": round(kl_bits, 1), "file_bits": 8 * len(data), "exact": exact}
