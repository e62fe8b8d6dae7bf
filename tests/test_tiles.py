"""Large images in tiles (irec.codecs.tiles): each tile an ordinary irec file, so tiles code in parallel and a
damaged byte loses only its tile (paper, section 4.1 codes Kodak losslessly; docs/irec-method.md section 4)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irec import paths
from irec.__main__ import main
from irec.checkpoint import weights_fingerprint
from irec.codecs import tiles
from irec.codecs.container import MAGIC, WrongModelError, peek_header
from irec.codecs.encoding import HEADER, PIXELS, TAIL
from irec.codecs.lossless import LosslessCodec
from irec.coder import CorruptStreamError
from irec.data import read_image, write_png
from tests.models import save_small, small_lossless
from tests.roundtrip import assert_roundtrip


@functools.cache
def codec(tile_size: int, seed: int = 0) -> LosslessCodec:
    """A codec of an untrained smoke-preset RVAE (seeded: the same model in every call) with ``tile_size``."""
    model = small_lossless(seed)
    return LosslessCodec(model, weights_fingerprint(model.state_dict()), tile_size=tile_size)


def image_of(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tile_span(data: bytes, index: int) -> tuple[int, int]:
    """The bytes [start, end) of tile ``index`` in a tiled file."""
    header = tiles.read_header(data)
    start = header.header_bytes + sum(header.lengths[:index])
    return start, start + header.lengths[index]


def test_tile_boxes_cover_the_image_row_major_with_the_last_row_and_column_smaller():
    assert tiles.tile_boxes(20, 18, 8) == [
        (0, 8, 0, 8), (0, 8, 8, 16), (0, 8, 16, 18),
        (8, 16, 0, 8), (8, 16, 8, 16), (8, 16, 16, 18),
        (16, 20, 0, 8), (16, 20, 8, 16), (16, 20, 16, 18)]
    assert tiles.tile_boxes(5, 7, 8) == [(0, 5, 0, 7)] and tiles.tile_count(20, 18, 8) == 9


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(1, 40), width=st.integers(1, 40), tile_size=st.sampled_from([4, 6, 8, 10, 12, 14, 16]),
       seed=st.integers(0, 2**32 - 1))
def test_images_of_any_size_round_trip_through_tiles_of_any_even_size(height, width, tile_size, seed):
    image, coder = image_of(height, width, seed), codec(tile_size)
    data = assert_roundtrip(lambda: (coder.compress(image), image), coder.decompress)
    assert tiles.is_tiled(data) == (height > tile_size or width > tile_size)


def test_an_image_no_larger_than_a_tile_gives_the_same_bytes_as_before_tiling_existed():
    image = image_of(16, 11)
    data = codec(16).compress(image)
    assert data.startswith(MAGIC) and not tiles.is_tiled(data)
    assert data == codec(64).compress(image) == codec(16).encode_tile(image).data
    encoding = codec(16).encode(image)
    assert (encoding.details["tiles"], encoding.details["tile_size"]) == (1, 16)


def test_the_parts_of_a_tiled_file_add_up_to_its_bytes_and_are_the_tiles_sums():
    image, coder = image_of(20, 18), codec(8)
    encoding = coder.encode(image)
    assert sum(encoding.bits.values()) == pytest.approx(8 * len(encoding.data), abs=1e-6)
    assert list(encoding.bits) == [HEADER, *coder.levels, PIXELS, TAIL]
    boxes = tiles.tile_boxes(20, 18, 8)
    parts = [coder.encode_tile(image[r0:r1, c0:c1]) for r0, r1, c0, c1 in boxes]
    wrapper = tiles.read_header(encoding.data).header_bytes
    assert encoding.bits[HEADER] == pytest.approx(8 * wrapper + sum(p.bits[HEADER] for p in parts))
    for part in (*coder.levels, PIXELS, TAIL):
        assert encoding.bits[part] == pytest.approx(sum(p.bits[part] for p in parts))
        assert encoding.ideal_bits.get(part, 0.0) == pytest.approx(sum(p.ideal_bits.get(part, 0.0) for p in parts))
    elbo = sum(coder.negative_elbo_bpd(image[r0:r1, c0:c1]) * (r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in boxes)
    elbo /= 20 * 18
    assert encoding.details == {"negative_elbo_bpd": pytest.approx(elbo), "tiles": 9, "tile_size": 8}
    assert encoding.n_pixels == 20 * 18 and encoding.data == coder.compress(image)


def test_the_tile_map_given_codes_the_tiles_and_the_file_is_the_same_as_with_map():
    image, coder = image_of(12, 20), codec(8)
    calls = []

    def recording_map(function, items):
        items = list(items)
        calls.append((function.__name__, len(items)))
        return [function(item) for item in items]

    data = coder.encode(image, tile_map=recording_map).data
    assert data == coder.compress(image)
    assert np.array_equal(coder.decompress(data, tile_map=recording_map), image)
    assert calls == [("encode_tile", 6), ("negative_elbo_bpd", 6), ("try_decode_tile", 6)]


def test_compressing_leaves_out_the_elbo_and_encoding_computes_it_after_the_file(monkeypatch):
    image, coder = image_of(12, 20), codec(8)
    expected = coder.encode(image)
    monkeypatch.setattr(coder, "negative_elbo_bpd", lambda tile: pytest.fail("compress computed the -ELBO"))
    assert coder.compress(image) == expected.data
    assert "negative_elbo_bpd" not in coder.encode(image, elbo=False).details
    assert expected.details["negative_elbo_bpd"] > 0


def test_a_damaged_tile_loses_only_itself():
    image, coder = image_of(20, 18), codec(8)
    data = bytearray(coder.compress(image))
    start, end = tile_span(bytes(data), 4)
    data[(start + end) // 2] ^= 0x10
    with pytest.raises(CorruptStreamError, match=r"tile 4 of 9 \(rows 8-15, columns 8-15\) is damaged: .*checksum"):
        coder.decompress(bytes(data))
    salvaged, damaged = coder.decompress_salvaging(bytes(data))
    assert damaged == [(8, 16, 8, 16)]
    expected = image.copy()
    expected[8:16, 8:16] = 0
    assert np.array_equal(salvaged, expected)


def test_salvaging_a_truncated_tiled_file_keeps_the_tiles_before_the_cut():
    image, coder = image_of(20, 18), codec(8)
    data = coder.compress(image)
    start, _ = tile_span(data, 7)
    salvaged, damaged = coder.decompress_salvaging(data[: start + 3])
    assert damaged == tiles.tile_boxes(20, 18, 8)[7:]
    assert np.array_equal(salvaged[:16], image[:16]) and np.array_equal(salvaged[16:, :8], image[16:, :8])
    assert not salvaged[16:, 8:].any()


def test_an_untiled_file_is_salvaged_whole_or_raises_as_decompress_does():
    image, coder = image_of(8, 8), codec(8)
    data = coder.compress(image)
    salvaged, damaged = coder.decompress_salvaging(data)
    assert np.array_equal(salvaged, image) and damaged == []
    broken = bytearray(data)
    broken[len(data) // 2] ^= 1
    with pytest.raises(CorruptStreamError, match="checksum"):
        coder.decompress_salvaging(bytes(broken))


@pytest.mark.parametrize("cut", [3, 4, 9, "before the first tile", "inside a tile"])
def test_a_truncated_tiled_file_raises_a_corrupt_stream_error_that_says_so(cut):
    coder = codec(8)
    data = coder.compress(image_of(20, 18))
    header_bytes = tiles.read_header(data).header_bytes
    end = {"before the first tile": header_bytes, "inside a tile": tile_span(data, 3)[0] + 5}.get(cut, cut)
    message = "truncated" if isinstance(cut, str) else "ends inside its header|damaged or truncated"
    with pytest.raises(CorruptStreamError, match=message):
        coder.decompress(data[:end])
    with pytest.raises(CorruptStreamError, match="extra bytes"):
        coder.decompress(data + b"\0")


@pytest.mark.parametrize("at", ["version", "height", "a tile length", "the header's crc"])
def test_a_damaged_tiled_header_raises_a_corrupt_stream_error_even_when_salvaging(at):
    coder = codec(8)
    data = bytearray(coder.compress(image_of(20, 18)))
    header_bytes = tiles.read_header(bytes(data)).header_bytes
    offset = {"version": 3, "height": 8, "a tile length": header_bytes - 6, "the header's crc": header_bytes - 1}[at]
    data[offset] ^= 0x01
    message = "version 0 is not supported" if at == "version" else "header is damaged or truncated"
    for decode in (coder.decompress, coder.decompress_salvaging):
        with pytest.raises(CorruptStreamError, match=message):
            decode(bytes(data))


def test_another_models_tiled_file_raises_wrong_model_error():
    data = codec(8).compress(image_of(20, 18))
    with pytest.raises(WrongModelError, match="tiled file.*fingerprint"):
        codec(8, seed=1).decompress(data)
    with pytest.raises(WrongModelError):
        codec(8, seed=1).decompress_salvaging(data)


def test_peek_gives_the_model_and_size_of_tiled_and_ordinary_files():
    coder = codec(8)
    tiled, single = coder.compress(image_of(20, 18)), coder.compress(image_of(5, 7))
    header = tiles.peek(tiled)
    assert (header.kind, header.height, header.width, header.tile_size, header.n_tiles) == ("lossless", 20, 18, 8, 9)
    assert header.fingerprint == bytes.fromhex(coder.fingerprint)[:4]
    assert tiles.peek(single) == peek_header(single)


@pytest.mark.parametrize("tile_size", [0, 3, -2, 2.0, True])
def test_a_tile_size_that_is_not_an_even_integer_of_at_least_2_is_refused(tile_size):
    model = small_lossless()
    with pytest.raises(ValueError, match="even integer >= 2"):
        LosslessCodec(model, weights_fingerprint(model.state_dict()), tile_size=tile_size)


# ------------------------------------------------------------------------------------------------ the commands
@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A private cache, no shipped models, a smoke model file and a 20x18 PNG."""
    monkeypatch.setenv("IREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "SHIPPED_MODELS", tmp_path / "shipped")
    model_path = tmp_path / "smoke.pt"
    save_small("lossless", model_path, seed=0)
    image = image_of(20, 18)
    write_png(tmp_path / "in.png", image)
    return tmp_path, model_path, image


def test_the_commands_compress_decompress_and_describe_a_tiled_file(setup, capsys):
    tmp, model_path, image = setup
    args = ["compress", "--model", str(model_path), "--tile-size", "8", str(tmp / "in.png"), str(tmp / "x.irec")]
    assert main(args) == 0
    assert tiles.is_tiled((tmp / "x.irec").read_bytes()) and "verified by decoding" in capsys.readouterr().out
    assert main(["decompress", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)
    assert " in 9 tiles " in capsys.readouterr().out
    assert main(["info", str(tmp / "x.irec")]) == 0
    out = capsys.readouterr().out
    for line in ("kind: lossless", "height: 20", "width: 18", "tile_size: 8", "tiles: 9",
                 f"bytes: {(tmp / 'x.irec').stat().st_size}"):
        assert line in out


def test_decompress_finds_a_tiled_files_model_by_its_fingerprint(setup):
    tmp, model_path, image = setup
    cached = paths.cache_root() / "models" / "tiny.pt"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(model_path.read_bytes())
    options = ["-q", "--model", "tiny", "--tile-size", "8"]
    assert main(["compress", *options, str(tmp / "in.png"), str(tmp / "x.irec")]) == 0
    assert main(["decompress", "-q", str(tmp / "x.irec"), str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)


def test_decompress_salvage_writes_the_intact_tiles_and_names_the_lost_one(setup, capsys):
    tmp, model_path, image = setup
    main(["compress", "-q", "--model", str(model_path), "--tile-size", "8", str(tmp / "in.png"), str(tmp / "x.irec")])
    data = bytearray((tmp / "x.irec").read_bytes())
    start, end = tile_span(bytes(data), 2)
    data[(start + end) // 2] ^= 0x04
    (tmp / "x.irec").write_bytes(bytes(data))
    decode = ["decompress", "--model", str(model_path), str(tmp / "x.irec"), str(tmp / "out.png")]
    assert main(decode) == 2
    assert "tile 2 of 9 (rows 0-7, columns 16-17) is damaged" in capsys.readouterr().err
    assert not (tmp / "out.png").exists()
    assert main([*decode, "--salvage"]) == 1
    err = capsys.readouterr().err
    assert "1 of 9 tiles damaged" in err and "tile 2 (rows 0-7, columns 16-17)" in err
    expected = image.copy()
    expected[0:8, 16:18] = 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), expected)


def test_compress_tile_size_on_a_lossy_model_or_an_odd_size_exits_with_code_2_and_says_why(setup, capsys):
    tmp, model_path, _ = setup
    save_small("lossy", tmp / "lossy.pt")
    args = ["compress", "--model", str(tmp / "lossy.pt"), "--tile-size", "8", str(tmp / "in.png"), str(tmp / "y.irec")]
    assert main(args) == 2
    assert "--tile-size applies to lossless models" in capsys.readouterr().err
    args = ["compress", "--model", str(model_path), "--tile-size", "7", str(tmp / "in.png"), str(tmp / "y.irec")]
    assert main(args) == 2
    assert "even integer >= 2" in capsys.readouterr().err and not (tmp / "y.irec").exists()


def test_one_images_tiles_coded_by_two_workers_give_the_same_file(setup):
    tmp, model_path, image = setup
    options = ["-q", "--model", str(model_path), "--tile-size", "8", str(tmp / "in.png")]
    assert main(["compress", *options, "--workers", "1", str(tmp / "one.irec")]) == 0
    assert main(["compress", *options, "--workers", "2", str(tmp / "two.irec")]) == 0
    assert (tmp / "one.irec").read_bytes() == (tmp / "two.irec").read_bytes()
    decode = ["decompress", "-q", "--model", str(model_path), "--workers", "2", str(tmp / "two.irec")]
    assert main([*decode, str(tmp / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp / "out.png"), image)
