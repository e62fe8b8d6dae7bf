"""What the evaluation rows of both iREC codecs share: one image coded and decoded, its quality, the schema columns.

docs/irec-method.md section 4 ("Report, per image"): a real file is written, decoded again in this process and
compared; the row gives the real rate beside the ideal one and the decoded image's quality. Both codecs keep the
contract of :mod:`irec.codecs` (``encode(image) -> Encoding``, ``decompress(bytes) -> image``), so
:func:`code_image` and :func:`schema_columns` serve both; :mod:`irec.evaluation.lossless` and
:mod:`irec.evaluation.lossy` add each kind's own columns. The columns are ``irec.evaluation.results.SCHEMA``'s, and
every row also carries ``model``, ``fingerprint``, ``exact`` (the decoder returned exactly the encoding's image: the
input for lossless, the encoder's reconstruction for lossy) and ``error`` (why a file did not decode; empty when it
did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from irec import metrics
from irec.codecs.encoding import Encoding
from irec.coder import CorruptStreamError
from irec.provenance import library_version
from irec.timing import Measurement, measure

LIBRARIES = ("torch", "numpy", "numba", "constriction", "pytorch-msssim")  # what coded the file (library_versions)


@dataclass(frozen=True)
class Coded:
    """One image encoded and its file decoded again in this process."""

    encoding: Encoding  # what the codec's encode gave
    decoded: np.ndarray | None  # what decompress gave; None when it raised
    encoder: Measurement  # encode's wall time and peak memory (the row's time is encoding.encode_seconds)
    decoder: Measurement  # decompress's wall time and peak memory
    error: str  # the decoder's error message; "" when it decoded

    @property
    def exact(self) -> bool:
        """The decoder returned exactly the encoding's image."""
        return self.decoded is not None and _equal(self.decoded, self.encoding.image)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def code_image(codec, image: np.ndarray, tile_map=None) -> Coded:
    """Encode ``image`` with ``codec`` and decode the file, each under :func:`irec.timing.measure`; a file that does
    not decode (CorruptStreamError) is counted in the result, not raised. ``tile_map``: a lossless codec's map over
    a large image's tiles (irec.evaluation.parallel.TilePool), for encode and decode alike."""
    tiles = {} if tile_map is None else {"tile_map": tile_map}
    with measure() as encoder:
        encoding = codec.encode(image, **tiles)
    error, decoded = "", None
    with measure() as decoder:
        try:
            decoded = codec.decompress(encoding.data, **tiles)
        except CorruptStreamError as err:  # a coder bug, or another machine's floats: count it, keep going
            error = str(err)
    return Coded(encoding, decoded, encoder, decoder, error)


def quality(image: np.ndarray, decoded: np.ndarray, x_float: np.ndarray | None = None,
            prefix: str = "") -> dict[str, float]:
    """``psnr`` of the uint8 image (inf when exact), ``psnr_float`` of the clipped float output in [0, 1] when given
    (the paper's), ``ms_ssim`` (NaN for sides of 160 pixels or less) and ``ms_ssim_db``; names after ``prefix``."""
    value = metrics.ms_ssim(image, decoded)
    row = {f"{prefix}psnr": metrics.psnr(image, decoded)}
    if x_float is not None:
        row[f"{prefix}psnr_float"] = psnr_float(image, x_float)
    return {**row, f"{prefix}ms_ssim": value, f"{prefix}ms_ssim_db": metrics.ms_ssim_db(value)}


def psnr_float(image: np.ndarray, x_float: np.ndarray) -> float:
    """PSNR of a clipped float output in [0, 1] against the uint8 ``image``, before rounding (the paper's)."""
    return metrics.psnr(image.astype(np.float64) / 255.0, x_float.astype(np.float64), data_range=1.0)


def schema_columns(coded: Coded, image: np.ndarray, *, name: str, dataset: str, split: str | None, codec: str,
                   label: str, lossless: bool, params: dict[str, Any],
                   sweep: tuple[str, Any] = ("", None)) -> dict[str, Any]:
    """The ``SCHEMA`` columns of one coded image (provenance apart: ``irec.provenance.stamp()`` ends the row);
    ``sweep``: (parameter, value) of the R-D sweep (empty for lossless codecs)."""
    height, width = image.shape[:2]
    n_bytes = coded.encoding.n_bytes
    decoded = coded.decoded
    shown = quality(image, decoded) if decoded is not None and decoded.shape == image.shape else {
        "psnr": float("nan"), "ms_ssim": float("nan"), "ms_ssim_db": float("nan")}
    return {
        "dataset": dataset, "split": split, "image": name, "height": height, "width": width,
        "codec": codec, "codec_label": label, "lossless": lossless, "sweep_param": sweep[0], "sweep_value": sweep[1],
        "params": params, "n_bytes": n_bytes, "bpd": metrics.bits_per_dim(n_bytes, image.shape),
        "bpp": metrics.bits_per_pixel(n_bytes, height, width), "psnr_db": shown["psnr"],
        "ms_ssim": shown["ms_ssim"], "ms_ssim_db": shown["ms_ssim_db"],
        "encode_s": coded.encoding.encode_seconds, "decode_s": coded.decoder.seconds,
        "bit_exact": decoded is not None and _equal(decoded, image),
        "library_versions": {lib: library_version(lib) for lib in LIBRARIES},
    }
