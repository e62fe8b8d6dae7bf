"""Reading and writing the 8-bit RGB images the codecs take; padding to a multiple and cropping back.

The paper's codecs (Flamich et al. 2020, Section 4) code 8-bit RGB images: CIFAR-10, ImageNet32 and Kodak for
the lossless RVAE, Kodak for the lossy two-level VAE, whose H/64 latent grid needs images padded to a multiple
of 64 ("pad other sizes and crop back", docs/irec-method.md Section 5). Input that is not 8-bit RGB is refused
with an :class:`ImageFormatError`, or converted only where the conversion keeps every pixel value (documented
in :func:`read_image`); nothing changes the data silently.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from irec.fileio import atomic_write

# Pillow modes with more than 8 bits per sample (or floating point): refused, never truncated.
_HIGH_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
# Pillow modes that hold colours we cannot turn into RGB without a colour-managed (lossy) conversion.
_FOREIGN_MODES = {"CMYK", "YCbCr", "LAB", "HSV"}

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class ImageFormatError(ValueError):
    """An image file that is not, and cannot be losslessly turned into, 8-bit RGB."""


def read_image(path: str | os.PathLike, *, expand_gray: bool = False) -> np.ndarray:
    """Decode an image file into an (H, W, 3) uint8 RGB array.

    Accepted as they are: 8-bit RGB (any format Pillow reads). Converted, losslessly:

    - RGBA / LA whose alpha is 255 everywhere: the alpha channel is dropped (it carries no information);
    - palette images (mode P/PA): each index is replaced by its palette colour (exact in pixel values);
      a palette transparency entry must be unused (or opaque), as for RGBA;
    - RGBX: the padding byte is dropped;
    - grayscale (L, LA, 1-bit) only with ``expand_gray=True``: the gray value is copied into R = G = B
      (lossless: any channel gives the original back; note that it triples the number of coded dims).

    Refused with :class:`ImageFormatError`: samples wider than 8 bits (16-bit PNG/TIFF, 32-bit integer or float
    images: Pillow would truncate 16-bit RGB to 8 bits silently), any non-opaque alpha, grayscale without
    ``expand_gray``, CMYK/YCbCr/LAB/HSV, animations, corrupt or truncated files (PNG chunk CRCs are
    checked), and files that are not images. A missing file raises FileNotFoundError.
    The pixels are returned as stored: EXIF orientation and ICC profiles are not applied.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    with open(path, "rb") as f:
        return decode_image(f, name=str(path), expand_gray=expand_gray)


def decode_image(data: bytes | BinaryIO, *, name: str = "<bytes>", expand_gray: bool = False) -> np.ndarray:
    """:func:`read_image` for an encoded image held in memory or in an open binary file (e.g. an archive member)."""
    raw = data if isinstance(data, bytes) else data.read()
    try:
        with Image.open(io.BytesIO(raw)) as im:
            _check_sample_depth(im, name)
            if getattr(im, "n_frames", 1) > 1:
                raise ImageFormatError(
                    f"{name}: an animation with {im.n_frames} frames; save the frame you want as a still image"
                )
            if im.format == "PNG":
                with Image.open(io.BytesIO(raw)) as check:
                    check.verify()  # reads every chunk and checks its CRC
            im.load()
            return _to_rgb(im, name, expand_gray)
    except UnidentifiedImageError as err:
        raise ImageFormatError(f"{name}: not an image file that Pillow can read ({err})") from err
    except ImageFormatError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as err:
        raise ImageFormatError(
            f"{name}: corrupt or truncated image file ({type(err).__name__}: {err}); re-fetch or re-export it"
        ) from err


def _check_sample_depth(im: Image.Image, name: str) -> None:
    """Refuse images whose samples are wider than 8 bits, before Pillow decodes (and truncates) them."""
    rawmodes = []
    for tile in im.tile:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmodes.append(args[0] if isinstance(args, tuple) and args else str(args))
    wide = [r for r in rawmodes if isinstance(r, str) and (";16" in r or ";32" in r)]
    if im.mode in _HIGH_BIT_MODES or wide:
        detail = wide[0] if wide else im.mode
        raise ImageFormatError(
            f"{name}: samples wider than 8 bits (Pillow mode {im.mode}, raw mode {detail}); the codecs take 8-bit RGB. "
            "Reduce the bit depth yourself (a lossy step you should report), e.g. x >> 8 for 16-bit data"
        )


def _check_opaque(rgba: np.ndarray, name: str) -> np.ndarray:
    """Drop an alpha channel that is 255 everywhere; refuse any other."""
    alpha = rgba[..., -1]
    transparent = int(np.count_nonzero(alpha != 255))
    if transparent:
        raise ImageFormatError(
            f"{name}: {transparent} of {alpha.size} pixels are not fully opaque; the codecs take RGB and would lose "
            "the alpha channel. Composite the image onto a background first (or code the alpha separately)"
        )
    return rgba[..., :-1]


