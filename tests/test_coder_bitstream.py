"""Bitstream primitives and the container: corruption of any kind is refused cleanly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irec.coder import CorruptStreamError, compress_latent, decompress_latent
from irec.coder.bitstream import ByteReader, ByteWriter, SymbolReader, SymbolWriter
from irec.coder.synthetic import synthetic_pair
from tests.roundtrip import latent_streams

PAIR = synthetic_pair((3, 10, 10), 80.0, 0.2, seed=0)
DATA, Z = compress_latent(PAIR.q_loc, PAIR.q_scale, PAIR.p_loc, PAIR.p_scale, block_size=100)


@given(st.lists(st.integers(0, 2**63 - 1), max_size=20))
def test_varints_round_trip(values):
    w = ByteWriter()
    for v in values:
        w.varint(v)
    r = ByteReader(w.getvalue())
    assert [r.varint() for _ in values] == values


def test_symbol_chunks_decode_in_the_order_they_were_pushed():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 36, 500), rng.integers(0, 4, 300)
    probs = np.tile([0.1, 0.2, 0.3, 0.4], (300, 1))
    w = SymbolWriter()
    w.push_uniform(a, 36, "a")
    w.push_categorical(b, probs, "b")
    payload, bits = w.finish()
    r = SymbolReader(payload)
    assert np.array_equal(r.pull_uniform(500, 36), a)
    assert np.array_equal(r.pull_categorical(probs), b)
    assert bits["a"] == pytest.approx(500 * np.log2(36), rel=1e-3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_corruptions_raise_a_clear_error_and_never_crash(data):
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "replace"]))
    blob = bytearray(DATA)
    if kind == "flip":
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(blob)))
        blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        blob = bytearray(data.draw(st.binary(max_size=200)))
    with pytest.raises(CorruptStreamError):
        decompress_latent(bytes(blob), PAIR.p_loc, PAIR.p_scale)


def test_a_newer_format_version_is_refused_by_name():
    blob = bytearray(DATA)
    blob[3] = 99
    with pytest.raises(CorruptStreamError, match="version 99 is not supported"):
        decompress_latent(bytes(blob), PAIR.p_loc, PAIR.p_scale)


def test_a_standalone_file_is_magic_version_a_few_header_bytes_the_ans_words_and_a_checksum():
    from irec.coder import CoderParams, LatentEncoder

    encoder = LatentEncoder(CoderParams(block_size=100), describe_shapes=True)
    encoder.encode_level(PAIR.q_loc, PAIR.q_scale, PAIR.p_loc, PAIR.p_scale)
    header, payload = latent_streams(encoder)
    # N, block size, seed, sampler, level count, rank + 3 dims: 10 one-byte varints here (the step counts'
    # minimum and span travel in the ANS stream)
    assert len(header) <= 10
    assert len(DATA) == 3 + 1 + len(header) + len(payload) + 4


def test_step_counts_travel_in_the_ans_stream_from_zero_to_the_largest_allowed_count():
    from irec.coder.latent_codec import MAX_STEPS, _pull_count, _push_count

    values = [0, 1, 2, 3, 5, 7, 8, 100, 4097, MAX_STEPS]
    s = SymbolWriter()
    for v in values:
        _push_count(s, v, "steps")
    payload, bits = s.finish()
    r = SymbolReader(payload)
    assert [_pull_count(r) for _ in values] == values
    assert r.exhausted()
    # a small count costs a few bits, not the byte of a varint (many of them, so the ANS state's bits amortize)
    small = SymbolWriter()
    for _ in range(100):
        _push_count(small, 3, "steps")
    assert small.finish()[1]["steps"] / 100 < 4
