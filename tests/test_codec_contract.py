"""Both iREC codecs keep one contract (irec.codecs): ``encode(image) -> Encoding``, ``compress`` its data,
``decompress`` what the encoding promised, and the same errors for the other kind's file, another model's file and
damaged bytes."""

from __future__ import annotations

import numpy as np
import pytest

from irec.checkpoint import weights_fingerprint
from irec.codecs import codec_class
from irec.codecs.container import WrongModelError
from irec.codecs.encoding import HEADER, PIXELS, TAIL, Encoding
from irec.coder import CorruptStreamError
from irec.settings import CODER_SETTINGS
from tests.models import small_lossless, small_lossy
from tests.roundtrip import assert_roundtrip

KINDS = ("lossless", "lossy")
OTHER = {"lossless": "lossy", "lossy": "lossless"}
IMAGE = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def make(kind: str, seed: int = 0):
    """A codec of ``kind`` for a small untrained model, at the paper's coder setting (quick)."""
    model = small_lossless(seed) if kind == "lossless" else small_lossy(seed=seed)
    return codec_class(kind)(model, weights_fingerprint(model.state_dict()), CODER_SETTINGS[f"paper-{kind}"])


@pytest.fixture(scope="module")
def codecs() -> dict:
    return {kind: make(kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_both_codecs_encode_an_image_into_an_encoding_that_decodes_to_its_image_and_whose_parts_make_the_file(
        codecs, kind):
    codec = codecs[kind]
    encoding = codec.encode(IMAGE)
    assert isinstance(encoding, Encoding) and encoding.params == codec.params and encoding.encode_seconds > 0
    assert sum(encoding.bits.values()) == pytest.approx(8 * len(encoding.data), abs=1e-6)
    assert list(encoding.bits)[0] == HEADER and list(encoding.bits)[-1] == TAIL
    assert [part for part in encoding.ideal_bits if part != PIXELS] == list(encoding.levels)
    assert encoding.n_bytes == len(encoding.data) and encoding.n_pixels == 24 * 40
    assert encoding.bpp == pytest.approx(3 * encoding.bpd) == pytest.approx(8 * len(encoding.data) / (24 * 40))
    assert encoding.ideal_bpp == pytest.approx(sum(encoding.ideal_bits.values()) / (24 * 40))
    assert codec.compress(IMAGE) == encoding.data
    assert_roundtrip(lambda: (encoding.data, encoding.image), codec.decompress)
    if kind == "lossless":
        assert np.array_equal(encoding.image, IMAGE) and PIXELS in encoding.bits


@pytest.mark.parametrize("kind", KINDS)
def test_both_codecs_refuse_a_file_of_the_other_kind_and_one_of_another_model_with_wrong_model_error(codecs, kind):
    with pytest.raises(WrongModelError, match=f"this is a {OTHER[kind]} irec file"):
        codecs[kind].decompress(codecs[OTHER[kind]].compress(IMAGE))
    with pytest.raises(WrongModelError, match="fingerprint"):
        make(kind, seed=1).decompress(codecs[kind].compress(IMAGE))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "empty"])
def test_both_codecs_raise_corrupt_stream_error_for_damaged_bytes(codecs, kind, damage):
    data = bytearray(codecs[kind].compress(IMAGE))
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip a byte":
        data[len(data) // 2] ^= 0x20
    else:
        data = bytearray()
    with pytest.raises(CorruptStreamError):
        codecs[kind].decompress(bytes(data))
