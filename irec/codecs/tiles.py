"""The tiled irec file: a large image coded as independent tiles, each an ordinary irec file.

The iREC paper codes Kodak losslessly (section 4.1) with an RVAE whose latents cover the whole image;
docs/irec-method.md section 4 describes the real files. A large image is instead split into tiles of at most ``tile_size`` pixels a
side (:func:`tile_boxes`, row-major, the last row and column of tiles smaller) and each tile is coded on its own:

- **parallel coding**: the tiles are independent, so a caller may code them in a pool of processes
  (``LosslessCodec.encode(image, tile_map=...)``), which a single stream cannot do;
- **damage isolation**: each tile is a complete irec file (:mod:`irec.codecs.container`, with its own crc32 and, for
  lossless files, its own pixel check), so a damaged byte loses only the tile it falls in; the other tiles still
  decode (``LosslessCodec.decompress_salvaging``).

The price is the context the RVAE loses at tile borders (each tile's latents see only its own pixels) and one
header per tile, a few bytes each.

The file, byte by byte (varints are unsigned LEB128, :class:`irec.coder.ByteWriter`):

    magic "iRT" (3 bytes) | version (1 byte, 1)
    | kind (varint: 0 lossless, the index in irec.codecs.container.KINDS)
    | model fingerprint (4 bytes: the first bytes of the weights' sha256)
    | height | width | tile size (varints)
    | each tile's length in bytes (varints, one per tile of tile_boxes(height, width, tile size), in its order)
    | crc32 of every byte above, magic included (4 bytes, little-endian)
    | the tiles' files, one after another

There is no crc32 over the tiles: one damaged byte would then lose the whole image. The header's crc32 guards the
index (the tile lengths), without which no tile could be found; a damaged or truncated header raises
:class:`irec.coder.CorruptStreamError`. An image no larger than one tile is written as an ordinary irec file
(no wrapper), so the two formats are told apart by their magic (:func:`is_tiled`, :func:`peek`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from irec.codecs.container import FINGERPRINT_BYTES, KINDS, MAX_SIDE, check_fingerprint, peek_header
from irec.coder import ByteReader, ByteWriter, CorruptStreamError

MAGIC = b"iRT"
VERSION = 1
CRC_BYTES = 4
# 256 pixels a side: a Kodak image (768x512) splits into 6 tiles that code in parallel, and a damaged byte loses at
# most a 256x256 square; smaller tiles would cost more of the RVAE's context at their borders (and a header each).
DEFAULT_TILE_SIZE = 256

Box = tuple[int, int, int, int]  # (r0, r1, c0, c1): rows [r0, r1), columns [c0, c1) of the image


def check_tile_size(tile_size: int) -> int:
    """``tile_size`` if it is an even integer >= 2 (a tile of any size is coded, the sides are padded to even, so
    an even size keeps every full tile unpadded); a ValueError otherwise."""
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 2 or tile_size % 2:
        raise ValueError(f"the tile size must be an even integer >= 2, got {tile_size!r}")
    if tile_size > MAX_SIDE:
        raise ValueError(f"the tile size must be at most {MAX_SIDE}, got {tile_size}")
    return tile_size


def tile_count(height: int, width: int, tile_size: int) -> int:
    """How many tiles :func:`tile_boxes` gives."""
    return -(-height // tile_size) * -(-width // tile_size)


def tile_boxes(height: int, width: int, tile_size: int) -> list[Box]:
    """The tiles of a ``height`` x ``width`` image, row-major: (r0, r1, c0, c1), the last row and column smaller."""
    if height < 1 or width < 1 or tile_size < 1:
        raise ValueError(f"tile_boxes needs positive sizes, got {height}x{width} in tiles of {tile_size}")
    return [(r0, min(height, r0 + tile_size), c0, min(width, c0 + tile_size))
            for r0 in range(0, height, tile_size) for c0 in range(0, width, tile_size)]


def describe_box(box: Box) -> str:
    """A box in words: "rows 0-15, columns 16-31" (inclusive)."""
    r0, r1, c0, c1 = box
    return f"rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}"


def tile_error(index: int, box: Box, n_tiles: int, err: Exception) -> CorruptStreamError:
    """The error of a tile that does not decode, naming the tile and its pixels."""
    return CorruptStreamError(f"tile {index} of {n_tiles} ({describe_box(box)}) is damaged: {err}")


@dataclass(frozen=True)
class TiledHeader:
    """The header of a tiled file: what :func:`peek` gives, with the fields of a
    :class:`irec.codecs.container.CodecHeader` that find the file's model (kind, fingerprint, height, width)."""

    kind: str
    fingerprint: bytes  # FINGERPRINT_BYTES bytes
    height: int
    width: int
    tile_size: int
    lengths: tuple[int, ...]  # each tile's bytes, in the order of ``boxes``
    header_bytes: int  # the wrapper's bytes (magic to crc32 included), before the first tile

    @property
    def boxes(self) -> list[Box]:
        return tile_boxes(self.height, self.width, self.tile_size)

    @property
    def n_tiles(self) -> int:
        return len(self.lengths)

    def check_model(self, fingerprint: bytes, name: str) -> None:
        """Raise :class:`WrongModelError` unless ``fingerprint`` is the file's model."""
        check_fingerprint(self.kind, self.fingerprint, fingerprint, name, what="tiled file")


