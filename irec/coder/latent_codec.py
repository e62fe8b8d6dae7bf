"""Incremental coding of a hierarchy of latent levels into one container, and the public entry points.

Paper, section 3 and docs/irec-method.md section 2, step 7: the codecs code 2 to 24 levels in
generative order, and each level's prior (and posterior) depends on the *coded* samples of the levels above.
:class:`LatentEncoder` therefore takes one level at a time and returns its coded sample;
:class:`LatentDecoder`, given each level's prior in turn, returns the same sample. Both halves are written
side by side below, in mirrored order.

Side information per level, all in the ANS stream: the step counts K_b (their minimum and span under
:func:`_length_probabilities`, a fixed prior on their bit length that favours the few steps of small images, then
each K_b - K_min under a triangular categorical model); then the indices, uniform over N. (Version 1 wrote the
minimum and span as header varints: 16 bytes on a 32x32 image with 8 levels, 0.042 bpd; now about 7.)
Standalone files (:func:`compress_latent`) also record each level's shape; codecs, whose model fixes the
shapes, leave them out (``describe_shapes=False``) because header bytes matter on 32x32 images. With adaptive blocks
(``steps_per_block`` > 0, :func:`irec.coder.schedule.adaptive_block_size`) the header also records each level's block
size, a flag bit telling the decoder so; files with fixed blocks are byte for byte as before.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from irec.coder import pfr
from irec.coder.bitstream import (
    ByteReader,
    ByteWriter,
    CorruptStreamError,
    SymbolReader,
    SymbolWriter,
    seal,
    unseal,
)
from irec.coder.params import SAMPLERS, CoderParams
from irec.coder.schedule import (
    MAX_DIMS,
    BlockLayout,
    adaptive_block_size,
    level_layout,
    step_counts,
    validate_gaussians,
)
from irec.coder.search import reconstruct, search

MAGIC = b"iRL"  # standalone latent files
VERSION = 2  # 2: step-count minimum and span moved from the header into the ANS stream
MAX_STEPS = 1 << 24  # sanity bound on K_b read from a file
PER_LEVEL_BLOCKS = 8  # header flag bit: each level's block size follows the level count (adaptive blocks)


@dataclass(frozen=True)
class LevelStats:
    """What coding one level cost and how faithful its sample is."""

    n_dims: int  # latent dimensions
    n_blocks: int  # blocks after the near-equal split
    n_steps: int  # sum of K_b over blocks
    kl_nats: float  # analytic KL(q || p), the ideal rate
    index_bits: float  # sum K_b * log2(N): the indices' ideal fixed-length cost
    log_ratio_nats: float  # log q(z) / p(z) of the coded sample z; minus kl_nats is the sample's bias

    @property
    def kl_bits(self) -> float:
        return self.kl_nats / math.log(2)


def _flat64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64).reshape(-1)


def _prior_scale32(p_scale: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """s_p in float32 and the block layout, as encoder and decoder both use it."""
    return layout.gather(p_scale.detach().to("cpu", torch.float32).reshape(-1), pad=1.0)


def _finish_sample(p_loc: torch.Tensor, total: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """z = mu_p + S in p_loc's dtype, shape and device (same operations on both sides)."""
    flat = layout.scatter(total).to(p_loc.dtype)
    return (p_loc.detach().to("cpu").reshape(-1) + flat).reshape(p_loc.shape).to(p_loc.device)


COUNT_BITS = 26  # a count's bit length is below this (counts up to MAX_STEPS = 2**24 need 25 bits)


@functools.cache
def _length_probabilities() -> np.ndarray:
    """The fixed prior on a count's bit length L = int.bit_length(): weight 2**-|L - 3|, peaked at counts 4-7."""
    weights = 2.0 ** -np.abs(np.arange(COUNT_BITS) - 3.0)
    return (weights / weights.sum())[None, :]


def _push_count(s: SymbolWriter, value: int, label: str) -> None:
    """A non-negative integer as its bit length (under :func:`_length_probabilities`), then its lower bits."""
    length = int(value).bit_length()
    s.push_categorical(np.array([length]), _length_probabilities(), label)
    if length > 1:
        s.push_uniform(np.array([value - (1 << (length - 1))]), 1 << (length - 1), label)


