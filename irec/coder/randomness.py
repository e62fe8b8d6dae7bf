"""Shared randomness: a counter-based generator addressed by (seed, level, block, step, candidate, dim).

Paper, section 3 ("iREC") and docs/irec-method.md section 4: encoder and decoder draw the same
candidate samples from shared randomness, and the encoder sends only indices. The original code reused one seed
for every block and level and drew candidates from a "slightly biased hash" on a 10007-point quantile grid.
Here every candidate value is a pure function of its address:

    key(seed, level, block, step)  = mix64 chain over the four integers           (per block and step)
    u(key, candidate, dim)         = mix64(key + (candidate * block_dims + dim + 1) * GOLDEN)   (splitmix64)
    eps                            = NORMAL_TABLE[u >> 48]                           (2^16-point inverse CDF)

Everything up to the table lookup is integer arithmetic modulo 2^64, and the table holds float32 quantiles at
the bucket mid-points (i + 1/2) / 2^16, computed once in float64 with the standard library and pinned by a
sha256 so that a platform whose libm differs is detected, never silently used. Hence a candidate is identical
on any CPU or GPU and at any thread count, the decoder generates only the candidates it was sent, and a stream
never repeats across blocks, levels or steps (distinct keys give distinct splitmix sequences; overlapping
counter ranges need two 64-bit keys within ~2^25 of each other, probability below 1e-9 per image).

The table quantises N(0, 1) to 2^16 equiprobable values and truncates its tails at +-4.32 sigma (mass 1.5e-5):
the candidates follow that discrete distribution exactly, which the importance weights treat as N(0, 1).

Two implementations share these definitions: numba kernels (the CPU path used by the coder) and plain torch
integer operations (any device); tests check that they agree bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
from statistics import NormalDist

import numba
import numpy as np
import torch

TABLE_BITS = 16
# sha256 of NORMAL_TABLE's float32 little-endian bytes, as computed on the reference platform.
NORMAL_TABLE_SHA256 = "1cfbba1e07e34386a57626f82aeb43e6ed54ba70a3ea6b7d964dc66a841074a8"

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Salts separating the four fields of a key (arbitrary odd 64-bit constants).
_SALT_LEVEL = np.uint64(0xD1B54A32D192ED03)
_SALT_BLOCK = np.uint64(0xAEF17502108EF2D9)
_SALT_STEP = np.uint64(0xDB4F0B9175AE2165)
_SALT_PERM = np.uint64(0x8CB92BA72F3D8DD7)
_SALT_GUMBEL = np.uint64(0x9FB21C651E98DF25)  # the encoder's own noise (sampler "sample"), never shared


@functools.cache
def normal_table() -> np.ndarray:
    """The 2^16 float32 quantiles of N(0, 1) at (i + 1/2) / 2^16, verified against its pinned sha256."""
    n = 1 << TABLE_BITS
    inv = NormalDist().inv_cdf
    table = np.array([inv((i + 0.5) / n) for i in range(n)], dtype=np.float64).astype("<f4")
    digest = hashlib.sha256(table.tobytes()).hexdigest()
    if digest != NORMAL_TABLE_SHA256:
        raise RuntimeError(
            "the shared-randomness normal table differs from the reference (sha256 "
            f"{digest} != {NORMAL_TABLE_SHA256}): this platform's math library rounds differently, so files "
            "written here would not decode elsewhere. Please report the platform."
        )
    return table


# --------------------------------------------------------------------------------------------- numba kernels
@numba.njit(inline="always", cache=True)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always", cache=True)
def _key(seed, level, block, step):
    k = _mix64(np.uint64(seed) * GOLDEN + _SALT_LEVEL + np.uint64(level))
    k = _mix64(k ^ ((np.uint64(block) + np.uint64(1)) * _SALT_BLOCK))
    return _mix64(k ^ ((np.uint64(step) + np.uint64(1)) * _SALT_STEP))


@numba.njit(inline="always", cache=True)
def _gumbel_key(seed, level, block, step):
    return _key(np.uint64(seed) ^ _SALT_GUMBEL, level, block, step)


@numba.njit(inline="always", cache=True)
def _word(key, candidate, dims, d):
    return _mix64(key + (np.uint64(candidate) * np.uint64(dims) + np.uint64(d) + np.uint64(1)) * GOLDEN)


@numba.njit(cache=True)
def _block_keys(seed, level, blocks, steps, out):
    for i in range(blocks.shape[0]):
        out[i] = _key(seed, level, blocks[i], steps[i])


@numba.njit(parallel=True, cache=True)
def _normals(keys, candidates, sizes, table, out):
    for i in numba.prange(keys.shape[0]):
        dims = sizes[i]
        for j in range(candidates.shape[1]):
            c = candidates[i, j]
            for d in range(dims):
                out[i, j, d] = table[_word(keys[i], c, dims, d) >> np.uint64(64 - TABLE_BITS)]


@numba.njit(cache=True)
def _permutation_words(seed, level, n, out):
    k = _mix64(np.uint64(seed) * GOLDEN + _SALT_PERM + np.uint64(level))
    for j in range(n):
        out[j] = _mix64(k + (np.uint64(j) + np.uint64(1)) * GOLDEN)


# ------------------------------------------------------------------------------------------------ public API
def block_keys(seed: int, level: int, blocks: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """uint64 stream keys for each (block, step) pair of one level."""
    blocks = np.ascontiguousarray(blocks, dtype=np.int64)
    steps = np.ascontiguousarray(np.broadcast_to(steps, blocks.shape), dtype=np.int64)
    out = np.empty(blocks.shape[0], dtype=np.uint64)
    _block_keys(np.uint64(seed), np.uint64(level), blocks, steps, out)
    return out


def normals(keys: np.ndarray, candidates: np.ndarray, sizes: np.ndarray, width: int) -> torch.Tensor:
    """Standard-normal candidates ``eps[i, j, :sizes[i]]`` of stream ``keys[i]``, candidate ``candidates[i, j]``.

    Returns a float32 tensor of shape (len(keys), candidates.shape[1], width), zero beyond each block's size.
    """
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    out = np.zeros((keys.shape[0], candidates.shape[1], width), dtype=np.float32)
    _normals(keys, candidates, np.ascontiguousarray(sizes, dtype=np.int64), normal_table(), out)
    return torch.from_numpy(out)


def permutation(seed: int, level: int, n: int) -> np.ndarray:
    """The seeded permutation of ``n`` latent dimensions for one level (argsort of distinct hash words)."""
    words = np.empty(n, dtype=np.uint64)
    _permutation_words(np.uint64(seed), np.uint64(level), n, words)
    return np.argsort(words, kind="stable")


# ------------------------------------------------------------------------------- torch reference (any device)
def _u64(value: np.uint64) -> int:
    """A uint64 constant as the int64 with the same bits (torch has no general uint64 arithmetic)."""
    return int(np.array(value, dtype=np.uint64).view(np.int64))


def _mix64_torch(z: torch.Tensor) -> torch.Tensor:
    # Logical right shifts on int64: arithmetic shift, then clear the sign-extended bits.
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * _u64(_M1)
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * _u64(_M2)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def normals_torch(
    keys: np.ndarray, candidates: np.ndarray, sizes: np.ndarray, width: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The same values as :func:`normals`, computed with torch integer tensors on ``device``."""
    k = torch.from_numpy(keys.view(np.int64)).to(device)[:, None, None]
    c = torch.as_tensor(candidates, dtype=torch.int64, device=device)[:, :, None]
    dims = torch.as_tensor(sizes, dtype=torch.int64, device=device)[:, None, None]
    d = torch.arange(width, dtype=torch.int64, device=device)[None, None, :]
    words = _mix64_torch(k + (c * dims + d + 1) * _u64(GOLDEN))
    index = (words >> (64 - TABLE_BITS)) & ((1 << TABLE_BITS) - 1)
    table = torch.from_numpy(normal_table()).to(device)
    return torch.where(d < dims, table[index], torch.zeros((), device=device))
