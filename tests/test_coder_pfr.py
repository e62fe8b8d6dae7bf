"""The exact reference sampler (PFR): round trips, its preconditions, exactness against q, and its index cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from irec.bench.coder import pfr_trials
from irec.coder import CoderParams, CorruptStreamError, compress_latent, decompress_latent, pfr
from irec.coder.bitstream import SymbolReader, SymbolWriter
from irec.coder.synthetic import synthetic_pair
from tests.roundtrip import assert_identical, assert_roundtrip, decode_in_fresh_process


def _encode(q_loc, q_scale, p_loc, p_scale, block_size, seed=0):
    return pfr.encode(q_loc, q_scale, p_loc, p_scale, CoderParams(block_size=block_size, seed=seed, sampler="pfr"))


def _yardstick(kl_bits, dims, n_blocks):
    """``n_blocks`` independent copies of the yardstick pair, one block each."""
    return tuple(x.repeat(n_blocks) for x in pfr.yardstick_pair(kl_bits, dims))


def _ks_pvalue(z, q_loc, q_scale):
    return stats.kstest(stats.norm.cdf(((z - q_loc) / q_scale).double().numpy()), "uniform").pvalue


@pytest.mark.parametrize(
    "shape,block_size,seed", [((252,), 4, 0), ((4, 9, 7), 6, 1), ((2, 3, 5, 7), 5, 2), ((3, 1, 5), 3, 5)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decompress_latent_rebuilds_the_pfr_sample_exactly(shape, block_size, seed, dtype):
    pair = synthetic_pair(shape, 0.2 * math.prod(shape), 0.2, seed)
    q_loc, q_scale, p_loc, p_scale = (x.to(dtype) for x in (pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale))
    data = assert_roundtrip(
        lambda: compress_latent(q_loc, q_scale, p_loc, p_scale, block_size=block_size, seed=seed, sampler="pfr"),
        lambda data: decompress_latent(data, p_loc, p_scale),
    )
    assert data[:3] == pfr.MAGIC


def test_a_pfr_file_decodes_identically_in_a_fresh_single_thread_process(tmp_path):
    pair = synthetic_pair((6, 10, 10), 120.0, 0.2, 4)
    data, z = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, block_size=8, seed=4, sampler="pfr")
    script = (
        "from irec.coder import decompress_latent\n"
        "torch.save(decompress_latent(inputs['data'], inputs['p_loc'], inputs['p_scale']), OUTPUT)\n"
    )
    decoded = decode_in_fresh_process(script, {"data": data, "p_loc": pair.p_loc, "p_scale": pair.p_scale}, tmp_path)
    assert_identical(z, decoded)


def test_a_posterior_wider_than_the_prior_raises_a_value_error():
    q_loc, q_scale, p_loc, p_scale = pfr.yardstick_pair(2.0, 3)
    q_scale[1] = 1.5 * p_scale[1]
    with pytest.raises(ValueError, match="narrower"):
        _encode(q_loc, q_scale, p_loc, p_scale, block_size=3)


def test_equal_scales_with_different_means_raise_a_value_error_because_q_over_p_is_unbounded():
    ones = torch.ones(4)
    with pytest.raises(ValueError, match="unbounded"):
        _encode(0.1 * ones, ones, 0 * ones, ones, block_size=4)


def test_a_block_with_too_much_kl_raises_a_clear_error_and_smaller_blocks_fix_it():
    q_loc, q_scale, p_loc, p_scale = pfr.yardstick_pair(40.0, 10)
    with pytest.raises(ValueError, match=r"KL of 40\.0 bits.*smaller block_size"):
        _encode(q_loc, q_scale, p_loc, p_scale, block_size=10)
    _, _, report = _encode(q_loc, q_scale, p_loc, p_scale, block_size=1)
    assert report.kl_bits.sum() == pytest.approx(40.0)


def test_a_block_whose_density_ratio_needs_too_many_candidates_raises_a_clear_error():
    # KL is 0.4 nats but sup q/p = exp(250): PFR would examine about 2^360 candidates.
    with pytest.raises(ValueError, match=r"D_inf .* above the pfr limit of 24 bits"):
        _encode(torch.ones(1), torch.full((1,), 0.999), torch.zeros(1), torch.ones(1), block_size=1)


def test_pfr_samples_follow_q_where_beam_search_and_prior_samples_do_not():
    q_loc, q_scale, p_loc, p_scale = _yardstick(4.0, 1, 1000)
    _, z_pfr, report = _encode(q_loc, q_scale, p_loc, p_scale, block_size=1, seed=0)
    _, z_beam = compress_latent(q_loc, q_scale, p_loc, p_scale, block_size=1, seed=0, sampler="beam")
    z_prior = p_loc + p_scale * torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert _ks_pvalue(z_pfr, q_loc, q_scale) > 0.01
    assert _ks_pvalue(z_beam, q_loc, q_scale) < 0.01
    assert _ks_pvalue(z_prior, q_loc, q_scale) < 0.01
    # An exact sampler's mean log q(z)/p(z) is the KL (4 bits; its standard error here is 0.05 bits).
    assert report.log_ratio_bits.mean() == pytest.approx(4.0, abs=0.2)


def test_the_mean_index_cost_over_1000_trials_respects_kl_plus_log2_kl_plus_1_plus_4_bits():
    table = pfr_trials((1.0, 4.0, 8.0, 12.0), n_trials=1000, seed=0, dims=2)
    assert list(table["kl_bits"]) == pytest.approx([1.0, 4.0, 8.0, 12.0])
    assert (table["mean_index_bits"] <= table["bound_bits"]).all(), table
    assert (table["ans_bits"] <= table["bound_bits"]).all(), table
    assert (table["mean_index_bits"] >= table["kl_bits"]).all(), table  # no scheme beats KL on average
    assert np.allclose(table["ans_bits"], table["mean_index_bits"], atol=0.1)  # real bits match the model bits
    assert np.allclose(table["log_ratio_bits"], table["kl_bits"], atol=0.3)
    assert (table["ks_pvalue"] > 0.01).all() and table["round_trip"].all()


def test_the_per_block_report_sums_to_the_kl_and_states_the_bound():
    pair = synthetic_pair((5, 8), 12.0, 0.3, 1)
    _, _, report = _encode(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, block_size=4, seed=1)
    frame = pd.DataFrame(report.columns())
    assert len(frame) == 10
    assert frame["kl_bits"].sum() == pytest.approx(pair.kl_nats() / math.log(2), rel=1e-9)
    assert np.allclose(frame["bound_bits"], frame["kl_bits"] + np.log2(frame["kl_bits"] + 1) + 4)
    assert (frame["n_examined"] > frame["index"]).all()


def test_a_block_with_q_equal_to_p_costs_under_a_bit_and_is_a_sample_of_p_not_its_mean():
    p_loc, p_scale = torch.zeros(3), torch.ones(3)
    data, z, report = _encode(p_loc, p_scale, p_loc, p_scale, block_size=3)
    assert report.index[0] == 0 and report.index_bits[0] < 1.0
    assert not torch.equal(z, p_loc)
    assert_identical(z, decompress_latent(data, p_loc, p_scale))


def test_the_index_code_round_trips_indices_from_0_to_2_to_the_63_minus_2():
    index = np.array([0, 1, 2, 3, 2**16 - 2, 2**16 - 1, 2**16, 2**24 + 12345, 2**40 - 1, 2**62 - 1, 2**62, 2**63 - 2])
    w = SymbolWriter()
    bits = pfr._push_indices(w, index, mean_quarters=40)
    words, _ = w.finish()
    r = SymbolReader(words)
    assert_identical(index, pfr._pull_indices(r, len(index), mean_quarters=40))
    assert r.exhausted()
    assert np.all(np.diff(bits[:9]) >= 0)  # longer indices never cost less under the geometric bucket model


def test_decoding_a_corrupted_truncated_or_foreign_pfr_file_raises_a_clear_error():
    q_loc, q_scale, p_loc, p_scale = pfr.yardstick_pair(6.0, 2)
    data, _ = compress_latent(q_loc, q_scale, p_loc, p_scale, block_size=2, sampler="pfr")
    flipped = bytearray(data)
    flipped[6] ^= 0x10
    for bad in (bytes(flipped), data[:-3]):
        with pytest.raises(CorruptStreamError, match="corrupted or truncated"):
            pfr.decompress_latent(bad, p_loc, p_scale)
    with pytest.raises(CorruptStreamError, match="magic"):
        pfr.decompress_latent(b"iRL" + data[3:], p_loc, p_scale)


def test_decoding_with_a_prior_of_another_shape_is_a_clear_error():
    q_loc, q_scale, p_loc, p_scale = pfr.yardstick_pair(3.0, 4)
    data, _ = compress_latent(q_loc, q_scale, p_loc, p_scale, block_size=2, sampler="pfr")
    with pytest.raises(ValueError, match=r"coded with shape \(4,\)"):
        decompress_latent(data, p_loc.reshape(2, 2), p_scale.reshape(2, 2))
