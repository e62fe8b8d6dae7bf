"""The exact reference sampler: the Poisson functional representation (PFR) on small blocks.

Li & El Gamal, "Strong functional representation lemma and applications to coding theorems", IEEE Trans. Inf.
Theory 64(11), 2018; the coder's exact reference, and docs/irec-method.md section 4 (COMBINER and
RECOMBINER code PFR on ~16-bit blocks). A yardstick for the bias of the approximate samplers on synthetic
low-dimensional Gaussians, not a sampler for the image codecs. Per block, with r = q/p:

    z_i = mu_p + s_p eps_i       eps_i: candidate i of the shared randomness (seed, level 0, block, step 0)
    T_i = T_{i-1} + E_i          E_i ~ Exp(1): the encoder's own noise, under a key of its own
    i*  = argmin_i T_i / r(z_i)  stopping once T_i / r_max exceeds the best value (no later i can win)

and z_{i*} is an exact sample of the candidates' distribution reweighted by r, i.e. of q on the 2^16-point
quantile grid of :mod:`irec.coder.randomness` (the grid, and its tails cut at 4.3 sigma of p, are the only
approximation). The search examines about r_max = exp(D_inf(q||p)) candidates, so the bound needs q narrower
than p in every dimension (s_q < s_p, or s_q = s_p with equal means): otherwise q/p is unbounded and PFR would
never stop. For diagonal Gaussians, per dimension with a = mu_q - mu_p,

    log r_max = log(s_p / s_q) + a^2 / (2 (s_p^2 - s_q^2)).

Index code: n = i* + 1 is sent as its bit length k = floor(log2 n) under a geometric model whose mean is the
file's mean KL per block in bits (a header varint, in quarter bits: the decoder does not know q), then the k
bits below the leading one, uniformly, in digits of at most 16 bits. Since E[log2 n] <= KL + 1.53 bits
(Li & El Gamal), the bucket costs about log2(KL + 1) + 1.44 bits: :func:`irec.bench.coder.pfr_trials` measures a mean cost
below KL + log2(KL + 1) + 1 bits per block at KL = 1 to 12 bits.
File: ``b"iRP" | version | varints seed, block_size, ndim, shape..., mean_bucket_quarters | ANS words | crc32``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from irec.coder import randomness
from irec.coder.bitstream import ByteWriter, CorruptStreamError, SymbolReader, SymbolWriter, seal, unseal
from irec.coder.params import CoderParams
from irec.coder.schedule import MAX_DIMS, BlockLayout, level_layout, validate_gaussians

MAGIC = b"iRP"
VERSION = 1
MAX_KL_BITS = 16.0  # largest KL per block (meant for blocks of about 12 bits; COMBINER codes ~16-bit blocks)
MAX_D_INF_BITS = 24.0  # largest log2 r_max per block: PFR examines about r_max candidates
MAX_BUCKET = 62  # k = floor(log2(i* + 1)) <= 62 keeps i* in int64
DIGIT_BITS = 16  # the k low bits travel as uniform digits of at most this many bits
_SALT_ARRIVALS = np.uint64(0xC2B2AE3D27D4EB4F)  # the encoder's Exp(1) arrivals, never shared
_SHIFT = np.uint64(64 - randomness.TABLE_BITS)
_LOG2 = math.log(2.0)


@numba.njit(cache=True)
def _pfr_block(key, arrival_key, dims, table, p_s32, a, q_s, p_s, log_ratio_const, log_r_max):
    """(i*, candidates examined, log r(z_{i*})) of one block; work in log space: log T_i - log r(z_i)."""
    best, best_i, best_log_r = np.inf, 0, 0.0
    t, i = 0.0, 0
    while True:
        uniform = ((randomness._word(arrival_key, i, 1, 0) >> np.uint64(11)) + 0.5) / 9007199254740992.0
        t -= np.log(uniform)
        log_t = np.log(t)
        if log_t - log_r_max > best:
            return best_i, i, best_log_r
        log_r = log_ratio_const
        for d in range(dims):
            offset = table[randomness._word(key, i, dims, d) >> _SHIFT] * p_s32[d]  # z - mu_p, as decoded
            log_r += 0.5 * (offset / p_s[d]) ** 2 - 0.5 * ((offset - a[d]) / q_s[d]) ** 2
        if log_t - log_r < best:
            best, best_i, best_log_r = log_t - log_r, i, log_r
        i += 1


@numba.njit(parallel=True, cache=True)
def _pfr(seed, sizes, table, p_s32, a, q_s, p_s, log_ratio_const, log_r_max, out):
    """PFR on every block of level 0, in parallel: out[b] = (i*, candidates examined); returns log r(z_{i*})."""
    log_r = np.empty(sizes.shape[0], dtype=np.float64)
    for b in numba.prange(sizes.shape[0]):
        dims = sizes[b]
        key = randomness._key(seed, 0, b, 0)
        arrival_key = randomness._key(np.uint64(seed) ^ _SALT_ARRIVALS, 0, b, 0)
        out[b, 0], out[b, 1], log_r[b] = _pfr_block(
            key, arrival_key, dims, table, p_s32[b, :dims], a[b, :dims], q_s[b, :dims], p_s[b, :dims],
            log_ratio_const[b], log_r_max[b],
        )
    return log_r


@dataclass(frozen=True)
class PfrReport:
    """Per-block figures of one PFR file (arrays of length n_blocks), plus the real ANS bits."""

    kl_bits: np.ndarray  # KL(q||p) of each block, bits
    d_inf_bits: np.ndarray  # log2 r_max of each block: log2 of the expected search length
    index: np.ndarray  # i*, the chosen candidate
    n_examined: np.ndarray  # candidates the search looked at
    index_bits: np.ndarray  # -log2 P(i*) under the index code's model (what ANS spends, up to rounding)
    log_ratio_bits: np.ndarray  # log2 q(z)/p(z) at the coded sample; its mean over trials estimates KL
    ans_bits: float  # bits of the whole ANS stream, as written

    @property
    def bound_bits(self) -> np.ndarray:
        """The exact-sampler target KL + log2(KL + 1) + 4 bits per block."""
        return self.kl_bits + np.log2(self.kl_bits + 1.0) + 4.0

    def columns(self) -> dict[str, np.ndarray]:
        """Per-block arrays by name (a table with one row per block: ``pandas.DataFrame(report.columns())``)."""
        return {
            "kl_bits": self.kl_bits, "d_inf_bits": self.d_inf_bits, "index": self.index,
            "n_examined": self.n_examined, "index_bits": self.index_bits, "bound_bits": self.bound_bits,
            "log_ratio_bits": self.log_ratio_bits,
        }


# --------------------------------------------------------------------------------------------- the index code
def _bucket_probabilities(mean_quarters: int) -> np.ndarray:
    """Geometric P(k) proportional to rho^k, rho = mu / (mu + 1), mu = mean_quarters / 4, k in [0, MAX_BUCKET].

    Built by correctly rounded integer division only, so every platform gives constriction the same floats.
    """
    m = int(mean_quarters)
    weights = np.array([m**k / (m + 4) ** k for k in range(MAX_BUCKET + 1)], dtype=np.float64)
    return weights / weights.sum()


def _digit_sizes(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block: the number of full 16-bit digits and the width of the last, partial digit (0: none)."""
    return buckets // DIGIT_BITS, buckets % DIGIT_BITS


