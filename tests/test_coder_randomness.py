"""Shared randomness and the variance schedule: portable, addressable, never reused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irec.coder import randomness
from irec.coder.schedule import _fractions, block_layout, schedule_tables, step_counts


def test_numba_and_torch_generate_identical_candidates():
    keys = randomness.block_keys(42, 3, np.arange(17), np.arange(17) * 5)
    candidates = np.random.default_rng(0).integers(0, 2**40, size=(17, 6))
    sizes = np.random.default_rng(1).integers(1, 300, size=17)
    assert torch.equal(randomness.normals(keys, candidates, sizes, 300),
                       randomness.normals_torch(keys, candidates, sizes, 300))


def test_a_candidate_is_the_same_whether_generated_alone_or_among_others():
    keys = randomness.block_keys(0, 0, np.arange(4), np.zeros(4))
    all_ = randomness.normals(keys, np.tile(np.arange(20), (4, 1)), np.full(4, 50), 50)
    alone = randomness.normals(keys[2:3], np.array([[13]]), np.array([50]), 50)
    assert torch.equal(all_[2, 13], alone[0, 0])


def test_streams_differ_between_seeds_levels_blocks_and_steps():
    base = dict(seed=1, level=2, block=3, step=4)
    def draw(seed, level, block, step):
        key = randomness.block_keys(seed, level, np.array([block]), np.array([step]))
        return randomness.normals(key, np.array([[0]]), np.array([64]), 64)[0, 0]
    reference = draw(**base)
    for field in base:
        changed = dict(base, **{field: base[field] + 1})
        assert not torch.equal(draw(**changed), reference), field


def test_the_candidates_are_standard_normal():
    keys = randomness.block_keys(5, 0, np.arange(50), np.zeros(50))
    eps = randomness.normals(keys, np.tile(np.arange(40), (50, 1)), np.full(50, 500), 500).double()
    assert abs(eps.mean().item()) < 0.01
    assert abs(eps.std().item() - 1) < 0.01
    assert abs((eps**4).mean().item() - 3) < 0.05  # kurtosis of a normal


def test_the_normal_table_matches_its_pinned_hash():
    table = randomness.normal_table()
    assert table.dtype == np.float32 and len(table) == 2**16
    assert np.all(np.diff(table) > 0) and table[0] == -table[-1]


def test_the_permutation_is_a_seeded_permutation():
    p = randomness.permutation(7, 1, 1000)
    assert sorted(p.tolist()) == list(range(1000))
    assert np.array_equal(p, randomness.permutation(7, 1, 1000))
    assert not np.array_equal(p, randomness.permutation(7, 2, 1000))


@pytest.mark.parametrize("k", [1, 2, 5, 120])
def test_the_variance_schedule_ends_at_the_prior_variance(k):
    step, cumulative = _fractions(k)
    assert len(step) == k and cumulative[-1] == 1.0
    assert sum(step) == pytest.approx(1.0, abs=1e-12)
    assert all(s > 0 for s in step)
    # the first of k steps takes k^-0.786 of the variance (the paper's fitted power law)
    assert step[0] == pytest.approx(1.0 if k == 1 else k**-0.7864636765648174)


def test_step_counts_are_the_ceiling_of_kl_over_omega_and_zero_only_for_zero_kl():
    counts = step_counts(np.array([0.0, 1e-12, 0.01, 3.0, 3.0001, 9.5]), 3.0)
    assert counts.tolist() == [0, 0, 1, 1, 2, 4]


def test_schedule_tables_pad_blocks_and_give_zero_kl_blocks_one_full_prior_step():
    step, cumulative = schedule_tables(np.array([0, 2, 3]))
    assert step.shape == (3, 3) and step[0, 0] == 1.0 and cumulative[0, 0] == 1.0
    assert step[1, 2] == 0.0


def test_blocks_are_near_equal_and_gather_scatter_invert_each_other():
    layout = block_layout(2503, 1000, randomness.permutation(0, 0, 2503))
    assert layout.n_blocks == 3 and set(layout.sizes.tolist()) == {834, 835}
    x = torch.randn(2503)
    assert torch.equal(layout.scatter(layout.gather(x, pad=0.0)), x)