def _pull_count(s: SymbolReader) -> int:
    """Mirror of :func:`_push_count`."""
    length = int(s.pull_categorical(_length_probabilities())[0])
    if length <= 1:
        return length
    return (1 << (length - 1)) + int(s.pull_uniform(1, 1 << (length - 1))[0])


def _step_probabilities(span: int, count: int) -> np.ndarray:
    """Triangular categorical over K_b - K_min in [0, span], from integers only (portable)."""
    k = np.arange(span + 1)
    weights = np.minimum(k + 1, span + 1 - k).astype(np.float64)
    return np.broadcast_to(weights / weights.sum(), (count, span + 1))


class LatentEncoder:
    """Codes levels one at a time (generative order); :meth:`finish` writes header and symbols."""

    def __init__(self, params: CoderParams, describe_shapes: bool = True) -> None:
        self.params = params
        self.describe_shapes = describe_shapes
        self.stats: list[LevelStats] = []
        self._levels: list[tuple[tuple[int, ...], int, np.ndarray, np.ndarray]] = []  # shape, block size, K_b, indices

    def encode_level(self, q_loc, q_scale, p_loc, p_scale, select=None) -> torch.Tensor:
        """Code one level; returns its coded sample z (what the decoder will rebuild), shaped like p_loc.

        ``select``: optional ``callable(list of candidate z) -> index`` choosing among the final beams (the
        k-th candidate takes every block's k-th beam), e.g. by the reconstruction error a decoder network
        gives; by default the best beam by score (or the sampler's draw) is kept, as in the paper.
        """
        validate_gaussians(q_loc, q_scale, p_loc, p_scale)
        if self.params.sampler == "pfr":
            raise ValueError("the pfr reference sampler codes standalone latents only (see irec.coder.pfr)")
        level = len(self._levels)
        q_mu, q_s, p_mu, p_s = (_flat64(x) for x in (q_loc, q_scale, p_loc, p_scale))
        kl = torch.log(p_s / q_s) + (q_s**2 + (q_mu - p_mu) ** 2) / (2 * p_s**2) - 0.5
        block_size = adaptive_block_size(p_loc.numel(), float(kl.sum()), self.params.kl_per_step,
                                         self.params.steps_per_block, self.params.block_size)
        layout = level_layout(self.params.seed, level, p_loc.numel(), block_size)
        block_kl = layout.gather(kl, pad=0.0)
        n_steps = step_counts(block_kl.sum(1).numpy(), self.params.kl_per_step)
        p_scale32 = _prior_scale32(p_scale, layout)
        scored = block_kl >= self.params.ignore_kl_below if self.params.ignore_kl_below else None
        indices = search(
            self.params, level, layout, layout.gather(q_mu - p_mu, 0.0), layout.gather(q_s**2, 1.0),
            layout.gather(p_s**2, 1.0), p_scale32, n_steps, scored,
        )
        candidates = range(indices.shape[1] if select is not None else 1)
        zs = [_finish_sample(p_loc, reconstruct(self.params, level, layout, p_scale32, n_steps, indices[:, k]), layout)
              for k in candidates]
        chosen = int(select(zs)) if select is not None else 0
        if not 0 <= chosen < len(zs):
            raise ValueError(f"select returned {chosen}, not an index into {len(zs)} candidates")
        z, indices = zs[chosen], indices[:, chosen]
        zz = _flat64(z)
        log_ratio = (torch.log(p_s / q_s) - 0.5 * ((zz - q_mu) / q_s) ** 2 + 0.5 * ((zz - p_mu) / p_s) ** 2).sum()
        self.stats.append(LevelStats(
            n_dims=p_loc.numel(), n_blocks=layout.n_blocks, n_steps=int(n_steps.sum()), kl_nats=float(kl.sum()),
            index_bits=float(n_steps.sum() * math.log2(self.params.n_candidates)), log_ratio_nats=float(log_ratio),
        ))
        self._levels.append((tuple(p_loc.shape), block_size, n_steps, indices))
        return z

    def write_header(self, w: ByteWriter) -> None:
        """Coder parameters and per-level side information (mirrored by :class:`LatentDecoder`)."""
        w.varint(self.params.n_candidates)
        w.varint(self.params.block_size)
        w.varint(self.params.seed)
        adaptive = self.params.steps_per_block > 0
        w.varint(2 * SAMPLERS.index(self.params.sampler) + int(self.describe_shapes) + PER_LEVEL_BLOCKS * adaptive)
        w.varint(len(self._levels))
        for _, block_size, _, _ in self._levels if adaptive else ():
            w.varint(block_size)
        for shape, _, _, _ in self._levels:
            if self.describe_shapes:
                w.varint(len(shape))
                for n in shape:
                    w.varint(n)

    def write_symbols(self, s: SymbolWriter) -> None:
        """Each level's step counts, then its indices, in decoding order."""
        for level, (_, _, n_steps, indices) in enumerate(self._levels):
            span = int(n_steps.max() - n_steps.min())
            _push_count(s, int(n_steps.min()), f"level{level}/steps")
            if len(n_steps) > 1:  # the decoder knows the block count from the shape
                _push_count(s, span, f"level{level}/steps")
            if span:
                s.push_categorical(n_steps - n_steps.min(), _step_probabilities(span, len(n_steps)), f"level{level}/steps")
            chosen = np.concatenate([indices[b, :k] for b, k in enumerate(n_steps)])
            s.push_uniform(chosen, self.params.n_candidates, f"level{level}/indices")


