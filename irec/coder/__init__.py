"""Relative entropy coding of Gaussian latents: iREC (paper, section 3) with real, exactly decodable bitstreams.

Public API::

    data, z = compress_latent(q_loc, q_scale, p_loc, p_scale, kl_per_step=3.0, n_beams=10,
                              extra_samples=1.0, block_size=1000, seed=0, sampler="beam")
    z == decompress_latent(data, p_loc, p_scale)        # bit for bit, in any process, at any thread count

Hierarchical codecs use :class:`LatentEncoder` / :class:`LatentDecoder` (one level at a time, one container)
with :mod:`irec.coder.bitstream` for their own headers and symbols.
"""

from irec.coder.bitstream import ByteReader, ByteWriter, CorruptStreamError, SymbolReader, SymbolWriter, seal, unseal
from irec.coder.latent_codec import (
    LatentDecoder, LatentEncoder, LevelStats, compress_latent, decompress_latent, read_coder_params,
)
from irec.coder.params import SAMPLERS, CoderParams

__all__ = [
    "ByteReader", "ByteWriter", "CoderParams", "CorruptStreamError", "LatentDecoder", "LatentEncoder",
    "LevelStats", "SAMPLERS", "SymbolReader", "SymbolWriter",
    "compress_latent", "decompress_latent", "read_coder_params", "seal", "unseal",
]
