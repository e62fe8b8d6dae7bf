"""Speed settings of the training loop for a CUDA device (:class:`GpuOptions`), and the dataset held on the device.

Paper, section 4 (the models' training); the loop (:mod:`irec.training.loop`) takes them as ``train(..., gpu=)``.
All are off by default, so a CPU run computes exactly what it computed without them; they are not part of a run's
resumable state, so a run may resume with other ones (e.g. a CPU run continued on a GPU lease,
tools/gpu_train_lossless.sh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

MAX_DEVICE_DATA_BYTES = 32 * 2**30  # GpuOptions.data_on_device refuses datasets larger than this


@dataclass(frozen=True)
class GpuOptions:
    """Speed settings for a CUDA device, all off by default; none of them is part of the resumable state.

    ``autocast_bf16``, ``compile`` and ``tf32`` need a CUDA device and are a clear error elsewhere (a CPU run with
    them would silently compute something else or nothing faster). ``data_on_device`` works on any device and
    gives exactly the batches the DataLoader gives, so on the CPU it changes no number.
    """

    autocast_bf16: bool = False  # run the forward pass and the loss under torch.autocast(bfloat16); the backward
    # pass and the optimizer stay float32. Rounds activations (also the likelihood's means) to 8 mantissa bits
    compile: bool = False  # torch.compile the training step (model + loss); pays when the run is much longer than
    # the compile (a minute or two for the paper's 24-layer RVAE); graph breaks (the metrics' .item()) are allowed
    data_on_device: bool = False  # stack the dataset's items (uint8 tensors, which must not draw from torch's RNG)
    # into one tensor on the device once, and index each step's batch there: no DataLoader, no copies per step
    tf32: bool = False  # allow TensorFloat-32 in float32 matmuls and convolutions (10 mantissa bits on Ampere+)

    def check(self, device: torch.device) -> None:
        """Raise ValueError if an option needs CUDA and ``device`` is not a CUDA device."""
        if device.type != "cuda":
            wanted = [name for name in ("autocast_bf16", "compile", "tf32") if getattr(self, name)]
            if wanted:
                raise ValueError(
                    f"GpuOptions {', '.join(wanted)} need a CUDA device, but this run trains on {device}; "
                    "turn them off on the CPU (data_on_device works anywhere)"
                )


def device_images(dataset: Dataset, device: torch.device) -> torch.Tensor:
    """Every item of ``dataset`` (uint8 tensors of one shape) stacked into one tensor on ``device``."""
    first = dataset[0]
    if not (isinstance(first, torch.Tensor) and first.dtype == torch.uint8):
        raise ValueError(
            f"GpuOptions.data_on_device needs a dataset of uint8 tensors, but its items are {type(first).__name__}"
            + (f" of {first.dtype}" if isinstance(first, torch.Tensor) else "")
        )
    total = len(dataset) * first.numel()
    if total > MAX_DEVICE_DATA_BYTES:
        raise ValueError(
            f"GpuOptions.data_on_device: the dataset's {len(dataset)} items take {total / 2**30:.1f} GiB, more than "
            f"{MAX_DEVICE_DATA_BYTES / 2**30:.0f} GiB; use the DataLoader (data_on_device=False)"
        )
    images = getattr(dataset, "images", None)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:  # ImageArrayDataset: NHWC
        return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()
    out = torch.empty((len(dataset), *first.shape), dtype=torch.uint8, device=device)
    for index in range(len(dataset)):
        out[index] = dataset[index]
    return out