def _push_indices(w: SymbolWriter, index: np.ndarray, mean_quarters: int) -> np.ndarray:
    """Code each i*; returns each block's model bits. Mirrored by :func:`_pull_indices`."""
    n = index.astype(np.int64) + 1
    buckets = np.floor(np.log2(n.astype(np.float64))).astype(np.int64)
    buckets += (n >> buckets) >= 2  # exact floor(log2 n) despite float rounding near powers of two
    buckets -= (n >> buckets) == 0
    probs = _bucket_probabilities(mean_quarters)
    w.push_categorical(buckets, np.broadcast_to(probs, (len(n), len(probs))), "buckets")
    full, partial = _digit_sizes(buckets)
    low = n - (np.int64(1) << buckets)
    digits = [(low[b] >> (DIGIT_BITS * j)) & 0xFFFF for b in range(len(n)) for j in range(full[b])]
    w.push_uniform(np.array(digits, dtype=np.int64), 1 << DIGIT_BITS, "digits")
    for bits in range(1, DIGIT_BITS):
        chosen = partial == bits
        w.push_uniform(low[chosen] >> (DIGIT_BITS * full[chosen]), 1 << bits, "digits")
    return buckets - np.log2(probs[buckets])


def _pull_indices(r: SymbolReader, n_blocks: int, mean_quarters: int) -> np.ndarray:
    """Mirror of :func:`_push_indices`: the i* of every block."""
    probs = _bucket_probabilities(mean_quarters)
    buckets = r.pull_categorical(np.broadcast_to(probs, (n_blocks, len(probs))))
    full, partial = _digit_sizes(buckets)
    digits = r.pull_uniform(int(full.sum()), 1 << DIGIT_BITS)
    low = np.zeros(n_blocks, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(full)])
    for b in range(n_blocks):
        for j in range(full[b]):
            low[b] |= digits[starts[b] + j] << (DIGIT_BITS * j)
    for bits in range(1, DIGIT_BITS):
        chosen = partial == bits
        low[chosen] |= r.pull_uniform(int(chosen.sum()), 1 << bits) << (DIGIT_BITS * full[chosen])
    return (np.int64(1) << buckets) + low - 1