def is_tiled(data: bytes) -> bool:
    """Whether ``data`` starts as a tiled file (its magic), not an ordinary irec file."""
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[: len(MAGIC)]) == MAGIC


def pack(kind: str, fingerprint: bytes, height: int, width: int, tile_size: int, tiles: list[bytes]) -> bytes:
    """The tiled file of ``tiles`` (each an irec file, in the order of :func:`tile_boxes`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if len(tiles) != tile_count(height, width, check_tile_size(tile_size)):
        raise ValueError(f"{len(tiles)} tiles given, a {height}x{width} image has "
                         f"{tile_count(height, width, tile_size)} of {tile_size} pixels a side")
    w = ByteWriter()
    w.raw(MAGIC + bytes([VERSION]))
    w.varint(KINDS.index(kind))
    w.raw(fingerprint[:FINGERPRINT_BYTES])
    for value in (height, width, tile_size):
        w.varint(value)
    for tile in tiles:
        w.varint(len(tile))
    header = w.getvalue()
    return header + zlib.crc32(header).to_bytes(CRC_BYTES, "little") + b"".join(tiles)


def _read_header(data: bytes) -> TiledHeader:
    r = ByteReader(data, len(MAGIC) + 1)
    kind = r.varint(limit=len(KINDS) - 1)
    fingerprint = r.raw(FINGERPRINT_BYTES)
    height, width = r.varint(limit=MAX_SIDE), r.varint(limit=MAX_SIDE)
    tile_size = r.varint(limit=MAX_SIDE)
    if not (height and width):
        raise CorruptStreamError("malformed header: empty image")
    if tile_size < 2 or tile_size % 2:
        raise CorruptStreamError(f"malformed header: tile size {tile_size} (an even size >= 2 is written)")
    count = tile_count(height, width, tile_size)
    if count > len(data):  # each length takes a byte at least: a damaged size, before a huge loop
        raise CorruptStreamError(f"malformed header: {count} tiles cannot fit in {len(data)} bytes")
    lengths = tuple(r.varint(limit=len(data)) for _ in range(count))
    body = r.pos
    crc = r.raw(CRC_BYTES)
    if zlib.crc32(data[:body]).to_bytes(CRC_BYTES, "little") != crc:
        raise CorruptStreamError("checksum mismatch")
    return TiledHeader(KINDS[kind], fingerprint, height, width, tile_size, lengths, body + CRC_BYTES)


def read_header(data: bytes) -> TiledHeader:
    """The checked header of a tiled file; CorruptStreamError for a file that is not one, or whose header is
    damaged or truncated."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not is_tiled(data):
        raise CorruptStreamError(f"not a tiled irec file (magic {data[:len(MAGIC)]!r}, expected {MAGIC!r})")
    if len(data) <= len(MAGIC):
        raise CorruptStreamError(f"the tiled irec file ends inside its header (only {len(data)} bytes)")
    if data[len(MAGIC)] != VERSION:
        raise CorruptStreamError(
            f"tiled irec format version {data[len(MAGIC)]} is not supported (this irec reads {VERSION})")
    try:
        return _read_header(data)
    except CorruptStreamError as err:
        raise CorruptStreamError(f"the tiled irec file's header is damaged or truncated ({err})") from err


def unpack(data: bytes, truncated: bool = False) -> tuple[TiledHeader, list[bytes]]:
    """The header and each tile's bytes. A file shorter or longer than its header says raises CorruptStreamError,
    unless ``truncated`` (for salvaging): then the tiles past the end are short or empty, and fail their own
    checks."""
    header = read_header(data)
    data = bytes(data)
    expected = header.header_bytes + sum(header.lengths)
    if len(data) != expected and not (truncated and len(data) < expected):
        what = "truncated" if len(data) < expected else "followed by extra bytes"
        raise CorruptStreamError(f"the tiled irec file is {what}: {len(data)} bytes, its header promises {expected}")
    tiles, start = [], header.header_bytes
    for length in header.lengths:
        tiles.append(data[start: start + length])
        start += length
    return header, tiles


def peek(data: bytes):
    """The header of a tiled file (:class:`TiledHeader`) or of an ordinary one
    (:class:`irec.codecs.container.CodecHeader`, checksum verified): both have the kind, fingerprint, height and
    width, e.g. to find the file's model before decoding."""
    return read_header(data) if is_tiled(data) else peek_header(data)
