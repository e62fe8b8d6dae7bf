"""irec.data.images: 8-bit RGB in, clear errors for everything else; pad to a multiple and crop back."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from irec.data import (
    ImageFormatError,
    centre_crop,
    crop_to,
    downsample_area,
    pad_to_multiple,
    pixel_sha256,
    read_image,
    write_png,
)
from irec.data.images import decode_image


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)


def _save(path, image: Image.Image, **kwargs):
    image.save(path, **kwargs)
    return path


# ----- accepted input -----

def test_writing_and_reading_a_png_gives_back_the_exact_pixels(tmp_path, rgb):
    path = write_png(tmp_path / "sub" / "x.png", rgb)
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == (13, 17, 3)
    np.testing.assert_array_equal(back, rgb)


def test_write_png_leaves_no_temporary_file_behind(tmp_path, rgb):
    write_png(tmp_path / "a.png", rgb)
    write_png(tmp_path / "a.png", rgb[::-1])  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb[::-1])


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_writing_anything_but_an_rgb_uint8_array_raises_a_clear_error(tmp_path, bad):
    with pytest.raises(ValueError, match="uint8|empty"):
        write_png(tmp_path / "bad.png", bad)
    assert not list(tmp_path.iterdir())


def test_an_opaque_rgba_png_is_read_without_changing_the_colours(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    path = _save(tmp_path / "opaque.png", Image.fromarray(rgba))
    assert Image.open(path).mode == "RGBA"
    np.testing.assert_array_equal(read_image(path), rgb)


def test_a_palette_image_is_expanded_to_its_exact_palette_colours(tmp_path, rng):
    palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, size=(9, 11), dtype=np.uint8)
    image = Image.fromarray(index, mode="L").convert("P")
    image.putpalette(palette.tobytes())
    path = _save(tmp_path / "palette.png", image)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_image(path), palette[index])


def test_a_grayscale_image_is_expanded_losslessly_only_when_asked(tmp_path, rng):
    gray = rng.integers(0, 256, size=(6, 7), dtype=np.uint8)
    path = _save(tmp_path / "gray.png", Image.fromarray(gray))
    with pytest.raises(ImageFormatError, match="grayscale.*expand_gray=True"):
        read_image(path)
    expanded = read_image(path, expand_gray=True)
    assert expanded.shape == (6, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(expanded[..., c], gray)


def test_decoding_bytes_in_memory_matches_reading_the_file(tmp_path, rgb):
    path = write_png(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(decode_image(path.read_bytes()), read_image(path))


# ----- refused input -----

def test_a_16bit_grayscale_png_raises_a_clear_error(tmp_path):
    path = _save(tmp_path / "g16.png", Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000))
    with pytest.raises(ImageFormatError, match="wider than 8 bits"):
        read_image(path)


@pytest.mark.parametrize("encode, suffix", [(imagecodecs.png_encode, "png"), (imagecodecs.tiff_encode, "tif")])
def test_a_16bit_rgb_file_is_refused_rather_than_truncated_to_8_bits(tmp_path, encode, suffix):
    data = (np.arange(8 * 8 * 3, dtype=np.uint16).reshape(8, 8, 3) * 301).astype(np.uint16)
    path = tmp_path / f"rgb16.{suffix}"
    path.write_bytes(encode(data))
    assert Image.open(path).mode == "RGB"  # Pillow would silently hand back the high bytes only
    with pytest.raises(ImageFormatError, match="wider than 8 bits"):
        read_image(path)


def test_an_rgba_png_with_transparent_pixels_raises_a_clear_error(tmp_path, rgb):
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[3, 4] = 128
    path = _save(tmp_path / "transparent.png", Image.fromarray(np.dstack([rgb, alpha])))
    with pytest.raises(ImageFormatError, match="1 of 221 pixels are not fully opaque"):
        read_image(path)


def test_a_grayscale_png_with_transparency_raises_even_with_expansion(tmp_path):
    la = np.dstack([np.full((4, 4), 7, np.uint8), np.zeros((4, 4), np.uint8)])
    path = _save(tmp_path / "la.png", Image.fromarray(la, mode="LA"))
    with pytest.raises(ImageFormatError, match="not fully opaque"):
        read_image(path, expand_gray=True)


def test_a_palette_png_whose_transparent_entry_is_used_raises_a_clear_error(tmp_path):
    image = Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").convert("P")
    path = _save(tmp_path / "pt.png", image, transparency=0)
    with pytest.raises(ImageFormatError, match="not fully opaque"):
        read_image(path)


def test_a_cmyk_jpeg_raises_a_clear_error(tmp_path):
    path = _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (8, 8), (10, 20, 30, 40)))
    with pytest.raises(ImageFormatError, match="CMYK"):
        read_image(path)


def test_a_truncated_png_raises_a_clear_error(tmp_path, rgb):
    data = write_png(tmp_path / "full.png", rgb).read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFormatError, match="corrupt or truncated"):
        read_image(path)


def test_a_png_with_one_corrupted_pixel_byte_raises_a_clear_error(tmp_path, rgb):
    data = bytearray(write_png(tmp_path / "full.png", rgb).read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0x01  # inside the compressed pixel data; the chunk CRC no longer matches
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFormatError, match="corrupt or truncated"):
        read_image(path)


def test_a_truncated_jpeg_raises_a_clear_error(tmp_path, rgb):
    buffer = io.BytesIO()
    Image.fromarray(np.tile(rgb, (8, 8, 1))).save(buffer, format="JPEG", quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageFormatError, match="corrupt or truncated"):
        read_image(path)


def test_random_bytes_raise_a_clear_error(tmp_path, rng):
    path = tmp_path / "noise.png"
    path.write_bytes(rng.integers(0, 256, size=1000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageFormatError, match="not an image file"):
        read_image(path)


def test_a_text_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture\n")
    with pytest.raises(ImageFormatError, match="not an image file"):
        read_image(path)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        read_image(tmp_path / "absent.png")


def test_an_animated_gif_raises_a_clear_error(tmp_path):
    frames = [Image.new("RGB", (4, 4), (i * 50, 0, 0)) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageFormatError, match="animation with 3 frames"):
        read_image(path)


# ----- pixel hashes and downsampling -----

def test_the_pixel_hash_ignores_the_file_bytes_but_not_the_pixels(tmp_path, rgb):
    fast = tmp_path / "fast.png"
    Image.fromarray(rgb).save(fast, compress_level=0)
    small = write_png(tmp_path / "small.png", rgb)
    assert fast.read_bytes() != small.read_bytes()
    assert pixel_sha256(read_image(fast)) == pixel_sha256(read_image(small))
    changed = rgb.copy()
    changed[0, 0, 0] ^= 1
    assert pixel_sha256(changed) != pixel_sha256(rgb)


def test_area_downsampling_averages_each_box_and_rounds():
    image = np.zeros((5, 4, 3), np.uint8)
    image[0:2, 0:2] = [[[0, 10, 255]], [[1, 11, 255]]]  # box means 0.5, 10.5, 255
    image[0:2, 2:4] = 100
    out = downsample_area(image, 2)
    assert out.shape == (2, 2, 3)  # the fifth row does not fill a box and is dropped
    np.testing.assert_array_equal(out[0, 0], np.rint([0.5, 10.5, 255]).astype(np.uint8))
    np.testing.assert_array_equal(out[0, 1], [100, 100, 100])
    with pytest.raises(ValueError, match="positive integer"):
        downsample_area(image, 0)


# ----- pad / crop -----

def test_padding_repeats_the_bottom_row_and_right_column():
    x = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3)[..., None].repeat(3, axis=2)  # (2, 3, 3) HWC
    padded, size = pad_to_multiple(x, 4, layout="hwc")
    assert size == (2, 3) and padded.shape == (4, 4, 3)
    np.testing.assert_array_equal(padded[:, :, 0], [[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]])
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (3, 2, 3) CHW
    tpadded, tsize = pad_to_multiple(t, 4)
    assert tsize == (2, 3)
    np.testing.assert_array_equal(tpadded.numpy().transpose(1, 2, 0), padded)


def test_an_image_already_at_the_multiple_is_returned_unchanged():
    x = torch.zeros(2, 3, 64, 128)
    padded, size = pad_to_multiple(x, 64)
    assert padded is x and size == (64, 128)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), multiple=st.integers(1, 16), batch=st.integers(0, 2))
def test_padding_to_a_multiple_and_cropping_back_round_trips(h, w, multiple, batch):
    gen = np.random.default_rng(h * 1000 + w)
    image = gen.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    padded, size = pad_to_multiple(image, multiple, layout="hwc")
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert padded.shape[0] - h < multiple and padded.shape[1] - w < multiple
    np.testing.assert_array_equal(crop_to(padded, size, layout="hwc"), image)
    chw = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()
    for _ in range(batch):
        chw = chw.unsqueeze(0)
    tpadded, tsize = pad_to_multiple(chw, multiple, layout="chw")
    assert tpadded.shape[-2] % multiple == 0 and tpadded.shape[-1] % multiple == 0
    assert torch.equal(crop_to(tpadded, tsize), chw)


def test_bad_padding_and_cropping_arguments_raise_clear_errors():
    x = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="positive integer"):
        pad_to_multiple(x, 0, layout="hwc")
    with pytest.raises(ValueError, match="layout"):
        pad_to_multiple(x, 2, layout="whc")
    with pytest.raises(ValueError, match="cannot crop a 4x4 image"):
        crop_to(x, (5, 4), layout="hwc")
    with pytest.raises(ValueError, match="no spatial axes"):
        pad_to_multiple(np.zeros((4, 3)), 2, layout="hwc")


def test_a_centre_crop_keeps_the_middle_and_leaves_small_images_whole():
    image = np.arange(6 * 8 * 3).reshape(6, 8, 3)
    assert np.array_equal(centre_crop(image, 4), image[1:5, 2:6])
    assert centre_crop(image, 16).shape == image.shape
    assert centre_crop(image, 0) is image
