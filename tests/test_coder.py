"""The REC coder end to end: round trips for every sampler, fresh-process decoding, rates and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import threadpoolctl
import torch

from irec.coder import (
    CoderParams, CorruptStreamError, LatentEncoder, compress_latent, decompress_latent, randomness,
)
from irec.coder.bitstream import SymbolWriter
from irec.coder.schedule import level_layout, step_counts
from irec.coder.search import GEMM_MIN_BEAMS, _score_block, _top_k, search
from irec.coder.synthetic import synthetic_pair
from irec.distributions import DiagGaussian
from tests.roundtrip import (
    assert_identical, assert_roundtrip, decode_in_fresh_process, latent_decoder, latent_streams,
)

ITERATIVE = ["beam", "greedy", "sample"]


def _pair(shape=(4, 9, 7), kl=60.0, seed=0):
    return synthetic_pair(shape, kl, 1.0 if math.prod(shape) < 10 else 0.2, seed)


@pytest.mark.parametrize("sampler", ITERATIVE)
@pytest.mark.parametrize("shape,block_size,seed", [((252,), 100, 0), ((4, 9, 7), 1000, 3), ((2, 3, 5, 7), 64, 11), ((1,), 10, 5)])
def test_decompress_latent_rebuilds_the_encoders_sample_exactly(sampler, shape, block_size, seed):
    pair = _pair(shape, kl=max(3.0, 0.2 * math.prod(shape)), seed=seed)
    assert_roundtrip(
        lambda: compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, block_size=block_size,
                                seed=seed, sampler=sampler),
        lambda data: decompress_latent(data, pair.p_loc, pair.p_scale),
    )


def test_files_encoded_with_two_threads_decode_identically_in_a_fresh_single_thread_process(tmp_path):
    torch.set_num_threads(2)
    cases = {}
    for shape, block_size, seed in [((8, 16, 16), 1000, 7), ((3, 7, 11), 100, 1), ((2000,), 333, 12345)]:
        pair = _pair(shape, kl=0.2 * math.prod(shape), seed=seed)
        for sampler in ITERATIVE:
            data, z = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, sampler=sampler,
                                      seed=seed, block_size=block_size)
            cases[f"{shape}-{seed}-{sampler}"] = {"data": data, "z": z, "p_loc": pair.p_loc, "p_scale": pair.p_scale}
    script = (
        "from irec.coder import decompress_latent\n"
        "out = {k: decompress_latent(c['data'], c['p_loc'], c['p_scale']) for k, c in inputs.items()}\n"
        "torch.save(out, OUTPUT)\n"
    )
    decoded = decode_in_fresh_process(script, cases, tmp_path, threads=1)
    assert set(decoded) == set(cases)
    for key, case in cases.items():
        assert_identical(case["z"], decoded[key])


def test_the_chosen_indices_do_not_depend_on_the_thread_count(tmp_path):
    pair = _pair((8, 16, 16), kl=300.0, seed=2)
    data, _ = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, seed=2)
    script = (
        "from irec.coder import compress_latent\n"
        "p = inputs['pair']\n"
        "torch.save(compress_latent(p.q_loc, p.q_scale, p.p_loc, p.p_scale, seed=2)[0], OUTPUT)\n"
    )
    assert decode_in_fresh_process(script, {"pair": pair}, tmp_path, threads=1) == data


def test_the_real_rate_is_close_to_the_number_of_steps_times_log2_n():
    pair = _pair((16, 32, 32), kl=3000.0, seed=1)
    encoder = LatentEncoder(CoderParams(seed=1))
    encoder.encode_level(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)
    symbols = SymbolWriter()
    encoder.write_symbols(symbols)
    payload, bits = symbols.finish()
    stats = encoder.stats[0]
    assert stats.n_steps >= math.ceil(stats.kl_nats / 3.0)
    # uniform coding is exact up to the ANS coder's start-up state (at most 64 bits)
    assert stats.index_bits - 1 <= bits["level0/indices"] <= stats.index_bits + 64
    assert 8 * len(payload) < stats.index_bits + bits.get("level0/steps", 0) + 64 + 32
    assert stats.kl_nats == pytest.approx(pair.kl_nats(), rel=1e-9)


def test_levels_code_incrementally_into_one_container_and_decode_in_order():
    params = CoderParams(n_beams=4, seed=9, block_size=200)
    pairs = [_pair((3, 8, 8), 40.0, seed=s) for s in range(3)]
    encoder = LatentEncoder(params, describe_shapes=False)
    coded = []
    for pair in pairs:
        # each level's prior depends on the coded sample of the level above, as in the codecs
        shift = coded[-1].mean() if coded else 0.0
        coded.append(encoder.encode_level(pair.q_loc + shift, pair.q_scale, pair.p_loc + shift, pair.p_scale))
    decoder = latent_decoder(*latent_streams(encoder), shapes=[p.p_loc.shape for p in pairs])
    decoded = []
    for pair in pairs:
        shift = decoded[-1].mean() if decoded else 0.0
        decoded.append(decoder.decode_level(pair.p_loc + shift, pair.p_scale))
    for z, zz in zip(coded, decoded):
        assert_identical(z, zz)


def test_a_block_with_zero_kl_takes_no_index_and_is_a_sample_of_the_prior_not_its_mean():
    p_loc, p_scale = torch.zeros(500), torch.ones(500)
    data, z = compress_latent(p_loc, p_scale, p_loc, p_scale, block_size=100)
    assert_identical(z, decompress_latent(data, p_loc, p_scale))
    assert not torch.equal(z, p_loc)
    assert 0.8 < z.std().item() < 1.2
    assert len(data) < 40  # header and checksum only: no index was sent


def test_mixed_zero_and_nonzero_kl_blocks_round_trip():
    pair = _pair((600,), kl=100.0, seed=4)
    q_loc, q_scale = pair.q_loc.clone(), pair.q_scale.clone()
    q_loc[:300], q_scale[:300] = pair.p_loc[:300], pair.p_scale[:300]
    assert_roundtrip(
        lambda: compress_latent(q_loc, q_scale, pair.p_loc, pair.p_scale, block_size=10, seed=4),
        lambda data: decompress_latent(data, pair.p_loc, pair.p_scale),
    )


def test_float64_tensors_keep_their_dtype_through_the_round_trip():
    pair = _pair((50,), kl=20.0)
    q = [x.double() for x in (pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)]
    data, z = compress_latent(*q)
    assert z.dtype == torch.float64
    assert_identical(z, decompress_latent(data, q[2], q[3]))


def test_beam_search_codes_a_sample_with_a_higher_weight_than_greedy_search():
    pair = _pair((2000,), kl=300.0, seed=5)
    ratio = {}
    for sampler in ("beam", "greedy"):
        encoder = LatentEncoder(CoderParams(sampler=sampler, n_beams=10, seed=5))
        encoder.encode_level(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)
        ratio[sampler] = encoder.stats[0].log_ratio_nats
    assert ratio["beam"] > ratio["greedy"]


@pytest.mark.parametrize("gemm", [False, True])  # the loop (B < GEMM_MIN_BEAMS), then sgemm
def test_the_search_scores_every_beam_and_candidate_as_a_float64_reference_does(gemm):
    rng = np.random.default_rng(3)
    dims, n_cand, n_beams, n_valid = 37, 50, 24, 20
    std = rng.uniform(0.2, 1.0, dims).astype(np.float32)
    u, l = rng.normal(size=dims).astype(np.float32), rng.normal(size=dims).astype(np.float32)
    beams = rng.normal(size=(n_beams, dims)).astype(np.float32)
    key = randomness.block_keys(7, 1, np.array([2]), np.array([5]))[0]
    cand, weighted = np.empty((n_cand, dims), np.float32), np.empty((n_beams, dims), np.float32)
    scores = np.full(n_beams * n_cand, np.nan)
    _score_block(key, dims, np.arange(dims), dims, n_cand, randomness.normal_table(), std, u, l, beams, n_valid, gemm,
                 cand, weighted, scores)
    eps = randomness.normals(key[None], np.arange(n_cand)[None], np.array([dims]), dims)[0].numpy()
    a, s, u64, l64 = (eps * std).astype(np.float64), beams[:n_valid].astype(np.float64), u.astype(np.float64), l.astype(np.float64)
    f = (0.5 * u64 * s**2 + l64 * s).sum(1)
    g = (0.5 * u64 * a**2 + l64 * a).sum(1)
    expected = f[:, None] + g[None, :] + (u64 * s) @ a.T
    np.testing.assert_array_equal(cand, (eps * std).astype(np.float32))
    np.testing.assert_allclose(scores[: n_valid * n_cand].reshape(n_valid, n_cand), expected, rtol=1e-4, atol=1e-3)


def test_the_search_leaves_the_blas_thread_count_as_it_found_it():
    before = [pool["num_threads"] for pool in threadpoolctl.threadpool_info()]
    pair = _pair((300,), kl=80.0, seed=2)
    params = CoderParams(n_beams=GEMM_MIN_BEAMS, block_size=100)  # the sgemm path, which the limit is for
    layout = level_layout(params.seed, 0, 300, params.block_size)
    q_mu, q_s, p_mu, p_s = (x.double() for x in (pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale))
    kl = DiagGaussian(q_mu, q_s).kl(DiagGaussian(p_mu, p_s))
    n_steps = step_counts(layout.gather(kl, 0.0).sum(1).numpy(), params.kl_per_step)
    indices = search(params, 0, layout, layout.gather(q_mu - p_mu, 0.0), layout.gather(q_s**2, 1.0),
                     layout.gather(p_s**2, 1.0), layout.gather(p_s.float(), 1.0), n_steps)
    assert indices.shape == (layout.n_blocks, GEMM_MIN_BEAMS, n_steps.max())
    assert [pool["num_threads"] for pool in threadpoolctl.threadpool_info()] == before


@pytest.mark.parametrize("n,k", [(4030, 10), (12090, 30), (7, 10), (1, 1)])
def test_the_search_keeps_the_beams_a_stable_sort_of_the_scores_would_keep(n, k):
    values = np.random.default_rng(n).normal(size=n).round(1)  # rounded: many ties, which go to the lower index
    order, top = np.empty(k, dtype=np.int64), np.empty(k)
    kept = _top_k(values, n, k, order, top)
    expected = np.argsort(-values, kind="stable")[:k]
    assert kept == len(expected)
    np.testing.assert_array_equal(order[:kept], expected)
    np.testing.assert_array_equal(top[:kept], values[expected])


def test_the_search_ranks_a_nan_score_below_every_number():
    values = np.array([np.nan, 1.0, -np.inf, 3.0, np.nan, 2.0])
    order, top = np.empty(4, dtype=np.int64), np.empty(4)
    _top_k(values, len(values), 4, order, top)
    np.testing.assert_array_equal(order, [3, 5, 1, 0])


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(q_scale=torch.zeros(10)), "strictly positive"),
        (dict(p_scale=-torch.ones(10)), "strictly positive"),
        (dict(q_scale=torch.full((10,), float("inf"))), "non-finite"),
        (dict(q_loc=torch.full((10,), float("nan"))), "non-finite"),
        (dict(q_loc=torch.zeros(11)), "shape mismatch"),
        (dict(p_loc=torch.zeros(10, dtype=torch.int64)), "floating-point"),
    ],
)
def test_bad_tensors_raise_a_value_error_that_names_the_problem(change, message):
    args = dict(q_loc=torch.zeros(10), q_scale=torch.ones(10), p_loc=torch.zeros(10), p_scale=torch.ones(10))
    args.update(change)
    with pytest.raises(ValueError, match=message):
        compress_latent(**args)


@pytest.mark.parametrize(
    "params,message",
    [(dict(sampler="annealed"), "unknown sampler"), (dict(kl_per_step=0.0), "kl_per_step"),
     (dict(kl_per_step=0.1), "candidates"), (dict(n_beams=0), "n_beams"), (dict(block_size=0), "block_size")],
)
def test_bad_coder_parameters_raise_a_value_error(params, message):
    with pytest.raises(ValueError, match=message):
        compress_latent(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3), **params)


def test_decoding_with_a_prior_of_another_shape_is_a_clear_error():
    pair = _pair((4, 5))
    data, _ = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)
    with pytest.raises(ValueError, match="wrong model"):
        decompress_latent(data, pair.p_loc.reshape(5, 4), pair.p_scale.reshape(5, 4))


def test_decoding_a_truncated_file_raises_a_clear_error():
    pair = _pair((300,), kl=100.0)
    data, _ = compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)
    for cut in (0, 3, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptStreamError):
            decompress_latent(data[:cut], pair.p_loc, pair.p_scale)


def test_a_foreign_file_is_refused_by_its_magic():
    with pytest.raises(CorruptStreamError, match="not an irec latent file"):
        decompress_latent(b"\x89PNG\r\n\x1a\n" + bytes(40), torch.zeros(3), torch.ones(3))


def test_the_numba_and_torch_decoders_agree_bit_for_bit():
    from irec.coder import randomness
    from irec.coder.schedule import block_layout
    from irec.coder.search import reconstruct, reconstruct_torch

    params = CoderParams(seed=3)
    layout = block_layout(1234, 100, randomness.permutation(3, 0, 1234))
    rng = np.random.default_rng(0)
    n_steps = rng.integers(0, 6, layout.n_blocks)
    indices = rng.integers(0, params.n_candidates, (layout.n_blocks, int(n_steps.max())))
    p_scale = layout.gather(torch.rand(1234) + 0.5, pad=1.0)
    assert_identical(reconstruct(params, 0, layout, p_scale, n_steps, indices),
                     reconstruct_torch(params, 0, layout, p_scale, n_steps, indices))


def test_select_chooses_among_the_final_beams_and_the_choice_decodes_exactly():
    pair = _pair((3000,), kl=600.0, seed=8)
    encoder = LatentEncoder(CoderParams(n_beams=6, seed=8, block_size=500))
    seen = []

    def farthest_from_zero(zs):
        seen.extend(zs)
        return max(range(len(zs)), key=lambda k: zs[k].abs().sum().item())

    z = encoder.encode_level(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, select=farthest_from_zero)
    assert len(seen) == 6 and len({float(x.sum()) for x in seen}) > 1
    assert z.abs().sum() == max(x.abs().sum() for x in seen)
    decoder = latent_decoder(*latent_streams(encoder), shapes=[pair.p_loc.shape])
    assert_identical(z, decoder.decode_level(pair.p_loc, pair.p_scale))
