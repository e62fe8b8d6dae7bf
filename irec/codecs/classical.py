"""Classical image codecs behind one interface: the baselines of the iREC paper, Section 4 (Table 1, Figure 4).

Lossless (Table 1): PNG, WebP lossless, and JPEG XL lossless standing in for FLIF (FLIF has no encoder on PyPI
or Debian; JPEG XL's modular mode descends from it), plus JPEG 2000 lossless. Lossy (Figure 4): JPEG 4:2:0
(libjpeg-turbo, as in the paper's plot), WebP, JPEG 2000, AVIF, JPEG XL, and HEIF/HEVC 4:4:4 through
pillow-heif (x265) standing in for BPG 4:4:4, which has no encoder here. Everything goes through imagecodecs
or pillow-heif with every encoder parameter passed explicitly (imagecodecs' ``webp_encode`` writes a lossless
file unless ``lossless=False``), one encoder thread, and each codec object has the CompressAI-style pair
``compress(image) -> bytes`` / ``decompress(bytes) -> image``. :meth:`ClassicalCodec.roundtrip` decodes every
file back and refuses a lossless codec whose decoded pixels are not bit-exact.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import imagecodecs as ic
import numpy as np

from irec.timing import measure


class UnknownCodecError(ValueError):
    """A codec name that is not in the registry."""


class CodecInputError(ValueError):
    """An image the classical codecs do not take (they take uint8 H x W x 3 RGB)."""


class RoundTripError(RuntimeError):
    """A decoded file does not give the image back (bit-exactly for a lossless codec, in shape for a lossy one)."""


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise CodecInputError(f"classical codecs take uint8 H x W x 3 RGB arrays, got {got}")
    return np.ascontiguousarray(image)


def _heif_encode(image: np.ndarray, p: dict[str, Any]) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_bytes("RGB", (image.shape[1], image.shape[0]), image.tobytes())
    buf = io.BytesIO()
    heif.save(
        buf, quality=p["quality"], chroma=p["chroma"], matrix_coefficients=p["matrix_coefficients"],
        full_range_flag=p["full_range_flag"], enc_params=dict(p["enc_params"]),  # pillow-heif mutates this dict
    )
    return buf.getvalue()


def _heif_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    return np.asarray(heif[0])


def _jpeg2k_encode(image: np.ndarray, p: dict[str, Any]) -> bytes:
    return ic.jpeg2k_encode(
        image, level=p["level"], codecformat=p["codecformat"], reversible=p["reversible"], mct=p["mct"],
        resolutions=p["resolutions"], numthreads=p["numthreads"],
    )


# family name -> (encoder(image, params) -> bytes, decoder(bytes) -> image)
_BACKENDS: dict[str, tuple[Callable[[np.ndarray, dict], bytes], Callable[[bytes], np.ndarray]]] = {
    "png": (
        lambda x, p: ic.png_encode(
            x, level=p["level"], strategy=ic.PNG.STRATEGY[p["strategy"]], filter=ic.PNG.FILTER[p["filter"]]
        ),
        ic.png_decode,
    ),
    "webp": (
        lambda x, p: ic.webp_encode(
            x, level=p["level"], lossless=p["lossless"], method=p["method"], numthreads=p["numthreads"]
        ),
        ic.webp_decode,
    ),
    "jpegxl": (
        lambda x, p: ic.jpegxl_encode(
            x, effort=p["effort"], distance=p["distance"], lossless=p["lossless"],
            decodingspeed=p["decodingspeed"], numthreads=p["numthreads"],
        ),
        ic.jpegxl_decode,
    ),
    "jpeg2k": (_jpeg2k_encode, ic.jpeg2k_decode),
    "jpeg": (
        lambda x, p: ic.jpeg8_encode(
            x, level=p["level"], colorspace=p["colorspace"], outcolorspace=p["outcolorspace"],
            subsampling=p["subsampling"], optimize=p["optimize"], smoothing=p["smoothing"], lossless=p["lossless"],
        ),
        ic.jpeg8_decode,
    ),
    "avif": (
        lambda x, p: ic.avif_encode(
            x, level=p["level"], speed=p["speed"], pixelformat=ic.AVIF.PIXEL_FORMAT[p["pixelformat"]],
            codec=ic.AVIF.CODEC_CHOICE[p["codec"]], bitspersample=p["bitspersample"], numthreads=p["numthreads"],
        ),
        ic.avif_decode,
    ),
    "heif": (_heif_encode, _heif_decode),
}


def _library_versions(backend: str) -> dict[str, str]:
    if backend == "heif":
        import pillow_heif

        info = pillow_heif.libheif_info()
        x265 = re.search(r"\(([^)]*)\)", info["HEIF"] or "")  # "x265 HEVC encoder (4.3+1-e9b8812)"
        return {"pillow-heif": pillow_heif.__version__, "libheif": info["libheif"],
                "x265": x265.group(1) if x265 else str(info["HEIF"])}
    version_of = {"png": ic.png_version, "webp": ic.webp_version, "jpegxl": ic.jpegxl_version,
                  "jpeg2k": ic.jpeg2k_version, "jpeg": ic.jpeg8_version, "avif": ic.avif_version}[backend]
    lib, _, version = version_of().partition(" ")
    return {"imagecodecs": ic.__version__, lib: version}


class RoundTrip(NamedTuple):
    """One image coded and decoded: the file, the decoded image and the wall-clock seconds of each half."""

    data: bytes
    decoded: np.ndarray
    encode_s: float
    decode_s: float


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical codec at one setting, with the CompressAI-style compress / decompress pair."""

    name: str  # registry name of the codec family, e.g. "jpeg" or "webp-lossless"
    label: str  # label for tables and plots; stand-ins say what they stand in for
    lossless: bool  # True: decoded pixels must equal the input exactly
    backend: str  # key of the encoder/decoder pair in _BACKENDS (also picks the library versions)
    params: dict[str, Any] = field(hash=False)  # every encoder parameter, passed explicitly, JSON-serialisable
    sweep_param: str | None = None  # the parameter varied along the rate-distortion curve (None: lossless)

    @property
    def sweep_value(self) -> Any:
        """The value of the swept parameter for this setting (None for lossless codecs)."""
        return None if self.sweep_param is None else self.params[self.sweep_param]

    def compress(self, image: np.ndarray) -> bytes:
        """Encode a uint8 H x W x 3 RGB image into the bytes of one self-contained file."""
        return bytes(_BACKENDS[self.backend][0](_check_image(image), self.params))

    def decompress(self, data: bytes) -> np.ndarray:
        """Decode the bytes of :meth:`compress` into a uint8 H x W x 3 RGB image."""
        decoded = np.asarray(_BACKENDS[self.backend][1](data))
        if decoded.dtype != np.uint8 or decoded.ndim != 3 or decoded.shape[2] != 3:
            raise RoundTripError(f"{self.name} decoded a {decoded.dtype} {decoded.shape} array, not uint8 RGB")
        return decoded

    def roundtrip(self, image: np.ndarray) -> RoundTrip:
        """Compress and decompress ``image``, timing both; raises RoundTripError if the decoding is wrong."""
        image = _check_image(image)
        with measure() as encoder:
            data = self.compress(image)
        with measure() as decoder:
            decoded = self.decompress(data)
        encode_s, decode_s = encoder.seconds, decoder.seconds
        if decoded.shape != image.shape:
            raise RoundTripError(f"{self.label}: decoded shape {decoded.shape} differs from input {image.shape}")
        if self.lossless and not np.array_equal(decoded, image):
            n_wrong = int(np.count_nonzero(decoded != image))
            raise RoundTripError(f"{self.label} with {self.params} is not lossless: {n_wrong} sub-pixels differ")
        return RoundTrip(data, decoded, encode_s, decode_s)

    def library_versions(self) -> dict[str, str]:
        """Versions of the Python package and of the C library that encode this codec."""
        return _library_versions(self.backend)


