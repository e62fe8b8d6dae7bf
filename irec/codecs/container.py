"""The irec image file: one container for the latents and pixels of a lossless or lossy iREC codec.

Paper, section 3 (what is sent) and docs/irec-method.md section 4 (a compact header with a magic
number, a format version, a model fingerprint, the image shape, the coder parameters and a checksum):

    magic "iRC" | version | kind and pinned flags (one byte) | model fingerprint (4 bytes) | height | width
    | lossless only: pixel check (2 bytes) | latent header (irec.coder.LatentEncoder.write_header)
    | one ANS stream (latents, then pixels) | crc32

The crc32 guards the bytes; the pixel check (the low 16 bits of the crc32 of the image's pixels) guards the
decoding: a lossless decoder whose network outputs differ from the encoder's would read other pixels from intact
bytes. Since version 4 the networks are exact (:mod:`irec.models.exact`, flag PIN_EXACT), so that cannot happen on
any machine; the check stays as the last line of defence (e.g. another model with a colliding fingerprint prefix).

Version 3 and earlier files were written by float32 networks, which decode only where the CPU's kernels give the
encoder's floats; their models are no longer shipped, so they are refused with :class:`OldFormatError`, which
names the last irec that reads them.

Header bytes matter: on a 32x32 image each byte costs 0.0026 bpd, so every field is a varint or a few raw bytes.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass

import numba
import numpy as np
import torch

from irec.coder import (
    ByteReader,
    ByteWriter,
    CorruptStreamError,
    LatentEncoder,
    SymbolWriter,
    seal,
    unseal,
)

MAGIC = b"iRC"
VERSION = 4  # 2: kind and pinned flags share a byte, step counts in the ANS stream; 3: lossless pixel check;
# 4: exact integer networks (PIN_EXACT)
LAST_FLOAT_COMMIT = "585d456"  # the last irec commit that writes and reads version 3 (float32 networks)
KINDS = ("lossless", "lossy")
FINGERPRINT_BYTES = 4  # the first bytes of the model weights' sha256
PIXEL_CHECK_BYTES = 2  # lossless files: the low bytes of the crc32 of the pixels (0.005 bpd on a 32x32 image)
MAX_SIDE = 1 << 16

# What the encoder pinned so that the decoder's network outputs are bit-identical (bit flags).
PIN_ONE_THREAD = 1  # torch.set_num_threads(1) around every network evaluation
PIN_DETERMINISTIC = 2  # torch.use_deterministic_algorithms(True)
PIN_FLOAT32 = 4  # versions <= 3: networks evaluated in float32 on the CPU, batch size 1
PIN_EXACT = 8  # version 4: the decoder's networks in exact integer arithmetic (irec.models.exact)
PINNED = PIN_ONE_THREAD | PIN_DETERMINISTIC | PIN_EXACT  # what both codecs pin, recorded in every file


def _set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without the import of ``torch._inductor`` it starts with (3 s
    at a command's start-up, to set a flag of ``torch.compile``, which the codecs do not use); the public call where
    torch lacks the private setter that it wraps."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode)
    else:
        setter(mode)


@contextlib.contextmanager
def pinned(model: torch.nn.Module | None = None, one_thread: bool = True):
    """What PIN_ONE_THREAD | PIN_DETERMINISTIC promise: one intra-op thread, deterministic algorithms, no autograd
    (and ``model`` in eval mode) around a network evaluation; the previous settings are restored on exit.

    numba's thread pool is started first: its start (the process's first parallel kernel, or this call) sets the
    calling thread's OpenMP thread count, which is torch's intra-op thread count, to numba's. Started inside the
    block, by the coder's first parallel kernel, it undid the one thread for the rest of the block, so a fresh
    decoder ran the networks on every core, and a float convolution's sums rounded otherwise than the encoder's.

    ``one_thread=False`` keeps torch's thread count: for an exact network (irec.models.exact) while no coder runs
    beside it, whose result does not depend on the count (the lossy synthesis)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    training = model.training if model is not None else False
    numba.get_num_threads()  # starts numba's threads (once per process) before torch's count is set
    if one_thread:
        torch.set_num_threads(1)
    _set_deterministic(True)
    if model is not None:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if model is not None:
            model.train(training)
        _set_deterministic(deterministic)
        torch.set_num_threads(threads)


class WrongModelError(ValueError):
    """The file was written with another model than the one given (or is of the other kind)."""


class OldFormatError(CorruptStreamError):
    """The file is of an earlier container version, written by float networks that this irec no longer ships."""


def fingerprint_bytes(fingerprint: str) -> bytes:
    """The model weights' sha256 given in hex (as :func:`irec.checkpoint.load_model` gives it), as bytes."""
    try:
        raw = bytes.fromhex(fingerprint)
    except (TypeError, ValueError) as err:
        raise ValueError(f"fingerprint must be the model's sha256 in hex, got {fingerprint!r}") from err
    if len(raw) < FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must have at least {2 * FINGERPRINT_BYTES} hex digits, got {fingerprint!r}")
    return raw