# ------------------------------------------------------------------------------------------ the coded sample
def _prior_scale32(p_scale: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    return layout.gather(p_scale.detach().to("cpu", torch.float32).reshape(-1), pad=1.0)


def _sample(p_loc: torch.Tensor, p_scale: torch.Tensor, layout: BlockLayout, seed: int, index: np.ndarray):
    """z = mu_p + s_p eps_{i*} in p_loc's dtype: the offset s_p eps in float32, then added in p_loc's dtype."""
    blocks = np.arange(layout.n_blocks)
    keys = randomness.block_keys(seed, 0, blocks, np.zeros_like(blocks))
    eps = randomness.normals(keys, index[:, None], layout.sizes, layout.width)[:, 0]
    flat = layout.scatter(eps * _prior_scale32(p_scale, layout)).to(p_loc.dtype)
    return (p_loc.detach().to("cpu").reshape(-1) + flat).reshape(p_loc.shape).to(p_loc.device)


def encode(q_loc, q_scale, p_loc, p_scale, params: CoderParams) -> tuple[bytes, torch.Tensor, PfrReport]:
    """Code an exact sample of N(q_loc, q_scale^2) against N(p_loc, p_scale^2): (bytes, z, per-block report)."""
    validate_gaussians(q_loc, q_scale, p_loc, p_scale)
    q_mu, q_s, p_mu, p_s = (x.detach().to("cpu", torch.float64).reshape(-1) for x in (q_loc, q_scale, p_loc, p_scale))
    if bool(((q_s > p_s) | ((q_s == p_s) & (q_mu != p_mu))).any()):
        raise ValueError(
            "the pfr sampler needs q narrower than p in every dimension (q_scale < p_scale, or equal scales "
            "with equal means): otherwise q/p is unbounded and the Poisson functional representation never stops"
        )
    layout = level_layout(params.seed, 0, p_loc.numel(), params.block_size)
    a = q_mu - p_mu
    kl = torch.log(p_s / q_s) + (q_s**2 + a**2) / (2 * p_s**2) - 0.5
    narrower = q_s < p_s
    log_r_max = torch.log(p_s / q_s) + torch.where(narrower, a**2 / (2 * (p_s**2 - q_s**2).clamp_min(1e-300)), 0.0)
    kl_bits = layout.gather(kl, 0.0).sum(1).numpy() / _LOG2
    d_inf_bits = layout.gather(log_r_max, 0.0).sum(1).numpy() / _LOG2
    for name, values, limit in (("KL", kl_bits, MAX_KL_BITS), ("D_inf = log2 max q/p", d_inf_bits, MAX_D_INF_BITS)):
        if values.max() > limit:
            raise ValueError(
                f"block {int(values.argmax())} has {name} of {values.max():.1f} bits, above the pfr limit of "
                f"{limit:g} bits per block (PFR examines about 2^D_inf candidates): use a smaller block_size "
                f"(now {params.block_size}; {layout.n_blocks} blocks)"
            )
    out = np.zeros((layout.n_blocks, 2), dtype=np.int64)
    log_r = _pfr(
        np.uint64(params.seed), layout.sizes, randomness.normal_table(),
        _prior_scale32(p_scale, layout).double().numpy(), layout.gather(a, 0.0).numpy(),
        layout.gather(q_s, 1.0).numpy(), layout.gather(p_s, 1.0).numpy(),
        layout.gather(torch.log(p_s / q_s), 0.0).sum(1).numpy(), d_inf_bits * _LOG2, out,
    )
    index = out[:, 0]
    mean_quarters = int(min(max(round(4 * float(kl_bits.mean())), 1), 4 * MAX_BUCKET))
    header, symbols = ByteWriter(), SymbolWriter()
    for value in (params.seed, params.block_size, p_loc.dim(), *p_loc.shape, mean_quarters):
        header.varint(value)
    index_bits = _push_indices(symbols, index, mean_quarters)
    payload, spent = symbols.finish()
    report = PfrReport(
        kl_bits=kl_bits, d_inf_bits=d_inf_bits, index=index, n_examined=out[:, 1], index_bits=index_bits,
        log_ratio_bits=log_r / _LOG2, ans_bits=float(sum(spent.values())),
    )
    z = _sample(p_loc, p_scale, layout, params.seed, index)
    return seal(MAGIC, VERSION, header.getvalue(), payload), z, report


def compress_latent(q_loc, q_scale, p_loc, p_scale, params: CoderParams) -> tuple[bytes, torch.Tensor]:
    """The standalone file and its coded sample (``irec.coder.compress_latent(..., sampler="pfr")``)."""
    data, z, _ = encode(q_loc, q_scale, p_loc, p_scale, params)
    return data, z


def decompress_latent(data: bytes, p_loc: torch.Tensor, p_scale: torch.Tensor) -> torch.Tensor:
    """Rebuild the coded sample of :func:`compress_latent` from its bytes and the same prior."""
    r = unseal(data, MAGIC, VERSION, "irec pfr latent")
    seed = r.varint(limit=2**63 - 1)
    block_size = r.varint(limit=MAX_DIMS)
    shape = tuple(r.varint(limit=MAX_DIMS) for _ in range(r.varint(limit=16)))
    mean_quarters = r.varint(limit=4 * MAX_BUCKET)
    if block_size < 1 or mean_quarters < 1 or not 0 < math.prod(shape) <= MAX_DIMS:
        raise CorruptStreamError("malformed pfr header: impossible block size, shape or code parameter")
    validate_gaussians(p_loc, p_scale, p_loc, p_scale)
    if tuple(p_loc.shape) != shape:
        raise ValueError(f"the latent was coded with shape {shape}, but the prior given has shape {tuple(p_loc.shape)}")
    layout = level_layout(seed, 0, p_loc.numel(), block_size)
    symbols = SymbolReader(r.rest())
    index = _pull_indices(symbols, layout.n_blocks, mean_quarters)
    if not symbols.exhausted():
        raise CorruptStreamError("the pfr payload holds more symbols than its header describes")
    return _sample(p_loc, p_scale, layout, seed, index)


# ------------------------------------------------------------------------------------------------- the yardstick
def yardstick_pair(kl_bits: float, dims: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q_loc, q_scale, p_loc, p_scale) of a D-dimensional Gaussian pair with KL(q||p) = ``kl_bits``.

    p = N(0, I) and, per dimension, the posterior of a noisy observation at its typical distance:
    s_q = 2^(-kl_bits / dims), mu_q = sqrt(1 - s_q^2). Then KL = -dims log s_q and D_inf = KL + dims / 2 nats.
    Keep kl_bits / dims below about 10: narrower posteriors span only a few dozen points of the candidates'
    2^16-point grid, and the samples are then visibly discrete (a KS test notices it at 12 bits in 1-D).
    """
    s_q = 2.0 ** (-kl_bits / dims)
    ones = torch.ones(dims, dtype=torch.float64)
    return ones * math.sqrt(1.0 - s_q**2), ones * s_q, torch.zeros(dims, dtype=torch.float64), ones.clone()
