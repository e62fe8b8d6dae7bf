"""Files decode bit for bit under another CPU's kernels and thread counts: the exact networks' promise.

Files are written here with the default kernels by the shipped models; each variation then runs ``irec
decompress`` in a fresh process with the environment another machine would give it (PyTorch's portable or AVX2
kernels, oneDNN capped at SSE4.1 or AVX2, one or two threads), and the pixels must be the encoder's: the image
itself for lossless files, the encoder's reconstruction for lossy ones. With float32 networks every lossless file
failed under the portable kernels and lossy ones came back with values off by one (docs/cross-device.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from irec.codecs import make_codec
from irec.data import load_cifar10, load_kodak, read_image

VARIATIONS = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads-1": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
    "threads-2": {"OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"},
}


@pytest.fixture(scope="module")
def written(shared_data, tmp_path_factory) -> tuple:
    """Files of CIFAR-10 images, odd-sized crops and photo crops, and the pixels each must decode to."""
    folder = tmp_path_factory.mktemp("anywhere")
    cifar = load_cifar10("test")[0]
    photo = load_kodak(limit=1)[0][1]
    cases = {
        "lossless-cifar10": {"cifar-0": cifar[0], "cifar-1": cifar[1], "crop-33x17": photo[100:133, 200:217],
                             "crop-5x2": photo[:5, :2], "photo-64x48": photo[300:364, 400:448]},
        "lossy-mse-0.01": {"photo-128x128": photo[128:256, 256:384], "crop-37x70": photo[:37, 300:370]},
    }
    expected = {}
    for name, images in cases.items():
        codec, _ = make_codec(name)
        for stem, image in images.items():
            encoding = codec.encode(np.ascontiguousarray(image))
            (folder / f"{name}-{stem}.irec").write_bytes(encoding.data)
            expected[f"{name}-{stem}"] = encoding.image  # lossless: the image; lossy: the reconstruction
    return folder, expected


@pytest.mark.parametrize("variation", list(VARIATIONS))
def test_files_written_with_the_default_kernels_decode_exactly_under(variation, written, tmp_path):
    folder, expected = written
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", **VARIATIONS[variation]}
    subprocess.run([sys.executable, "-m", "irec", "decompress", "--workers", "1", str(folder), str(tmp_path)],
                   check=True, env=env, timeout=600, capture_output=True)
    for stem, pixels in expected.items():
        decoded = read_image(tmp_path / f"{stem}.png")
        assert decoded.shape == pixels.shape and np.array_equal(decoded, pixels), f"{stem} under {variation}"