@dataclass(frozen=True)
class CodecFamily:
    """A named codec with fixed parameters and, for lossy codecs, the values of one swept parameter."""

    name: str  # registry name, used on the command line
    label: str  # label for tables and plots
    lossless: bool  # lossless family (bpd, bit-exact) or lossy (bpp, R-D sweep)
    backend: str  # key in _BACKENDS
    params: dict[str, Any] = field(hash=False)  # fixed encoder parameters
    sweep_param: str | None = None  # swept parameter name (lossy only)
    sweep: tuple[Any, ...] = ()  # its values, chosen to span about 0.05-2 bpp on Kodak
    note: str = ""  # what the swept parameter means for this library

    def codecs(self) -> list[ClassicalCodec]:
        """One codec per sweep value (a single codec for lossless families)."""
        if self.sweep_param is None:
            return [ClassicalCodec(self.name, self.label, self.lossless, self.backend, dict(self.params))]
        return [
            ClassicalCodec(self.name, self.label, self.lossless, self.backend,
                           {**self.params, self.sweep_param: value}, self.sweep_param)
            for value in self.sweep
        ]


_ONE_THREAD = {"numthreads": 1}  # single-threaded encoding: timings are per core; the bytes do not change

FAMILIES: dict[str, CodecFamily] = {f.name: f for f in [
    CodecFamily("png", "PNG", True, "png", {"level": 9, "strategy": "DEFAULT", "filter": "ALL"},
                note="zlib level 9 (max compression), all PNG row filters tried"),
    CodecFamily("webp-lossless", "WebP lossless", True, "webp",
                {"lossless": True, "level": 100, "method": 6, **_ONE_THREAD}, note="max effort: method 6, level 100"),
    CodecFamily("jpegxl-lossless", "JPEG XL lossless (FLIF stand-in)", True, "jpegxl",
                {"lossless": True, "effort": 7, "distance": 0.0, "decodingspeed": 0, **_ONE_THREAD},
                note="libjxl modular mode, effort 7 (cjxl's default); stands in for FLIF, which has no encoder here"),
    CodecFamily("jpeg2000-lossless", "JPEG 2000 lossless", True, "jpeg2k",
                {"level": 0, "codecformat": "J2K", "reversible": True, "mct": True, "resolutions": 6, **_ONE_THREAD},
                note="OpenJPEG, reversible 5/3 wavelet and colour transform, raw J2K codestream"),
    CodecFamily("jpeg", "JPEG 4:2:0 (libjpeg-turbo)", False, "jpeg",
                {"lossless": False, "colorspace": "RGB", "outcolorspace": "YCBCR", "subsampling": "420",
                 "optimize": True, "smoothing": 0}, "level", (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                note="level = libjpeg quality 0-100; optimized Huffman tables"),
    CodecFamily("webp", "WebP", False, "webp", {"lossless": False, "method": 6, **_ONE_THREAD}, "level",
                (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), note="level = WebP quality 0-100, method 6"),
    CodecFamily("jpeg2000", "JPEG 2000 (OpenJPEG)", False, "jpeg2k",
                {"codecformat": "J2K", "reversible": False, "mct": True, "resolutions": 6, **_ONE_THREAD}, "level",
                (22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42),
                note="level = OpenJPEG fixed-quality target PSNR in dB; irreversible 9/7 wavelet"),
    CodecFamily("avif", "AVIF 4:4:4 (libaom)", False, "avif",
                {"speed": 6, "pixelformat": "YUV444", "codec": "AOM", "bitspersample": 8, **_ONE_THREAD}, "level",
                (0, 10, 20, 30, 40, 50, 60, 70, 80),
                note="level = libavif quality 0-100; encoder speed 6 (0 slowest, 10 fastest)"),
    CodecFamily("jpegxl", "JPEG XL", False, "jpegxl",
                {"lossless": False, "effort": 7, "decodingspeed": 0, **_ONE_THREAD}, "distance",
                (15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.8, 1.2, 0.8, 0.5),
                note="distance = butteraugli distance (lower is better), effort 7"),
    CodecFamily("heif", "HEIF/HEVC 4:4:4 (x265; BPG 4:4:4 stand-in)", False, "heif",
                {"chroma": 444, "matrix_coefficients": 6, "full_range_flag": 1,
                 "enc_params": {"preset": "slow", "tune": "ssim"}}, "quality",
                (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60),
                note="quality 0-100 of libheif's x265 plugin (preset slow, tune ssim: its defaults); "
                     "HEVC intra is what BPG codes, which has no encoder here"),
]}

# Names that expand to several families on the command line.
GROUPS: dict[str, tuple[str, ...]] = {
    "lossless": tuple(n for n, f in FAMILIES.items() if f.lossless),
    "lossy": tuple(n for n, f in FAMILIES.items() if not f.lossless),
    "all": tuple(FAMILIES),
}


def codec_names() -> list[str]:
    """Every codec family name, lossless ones first."""
    return list(FAMILIES)


def resolve_families(names: Sequence[str]) -> list[CodecFamily]:
    """Families for a list of names and group names ("lossless", "lossy", "all"), in order, without repeats."""
    chosen: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        expanded = GROUPS.get(name, (name,))
        for n in expanded:
            if n not in FAMILIES:
                raise UnknownCodecError(
                    f"unknown codec {raw!r}; choose from {', '.join([*FAMILIES, *GROUPS])} (irec baselines --list)"
                )
            if n not in chosen:
                chosen.append(n)
    if not chosen:
        raise UnknownCodecError("no codec named; pass e.g. --codecs png,webp-lossless or --codecs lossless")
    return [FAMILIES[n] for n in chosen]


def make_codecs(names: Sequence[str]) -> list[ClassicalCodec]:
    """Every codec setting of the named families (each lossy family expands to its quality sweep)."""
    return [codec for family in resolve_families(names) for codec in family.codecs()]