def read_coder_params(r: ByteReader) -> tuple[CoderParams, bool, tuple[int, ...]]:
    """The start of a latent header: (coder parameters, whether shapes are recorded, each level's block size).

    Decoding needs only N, the block sizes and the seed; Omega, B and steps_per_block are not recorded, so the
    returned parameters carry an Omega that gives this N, the default B, and the largest block size.
    """
    n_candidates = r.varint(limit=2**24 - 1)
    block_size = r.varint(limit=MAX_DIMS)
    seed = r.varint(limit=2**63 - 1)
    flags = r.varint(limit=PER_LEVEL_BLOCKS + 2 * len(SAMPLERS) - 1)
    n_levels = r.varint(limit=1 << 16)
    if n_candidates < 2 or block_size < 1 or flags % PER_LEVEL_BLOCKS >= 2 * len(SAMPLERS):
        raise CorruptStreamError("malformed header: impossible coder parameters")
    sizes = (block_size,) * n_levels
    if flags & PER_LEVEL_BLOCKS:
        sizes = tuple(r.varint(limit=block_size) for _ in range(n_levels))
        if not all(sizes):
            raise CorruptStreamError("malformed header: a level with blocks of 0 dimensions")
    params = CoderParams(kl_per_step=math.log(n_candidates + 0.5), block_size=block_size, seed=seed,
                         sampler=SAMPLERS[flags % PER_LEVEL_BLOCKS // 2])
    return params, bool(flags % 2), sizes


class LatentDecoder:
    """Mirror of :class:`LatentEncoder`: reads the header, then rebuilds one level per prior given.

    ``shapes``: the levels' shapes, required when the file does not record them (codecs know them from the
    model and the image size) and checked against the file when it does; ``None`` reads them from the file.
    """

    def __init__(self, r: ByteReader, shapes: list[tuple[int, ...]] | None = None) -> None:
        self.params, described, self._block_sizes = read_coder_params(r)
        n_levels = len(self._block_sizes)
        if shapes is None and not described:
            raise ValueError("this latent stream does not record its shapes: pass the shapes the model gives")
        if shapes is not None and len(shapes) != n_levels:
            raise CorruptStreamError(f"the file holds {n_levels} latent levels, the model expects {len(shapes)}")
        self._levels: list[tuple[int, ...]] = []  # shapes
        for level in range(n_levels):
            if described:
                shape = tuple(r.varint(limit=MAX_DIMS) for _ in range(r.varint(limit=16)))
                if shapes is not None and tuple(shapes[level]) != shape:
                    raise ValueError(f"latent level {level} was coded with shape {shape}, the model gives "
                                     f"{tuple(shapes[level])}: wrong model or wrong image size?")
            else:
                shape = tuple(shapes[level])
            n_dims = math.prod(shape)
            if not 0 < n_dims <= MAX_DIMS:
                raise CorruptStreamError(f"malformed header: level {level} has {n_dims} dimensions")
            self._levels.append(shape)
        self._symbols: SymbolReader | None = None
        self._next = 0

    @property
    def n_levels(self) -> int:
        return len(self._levels)

    def attach(self, s: SymbolReader) -> None:
        """Give the decoder the symbol stream that follows the header."""
        self._symbols = s

    def decode_level(self, p_loc: torch.Tensor, p_scale: torch.Tensor) -> torch.Tensor:
        """Rebuild the next level's coded sample from its prior (the decoder's own p_loc and p_scale)."""
        if self._symbols is None:
            raise RuntimeError("attach() the symbol stream before decoding")
        if self._next >= len(self._levels):
            raise ValueError(f"the file holds only {len(self._levels)} latent levels")
        validate_gaussians(p_loc, p_scale, p_loc, p_scale)
        level, shape = self._next, self._levels[self._next]
        if tuple(p_loc.shape) != shape:
            raise ValueError(
                f"latent level {level} was coded with shape {shape}, but the prior given has shape "
                f"{tuple(p_loc.shape)}: wrong model or wrong image size?"
            )
        layout = level_layout(self.params.seed, level, p_loc.numel(), self._block_sizes[level])
        k_min = _pull_count(self._symbols)
        span = _pull_count(self._symbols) if layout.n_blocks > 1 else 0
        if k_min + span > MAX_STEPS:
            raise CorruptStreamError(f"malformed stream: level {level} claims {k_min + span} steps in a block")
        n_steps = np.full(layout.n_blocks, k_min, dtype=np.int64)
        if span:
            n_steps += self._symbols.pull_categorical(_step_probabilities(span, layout.n_blocks))
        chosen = self._symbols.pull_uniform(int(n_steps.sum()), self.params.n_candidates)
        indices = np.zeros((layout.n_blocks, int(n_steps.max(initial=0))), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(n_steps)])
        for b, k in enumerate(n_steps):
            indices[b, :k] = chosen[starts[b] : starts[b] + k]
        self._next += 1
        return _finish_sample(p_loc, reconstruct(self.params, level, layout, _prior_scale32(p_scale, layout), n_steps, indices), layout)


# ------------------------------------------------------------------------------------------- public entry points
def compress_latent(
    q_loc: torch.Tensor, q_scale: torch.Tensor, p_loc: torch.Tensor, p_scale: torch.Tensor, *,
    kl_per_step: float = 3.0, n_beams: int = 10, extra_samples: float = 1.0, block_size: int = 1000,
    seed: int = 0, sampler: str = "beam", steps_per_block: float = 0.0, kl_per_block: float | None = None,
    ignore_kl_below: float = 0.0,
) -> tuple[bytes, torch.Tensor]:
    """Code a sample of N(q_loc, q_scale^2) against the prior N(p_loc, p_scale^2), tensors of any shape.

    Returns the self-describing bytes and the coded sample z, which :func:`decompress_latent` rebuilds exactly.
    ``kl_per_block`` is the deprecated name of ``kl_per_step`` (Omega).
    """
    params = CoderParams(kl_per_step=kl_per_step, n_beams=n_beams, extra_samples=extra_samples,
                         block_size=block_size, seed=seed, sampler=sampler, steps_per_block=steps_per_block,
                         kl_per_block=kl_per_block, ignore_kl_below=ignore_kl_below)
    if sampler == "pfr":
        if steps_per_block:
            raise ValueError("the pfr reference sampler has its own blocks; adaptive blocks (steps_per_block) are "
                             "for the beam, greedy and sample samplers")
        return pfr.compress_latent(q_loc, q_scale, p_loc, p_scale, params)
    encoder = LatentEncoder(params, describe_shapes=True)
    z = encoder.encode_level(q_loc, q_scale, p_loc, p_scale)
    header, symbols = ByteWriter(), SymbolWriter()
    encoder.write_header(header)
    encoder.write_symbols(symbols)
    payload, _ = symbols.finish()
    return seal(MAGIC, VERSION, header.getvalue(), payload), z


def decompress_latent(data: bytes, p_loc: torch.Tensor, p_scale: torch.Tensor) -> torch.Tensor:
    """Rebuild the coded sample of :func:`compress_latent` from its bytes and the same prior."""
    if bytes(data[:3]) == b"iRP":
        return pfr.decompress_latent(data, p_loc, p_scale)
    r = unseal(data, MAGIC, VERSION, "irec latent")
    decoder = LatentDecoder(r)
    if decoder.n_levels != 1:
        raise CorruptStreamError(f"a standalone latent file holds one level, this one {decoder.n_levels}")
    symbols = SymbolReader(r.rest())
    decoder.attach(symbols)
    return decoder.decode_level(p_loc, p_scale)