@dataclass(frozen=True)
class CodecHeader:
    """The codec's own header fields."""

    kind: str  # "lossless" or "lossy"
    fingerprint: bytes  # FINGERPRINT_BYTES bytes identifying the model's weights
    pinned: int  # PIN_* flags
    height: int  # true image height (before padding)
    width: int  # true image width
    pixel_check: bytes = b""  # lossless: pixel_check(image), PIXEL_CHECK_BYTES; lossy: empty (not written)

    def write(self, w: ByteWriter) -> None:
        w.varint(KINDS.index(self.kind) | self.pinned << 1)
        w.raw(self.fingerprint[:FINGERPRINT_BYTES])
        w.varint(self.height)
        w.varint(self.width)
        if self.kind == "lossless":
            if len(self.pixel_check) != PIXEL_CHECK_BYTES:
                raise ValueError(f"a lossless header needs a {PIXEL_CHECK_BYTES}-byte pixel check")
            w.raw(self.pixel_check)

    @classmethod
    def read(cls, r: ByteReader) -> "CodecHeader":
        kind_and_pinned = r.varint(limit=2 * 255 + 1)
        kind, pinned = KINDS[kind_and_pinned & 1], kind_and_pinned >> 1
        fingerprint = r.raw(FINGERPRINT_BYTES)
        height, width = r.varint(limit=MAX_SIDE), r.varint(limit=MAX_SIDE)
        if not (height and width):
            raise CorruptStreamError("malformed header: empty image")
        check = r.raw(PIXEL_CHECK_BYTES) if kind == "lossless" else b""
        return cls(kind, fingerprint, pinned, height, width, check)

    def check_model(self, fingerprint: bytes, name: str) -> None:
        """Raise :class:`WrongModelError` unless ``fingerprint`` is the file's model."""
        check_fingerprint(self.kind, self.fingerprint, fingerprint, name)


def check_fingerprint(kind: str, written: bytes, fingerprint: bytes, name: str, what: str = "file") -> None:
    """Raise :class:`WrongModelError` unless ``fingerprint`` (the model ``name``'s) starts with ``written``, the
    prefix a ``kind`` ``what`` (an irec file, or a tiled one) recorded."""
    if fingerprint[:FINGERPRINT_BYTES] != written:
        raise WrongModelError(
            f"this {what} was written with the {kind} model whose fingerprint starts {written.hex()}, not with "
            f"{name} ({fingerprint[:FINGERPRINT_BYTES].hex()}): pass the right --model, or let irec find it among "
            "the shipped and cached models"
        )


def pixel_check(image: np.ndarray) -> bytes:
    """The lossless header's check of an (H, W, 3) uint8 image: the low PIXEL_CHECK_BYTES of its pixels' crc32."""
    return zlib.crc32(np.ascontiguousarray(image).tobytes()).to_bytes(4, "little")[:PIXEL_CHECK_BYTES]


def pack(header: CodecHeader, latents: LatentEncoder, symbols: SymbolWriter) -> tuple[bytes, dict[str, float]]:
    """The file's bytes, and the bits spent per part: 'header' (all framing bytes) and each symbol label."""
    w = ByteWriter()
    header.write(w)
    latents.write_header(w)
    payload, bits = symbols.finish()
    data = seal(MAGIC, VERSION, w.getvalue(), payload)
    return data, {"header": 8.0 * (len(data) - len(payload)), **bits}


def unpack(data: bytes) -> tuple[CodecHeader, ByteReader]:
    """Check the framing and read the codec header; the reader continues with the latent header."""
    framed = isinstance(data, (bytes, bytearray, memoryview)) and len(data) > len(MAGIC)
    if framed and bytes(data[: len(MAGIC)]) == MAGIC and 1 <= (found := data[len(MAGIC)]) < VERSION:
        raise OldFormatError(
            f"this irec file is of format version {found}, written with float32 networks before irec's exact "
            f"arithmetic (this irec reads version {VERSION}); decode it with irec at commit {LAST_FLOAT_COMMIT} "
            f"(git checkout {LAST_FLOAT_COMMIT}) on a machine with the writer's CPU kernels, then compress the "
            "image again with this irec")
    r = unseal(data, MAGIC, VERSION, "irec image")
    return CodecHeader.read(r), r


def open_file(data: bytes, kind: str, fingerprint: str) -> tuple[CodecHeader, ByteReader]:
    """Check a file for a decoder of ``kind`` with the model ``fingerprint`` (hex) and read its codec header; the
    reader continues with the latent header. Damaged bytes raise CorruptStreamError; a file of the other kind or of
    another model, WrongModelError; a file pinned otherwise than :data:`PINNED`, CorruptStreamError."""
    header, r = unpack(data)
    if header.kind != kind:
        raise WrongModelError(
            f"this is a {header.kind} irec file; decode it with a {header.kind} model, not a {kind} one")
    header.check_model(fingerprint_bytes(fingerprint), f"the {kind} model given ({fingerprint[:16]}...)")
    if header.pinned != PINNED:
        raise CorruptStreamError(
            f"the file was written with pinning flags {header.pinned}, this decoder reproduces only {PINNED}")
    return header, r


def peek_header(data: bytes) -> CodecHeader:
    """The codec header of a file (checksum verified), e.g. to find its model before decoding."""
    return unpack(data)[0]