def _to_rgb(im: Image.Image, name: str, expand_gray: bool) -> np.ndarray:
    mode = im.mode
    if mode in _FOREIGN_MODES:
        raise ImageFormatError(
            f"{name}: colour mode {mode}; the codecs take RGB. "
            "Convert it with a colour-managed tool and report the step"
        )
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im, mode = im.convert("RGBA" if has_alpha else "RGB"), "RGBA" if has_alpha else "RGB"
    if mode == "1":
        im, mode = im.convert("L"), "L"  # 0/1 -> 0/255, a one-to-one map of the two levels
    array = np.asarray(im)
    if mode == "RGBX":
        array = array[..., :3]
    elif mode == "RGBA":
        array = _check_opaque(array, name)
    elif mode == "LA":
        array = _check_opaque(array, name)[..., 0]
    elif mode != "RGB" and mode != "L":
        raise ImageFormatError(f"{name}: unsupported Pillow mode {mode}; the codecs take 8-bit RGB")
    if array.ndim == 2:
        if not expand_gray:
            raise ImageFormatError(
                f"{name}: a grayscale image; the codecs take RGB. Pass expand_gray=True to copy the gray value into "
                "R = G = B (lossless, but it triples the coded dimensions), or convert the file to RGB yourself"
            )
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ImageFormatError(f"{name}: decoded to {array.dtype} {array.shape}, not (H, W, 3) uint8")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"{name}: an empty image ({array.shape[0]}x{array.shape[1]})")
    return np.array(array, dtype=np.uint8, order="C", copy=True)


def check_rgb_uint8(image: np.ndarray, what: str = "image") -> None:
    """Raise ValueError unless ``image`` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{what} must be an (H, W, 3) uint8 RGB numpy array, got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} is empty ({image.shape[0]}x{image.shape[1]})")


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB array as a PNG, atomically (temporary file in the same folder, then os.replace)."""
    check_rgb_uint8(image)
    with atomic_write(path) as f:
        Image.fromarray(np.ascontiguousarray(image)).save(f, format="PNG")
    return Path(path)


def pixel_sha256(image: np.ndarray) -> str:
    """sha256 of the decoded pixels: the C-order bytes of an (H, W, 3) uint8 array (independent of the PNG bytes)."""
    check_rgb_uint8(image)
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def downsample_area(image: np.ndarray, factor: int) -> np.ndarray:
    """Box (area) downsample of an (H, W, 3) uint8 image by an integer factor, rounding to the nearest integer.

    The bottom/right rows and columns that do not fill a whole box are dropped. Used on JPEG training photos
    (sun_hays80, quality about 75) to average away most of the blocking (docs/data.md).
    This is a lossy preprocessing step: use it for training data only, never for evaluation images.
    """
    check_rgb_uint8(image)
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"downsample factor must be a positive integer, got {factor!r}")
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h == 0 or w == 0:
        raise ValueError(f"a {image.shape[0]}x{image.shape[1]} image is smaller than the downsample factor {factor}")
    boxes = image[: h * factor, : w * factor].reshape(h, factor, w, factor, 3).astype(np.float64)
    return np.rint(boxes.mean(axis=(1, 3))).astype(np.uint8)


Layout = Literal["chw", "hwc"]


def _spatial_axes(x: np.ndarray | torch.Tensor, layout: Layout) -> tuple[int, int]:
    if layout not in ("chw", "hwc"):
        raise ValueError(f"layout must be 'chw' (..., H, W) or 'hwc' (..., H, W, C), got {layout!r}")
    if x.ndim < (2 if layout == "chw" else 3):
        raise ValueError(f"an array with shape {tuple(x.shape)} has no spatial axes in layout {layout!r}")
    return (x.ndim - 2, x.ndim - 1) if layout == "chw" else (x.ndim - 3, x.ndim - 2)


def pad_to_multiple(x: Array, multiple: int, *, layout: Layout = "chw") -> tuple[Array, tuple[int, int]]:
    """Pad the spatial axes of ``x`` at the bottom and right, repeating the edge pixels, to a multiple of ``multiple``.

    ``layout='chw'``: the last two axes are (H, W), as in torch's (C, H, W) and (N, C, H, W).
    ``layout='hwc'``: the axes -3, -2 are (H, W), as in the (H, W, 3) arrays of :func:`read_image`.
    Works on numpy arrays and torch tensors of any dtype. Returns the padded array and the original (H, W);
    ``crop_to(padded, size, layout=...)`` gives ``x`` back exactly.
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    ax_h, ax_w = _spatial_axes(x, layout)
    h, w = int(x.shape[ax_h]), int(x.shape[ax_w])
    if h == 0 or w == 0:
        raise ValueError(f"cannot pad an empty {h}x{w} image")
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if isinstance(x, torch.Tensor):
        rows = torch.arange(h + ph, device=x.device).clamp_(max=h - 1)
        cols = torch.arange(w + pw, device=x.device).clamp_(max=w - 1)
        return x.index_select(ax_h, rows).index_select(ax_w, cols), (h, w)
    pad = [(0, 0)] * x.ndim
    pad[ax_h], pad[ax_w] = (0, ph), (0, pw)
    return np.pad(x, pad, mode="edge"), (h, w)


def crop_to(x: Array, size: tuple[int, int], *, layout: Layout = "chw") -> Array:
    """Keep the top-left ``size = (H, W)`` of the spatial axes of ``x`` (the inverse of :func:`pad_to_multiple`)."""
    ax_h, ax_w = _spatial_axes(x, layout)
    h, w = (int(s) for s in size)
    if not (0 < h <= x.shape[ax_h] and 0 < w <= x.shape[ax_w]):
        raise ValueError(
            f"cannot crop a {x.shape[ax_h]}x{x.shape[ax_w]} image (layout {layout!r}) to {h}x{w}"
        )
    index = [slice(None)] * x.ndim
    index[ax_h], index[ax_w] = slice(0, h), slice(0, w)
    return x[tuple(index)]


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` crop of an (H, W, 3) image, contiguous; an axis shorter than ``side`` is
    kept whole, and ``side <= 0`` keeps the whole image (the benchmarks' Kodak crops)."""
    if side <= 0:
        return image
    h, w = min(side, image.shape[0]), min(side, image.shape[1])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return np.ascontiguousarray(image[top:top + h, left:left + w])
