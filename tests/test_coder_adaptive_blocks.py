"""Adaptive blocks (``steps_per_block``): each level's block size chosen for about K* steps per block."""

from __future__ import annotations

import math

import pytest

from irec.coder import (
    CoderParams,
    CorruptStreamError,
    LatentEncoder,
    compress_latent,
    decompress_latent,
    read_coder_params,
)
from irec.coder.bitstream import ByteReader, ByteWriter
from irec.coder.schedule import adaptive_block_size
from irec.coder.synthetic import synthetic_pair
from tests.roundtrip import assert_identical, assert_roundtrip, latent_decoder, latent_streams

PARAMS = CoderParams(kl_per_step=3.0, n_beams=4, block_size=1000, seed=5, steps_per_block=8.0)


def _encode_levels(params, pairs):
    encoder = LatentEncoder(params, describe_shapes=False)
    coded = [encoder.encode_level(p.q_loc, p.q_scale, p.p_loc, p.p_scale) for p in pairs]
    return encoder, coded, *latent_streams(encoder)


def test_adaptive_blocks_take_about_the_asked_number_of_steps_each():
    pair = synthetic_pair((4000,), 1200.0, 0.2, 0)
    encoder, *_ = _encode_levels(PARAMS, [pair])
    stats = encoder.stats[0]
    assert stats.n_blocks == math.ceil(4000 / adaptive_block_size(4000, stats.kl_nats, 3.0, 8.0, 1000)) > 4
    assert abs(stats.n_steps / stats.n_blocks - PARAMS.steps_per_block) < 1.0  # K_b = ceil(KL_b / Omega)


def test_the_block_size_is_capped_by_block_size_and_fixed_when_the_option_is_off():
    assert adaptive_block_size(10_000, 30.0, 3.0, 8.0, max_size=500) == 500  # few nats: blocks as large as allowed
    assert adaptive_block_size(10_000, 3e6, 3.0, 8.0, max_size=500) == 1  # a huge KL: one dimension per block
    assert adaptive_block_size(10_000, 3000.0, 3.0, 8.0, max_size=500) == 80  # 8 steps * 3 nats * 10_000 / 3000
    assert adaptive_block_size(10_000, 3000.0, 3.0, 0.0, max_size=500) == 500


def test_levels_with_adaptive_blocks_decode_exactly_and_the_header_records_each_size():
    pairs = [synthetic_pair((3, 16, 16), kl, 0.2, s) for s, kl in enumerate((200.0, 900.0))]
    encoder, coded, header, payload = _encode_levels(PARAMS, pairs)
    _, _, sizes = read_coder_params(ByteReader(header))
    assert sizes == tuple(adaptive_block_size(768, st.kl_nats, 3.0, 8.0, 1000) for st in encoder.stats)
    assert sizes[1] < sizes[0] < 768  # more nats, smaller blocks

    decoder = latent_decoder(header, payload, shapes=[p.p_loc.shape for p in pairs])
    for pair, z in zip(pairs, coded):
        assert_identical(z, decoder.decode_level(pair.p_loc, pair.p_scale))


@pytest.mark.parametrize("sampler", ["beam", "greedy", "sample"])
def test_a_standalone_latent_with_adaptive_blocks_round_trips(sampler):
    pair = synthetic_pair((2, 30, 30), 700.0, 0.2, 3)
    assert_roundtrip(
        lambda: compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, block_size=900,
                                sampler=sampler, steps_per_block=6.0),
        lambda data: decompress_latent(data, pair.p_loc, pair.p_scale),
    )


def test_fixed_blocks_write_no_per_level_sizes():
    pairs = [synthetic_pair((3, 16, 16), 300.0, 0.2, s) for s in range(3)]
    fixed = _encode_levels(PARAMS.with_(steps_per_block=0.0), pairs)[2]
    adaptive = _encode_levels(PARAMS, pairs)[2]
    assert len(adaptive) == len(fixed) + 3  # one varint per level, only with adaptive blocks
    assert read_coder_params(ByteReader(fixed))[2] == (1000, 1000, 1000)


@pytest.mark.parametrize("size,message", [(0, "blocks of 0 dimensions"), (101, "exceeds its limit")])
def test_a_per_level_block_size_of_zero_or_above_the_largest_is_a_corrupt_header(size, message):
    w = ByteWriter()
    for value in (20, 100, 0, 8, 1, size):  # N, largest block size, seed, flags (per-level sizes), levels, size
        w.varint(value)
    with pytest.raises(CorruptStreamError, match=message):
        read_coder_params(ByteReader(w.getvalue()))


def test_the_pfr_reference_sampler_refuses_adaptive_blocks_instead_of_ignoring_them():
    pair = synthetic_pair((40,), 20.0, 0.5, 0)
    with pytest.raises(ValueError, match="pfr"):
        compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, sampler="pfr", steps_per_block=4.0)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_steps_per_block_is_refused(value):
    with pytest.raises(ValueError, match="steps_per_block"):
        CoderParams(steps_per_block=value)


@pytest.mark.parametrize("kl", [2128.7, 1247.5, 698.3, 639.7])
def test_the_encoder_and_decoder_agree_on_the_layout_whatever_the_kl_of_the_level(kl):
    pair = synthetic_pair((1500,), kl, 0.2, int(kl))
    assert_roundtrip(
        lambda: compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, block_size=700,
                                steps_per_block=5.0, seed=int(kl)),
        lambda data: decompress_latent(data, pair.p_loc, pair.p_scale),
    )
