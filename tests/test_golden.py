"""Golden files pin the bitstream format: committed files must still decode to their committed hashes, and the
encoder must still write them byte for byte.

A file of the previous format (``v3-lossless.irec``, float32 networks) is kept to check that it is refused with a
clear error. Four cases: a fixed-seed :func:`irec.coder.compress_latent` output, one small file per image codec
written with the shipped models (the lossy one at its default setting, the lossless ones at the setting pinned
below, so that a new default does not move the format's files), and a tiled lossless file
(:mod:`irec.codecs.tiles`, tiles of 16 pixels). ``tests/golden/golden.json`` holds each file's sha256 and the
sha256 of what it decodes to. A deliberate change of the format or of the arithmetic regenerates them with

    IREC_REGENERATE_GOLDEN=1 ./run_tests.sh tests/test_golden.py

and the diff of ``golden.json`` then shows what moved (commit it with the change that moved it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from irec.coder import CoderParams, compress_latent, decompress_latent

GOLDEN = Path(__file__).parent / "golden"
# The lossless coder setting of the golden files (N = 735 in their headers).
GOLDEN_LOSSLESS_PARAMS = CoderParams(kl_per_step=6.0, n_beams=20, extra_samples=1.1, block_size=384, seed=42)
REGENERATE = os.environ.get("IREC_REGENERATE_GOLDEN") == "1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, textured uint8 RGB image made from a seed (no data taken from elsewhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([np.sin(xx / 7 + c) * np.cos(yy / 5 - c) for c in range(3)], axis=-1) * 80 + 128
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _latents() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    shape = (1, 4, 6, 5)
    q_loc, p_loc = torch.randn(shape, generator=g), torch.zeros(shape)
    q_scale = 0.3 + 0.2 * torch.rand(shape, generator=g)
    return q_loc, q_scale, p_loc, torch.ones(shape)


def _expected() -> dict:
    path = GOLDEN / "golden.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _check(name: str, data: bytes, decoded_sha256: str, decode) -> None:
    """Compare a freshly encoded file and the committed one's decode with golden.json (or regenerate both)."""
    path = GOLDEN / f"{name}.irec"
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(data)
        expected = _expected()
        expected[name] = {"file_sha256": _sha256(data), "n_bytes": len(data), "decoded_sha256": decoded_sha256}
        (GOLDEN / "golden.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
        return
    expected = _expected()[name]
    committed = path.read_bytes()
    assert _sha256(committed) == expected["file_sha256"], f"{path} is not the file golden.json pins"
    assert _sha256(decode(committed)) == expected["decoded_sha256"], "the committed file decodes to other values"
    assert len(data) == expected["n_bytes"] and _sha256(data) == expected["file_sha256"], (
        f"the encoder now writes other bytes for {name} ({len(data)} against {expected['n_bytes']})")


def test_the_golden_latent_file_still_decodes_and_is_still_written():
    q_loc, q_scale, p_loc, p_scale = _latents()
    data, z = compress_latent(q_loc, q_scale, p_loc, p_scale, kl_per_step=3.0, n_beams=10, extra_samples=1.0,
                              block_size=60, seed=3)
    _check("latent", data, _sha256(z.numpy().tobytes()), lambda d: decompress_latent(d, p_loc, p_scale).numpy().tobytes())


def _codec(name: str):
    from irec.codecs import make_codec

    return make_codec(name)[0]


def _golden_lossless_codec(**options):
    """The lossless codec with the coder setting the golden files were written with (the default until B = 100)
    and the codec's other ``options`` (e.g. ``tile_size``)."""
    codec = _codec("lossless-cifar10")
    return type(codec)(codec.model, codec.fingerprint, GOLDEN_LOSSLESS_PARAMS, **options)


def test_the_golden_lossless_file_still_decodes_and_is_still_written():
    codec = _golden_lossless_codec()
    image = _photo_like(32, 32, seed=1)
    data = codec.compress(image)
    _check("lossless", data, _sha256(image.tobytes()), lambda d: codec.decompress(d).tobytes())


def test_the_golden_tiled_lossless_file_still_decodes_and_is_still_written():
    from irec.codecs.tiles import is_tiled

    codec = _golden_lossless_codec(tile_size=16)
    image = _photo_like(40, 36, seed=3)
    data = codec.compress(image)
    assert is_tiled(data)
    _check("lossless-tiled", data, _sha256(image.tobytes()), lambda d: codec.decompress(d).tobytes())


def test_the_golden_lossy_file_still_decodes_and_is_still_written():
    codec = _codec("lossy-mse-0.01")
    image = _photo_like(64, 64, seed=2)
    data = codec.compress(image)
    decoded = codec.decompress(data)
    _check("lossy", data, _sha256(decoded.tobytes()), lambda d: codec.decompress(d).tobytes())


def test_a_file_of_the_float_format_is_refused_with_the_version_and_what_to_do():
    from irec.codecs.container import LAST_FLOAT_COMMIT, OldFormatError

    old = (GOLDEN / "v3-lossless.irec").read_bytes()  # written by format version 3, with float32 networks
    with pytest.raises(OldFormatError, match=f"version 3.*git checkout {LAST_FLOAT_COMMIT}"):
        _codec("lossless-cifar10").decompress(old)
