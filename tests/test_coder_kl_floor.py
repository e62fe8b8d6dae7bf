"""The search's KL floor (``CoderParams.ignore_kl_below``): dimensions whose KL(q || p) is below it are left out of
the scores, the encoder alone changes, and every file still decodes to the encoder's sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irec.coder import CoderParams, LatentEncoder, compress_latent, decompress_latent
from irec.coder.synthetic import synthetic_pair
from tests.roundtrip import assert_roundtrip

SHAPE = (3, 10, 12)  # 360 dimensions, 20% of them carrying the KL


def _pair(seed: int = 4):
    return synthetic_pair(SHAPE, kl_nats=120.0, active_fraction=0.2, seed=seed)


def _indices(pair, floor: float) -> list[np.ndarray]:
    """The coded indices of every block (what the file holds besides the step counts)."""
    encoder = LatentEncoder(CoderParams(kl_per_step=4.0, n_beams=20, block_size=90, seed=1, ignore_kl_below=floor))
    encoder.encode_level(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale)
    return [indices for _, _, _, indices in encoder._levels]


def _prior_where(pair, mask: torch.Tensor):
    """``pair`` with q set to p in the dimensions of ``mask``."""
    q_loc, q_scale = (torch.where(mask, p, q) for q, p in ((pair.q_loc, pair.p_loc), (pair.q_scale, pair.p_scale)))
    return type(pair)(q_loc, q_scale, pair.p_loc, pair.p_scale)


def _kl(pair) -> torch.Tensor:
    qm, qs, pm, ps = (x.double() for x in (pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale))
    return torch.log(ps / qs) + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5


@pytest.mark.parametrize("floor", [1e-3, 0.05, 1e9])  # the last leaves every dimension out
@pytest.mark.parametrize("sampler", ["beam", "sample"])
def test_a_file_coded_with_a_kl_floor_decodes_to_the_encoders_sample(floor, sampler):
    pair = _pair()
    assert_roundtrip(
        lambda: compress_latent(pair.q_loc, pair.q_scale, pair.p_loc, pair.p_scale, n_beams=8, block_size=90,
                                seed=2, sampler=sampler, ignore_kl_below=floor),
        lambda data: decompress_latent(data, pair.p_loc, pair.p_scale),
    )


def test_a_floor_below_every_dimensions_kl_codes_the_same_file_as_no_floor():
    pair = _pair()
    pair = type(pair)(pair.q_loc, pair.q_scale * 0.999, pair.p_loc, pair.p_scale)  # every dimension's KL > 0
    floor = 0.5 * float(_kl(pair).min())
    assert floor > 0
    assert all(np.array_equal(a, b) for a, b in zip(_indices(pair, floor), _indices(pair, 0.0)))


def test_dimensions_below_the_floor_do_not_change_what_the_search_chooses():
    pair = _pair()
    below = _kl(pair) < 1e-3
    assert 0.5 < float(below.double().mean()) < 0.95 and float(_kl(pair)[below].max()) > 0
    flattened = _prior_where(pair, below)  # q = p where the KL was below the floor: those terms vanish
    with_floor = [_indices(p, 1e-3) for p in (pair, flattened)]
    without = [_indices(p, 0.0) for p in (pair, flattened)]
    assert all(np.array_equal(a, b) for a, b in zip(*with_floor))
    assert not all(np.array_equal(a, b) for a, b in zip(*without)), "without a floor, those dimensions score"


def test_a_negative_or_infinite_floor_is_refused_with_a_clear_error():
    for floor in (-1e-3, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="ignore_kl_below"):
            CoderParams(ignore_kl_below=floor)
