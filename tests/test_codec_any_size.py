"""Files of any size decode, in a fresh process as ``irec decompress`` runs, to what the encoder promised.

Lossless files to the exact pixels, lossy files to exactly the encoder's reconstruction, for heights and widths of
1 to 96 in both orientations. The decoder runs in a new process forked from a server that has imported the codecs
but run nothing, with the machine's default thread counts: there its first coder call starts numba's threads, as
in a real ``irec decompress``. Decoding in this process, whose threads started long ago, or under
``NUMBA_NUM_THREADS=1`` (tests.roundtrip.decode_in_fresh_process), hid a bug: that start set torch's intra-op
threads back to all cores inside ``pinned()``, and at an odd padded H/2 (33x32, 17x17, 22x26, ...) the transposed
convolution of p(x | z) then gave other floats than the encoder's one thread, so the file failed to decode.
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from irec.checkpoint import weights_fingerprint
from irec.codecs.lossless import LosslessCodec
from irec.codecs.lossy import LossyCodec
from tests.models import small_lossless, small_lossy
from tests.roundtrip import assert_identical


@functools.cache
def codec(kind: str) -> LosslessCodec | LossyCodec:
    """The one place this file builds models: untrained smoke-preset ones, seeded, so every process builds the same."""
    model = small_lossless() if kind == "lossless" else small_lossy()
    codec_class = LosslessCodec if kind == "lossless" else LossyCodec
    return codec_class(model, weights_fingerprint(model.state_dict()))


SIDES = st.integers(min_value=1, max_value=96)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
ANY_SIZE = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode(kind: str, data: bytes) -> np.ndarray:
    return codec(kind).decompress(data)


@pytest.fixture(scope="module")
def decode_in_fresh_process():
    """``(kind, data) -> image``, decoded in a new process for each file (forked from a server that only imported)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the forkserver start method (POSIX)")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1) as pool:
        yield lambda kind, data: pool.submit(_decode, kind, data).result(timeout=300)


# Sizes whose lossless files did not decode in a fresh process before pinned() started numba's threads first
REPORTED_SIZES = ((33, 32), (17, 17), (65, 65), (2, 3), (22, 26), (46, 70))


def with_reported_sizes(test):
    """The test, with each of REPORTED_SIZES as an explicit hypothesis example."""
    for height, width in REPORTED_SIZES:
        test = example(height=height, width=width, seed=0)(test)
    return test


def image_of(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@ANY_SIZE
@given(height=SIDES, width=SIDES, seed=SEEDS)
@with_reported_sizes
def test_lossless_files_of_any_size_decode_to_the_exact_pixels(decode_in_fresh_process, height, width, seed):
    image = image_of(height, width, seed)
    data = codec("lossless").compress(image)
    assert_identical(image, decode_in_fresh_process("lossless", data))


@ANY_SIZE
@given(height=SIDES, width=SIDES, seed=SEEDS)
@with_reported_sizes
def test_lossy_files_of_any_size_decode_to_exactly_the_encoders_reconstruction(
    decode_in_fresh_process, height, width, seed
):
    encoding = codec("lossy").encode(image_of(height, width, seed))
    assert encoding.image.shape == (height, width, 3)
    assert_identical(encoding.image, decode_in_fresh_process("lossy", encoding.data))
