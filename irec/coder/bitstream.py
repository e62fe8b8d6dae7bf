"""Bitstreams: byte-level headers, one ANS stream of entropy-coded symbols, and a sealed container.

docs/irec-method.md section 4 (index and side-information coding). What is coded (a model family
and its parameters) is kept apart from how it is coded (constriction's ANS coder, a stack): writers collect
symbol chunks in *decoding* order and encode them in reverse at the end, so that readers pull the chunks in
the same order the writers pushed them. Every ``push_*`` on the writer has a mirrored ``pull_*`` on the reader.

Container layout (all codecs): ``magic (3 bytes) | version (1 byte) | header varints ... | ANS words | crc32``.
The CRC-32 (zlib) covers every preceding byte, so truncated, corrupted and foreign files are refused before
any decoding starts.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np

_MODEL = constriction.stream.model


class CorruptStreamError(ValueError):
    """The bytes are not a valid irec file: truncated, corrupted, foreign, or of an unsupported version."""


# ------------------------------------------------------------------------------------------------ header bytes
class ByteWriter:
    """Unsigned LEB128 varints and raw bytes for compact headers."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    def varint(self, value: int) -> None:
        value = int(value)
        if value < 0:
            raise ValueError(f"varints are unsigned, got {value}")
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
        self._parts.append(bytes(out))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ByteReader:
    """Mirror of :class:`ByteWriter`; every read is bounds-checked."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self._data = data
        self.pos = pos

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self._data):
            raise CorruptStreamError("the file ends inside its header (truncated?)")
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self, limit: int = 2**63) -> int:
        value, shift = 0, 0
        while True:
            (byte,) = self.raw(1)
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 63:
                raise CorruptStreamError("malformed header: a varint is too long")
        if value > limit:
            raise CorruptStreamError(f"malformed header: value {value} exceeds its limit {limit}")
        return value

    def rest(self) -> bytes:
        """Everything after the current position."""
        out = self._data[self.pos :]
        self.pos = len(self._data)
        return out


# ---------------------------------------------------------------------------------------------- symbol streams
class SymbolWriter:
    """Collects symbol chunks in decoding order; :meth:`finish` writes them as one ANS stream."""

    def __init__(self) -> None:
        self._chunks: list[tuple[str, np.ndarray, tuple]] = []

    def push_uniform(self, symbols: np.ndarray, size: int, label: str) -> None:
        """Symbols uniform over range(size), 2 <= size < 2**24."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
        if symbols.size:
            self._chunks.append((label, symbols, (_MODEL.Uniform(int(size)),)))

    def push_categorical(self, symbols: np.ndarray, probabilities: np.ndarray, label: str) -> None:
        """Symbols under per-symbol categorical distributions, ``probabilities`` of shape (n, alphabet)."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
        if symbols.size:
            probs = np.ascontiguousarray(probabilities, dtype=np.float64)
            self._chunks.append((label, symbols, (_MODEL.Categorical(perfect=False), probs)))

    def finish(self) -> tuple[bytes, dict[str, float]]:
        """The ANS words as bytes, and the bits spent on each label (summed over its chunks)."""
        coder = constriction.stream.stack.AnsCoder()
        bits: dict[str, float] = {}
        for label, symbols, model in reversed(self._chunks):
            before = coder.num_valid_bits()
            coder.encode_reverse(symbols, *model)
            bits[label] = bits.get(label, 0.0) + coder.num_valid_bits() - before
        return coder.get_compressed().astype("<u4").tobytes(), bits


class SymbolReader:
    """Mirror of :class:`SymbolWriter`."""

    def __init__(self, words: bytes) -> None:
        if len(words) % 4:
            raise CorruptStreamError("the coded payload is not a whole number of 32-bit words (truncated?)")
        self._coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))

    def pull_uniform(self, count: int, size: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        return self._decode(_MODEL.Uniform(int(size)), count).astype(np.int64)

    def pull_categorical(self, probabilities: np.ndarray) -> np.ndarray:
        probs = np.ascontiguousarray(probabilities, dtype=np.float64)
        if not len(probs):
            return np.zeros(0, dtype=np.int64)
        return self._decode(_MODEL.Categorical(perfect=False), probs).astype(np.int64)

    def _decode(self, *args) -> np.ndarray:
        try:
            return np.asarray(self._coder.decode(*args))
        except (ValueError, RuntimeError, AssertionError) as err:  # constriction reports exhaustion so
            raise CorruptStreamError(f"the coded payload does not decode: {err}") from err

    def exhausted(self) -> bool:
        """True when every word was consumed (a well-formed file leaves nothing behind)."""
        return self._coder.is_empty()


# --------------------------------------------------------------------------------------------------- container
def seal(magic: bytes, version: int, header: bytes, payload: bytes) -> bytes:
    """``magic | version | header | payload | crc32``."""
    body = magic + bytes([version]) + header + payload
    return body + zlib.crc32(body).to_bytes(4, "little")


def unseal(data: bytes, magic: bytes, version: int, what: str) -> ByteReader:
    """Check magic, version and CRC; return a reader positioned after the version byte.

    The payload runs from the reader's position after the header to ``len(data) - 4``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(magic) + 5:
        raise CorruptStreamError(f"not an {what} file: only {len(data)} bytes")
    if data[: len(magic)] != magic:
        raise CorruptStreamError(f"not an {what} file (magic {data[:len(magic)]!r}, expected {magic!r})")
    found = data[len(magic)]
    if found != version:
        raise CorruptStreamError(f"{what} format version {found} is not supported (this irec reads {version})")
    if zlib.crc32(data[:-4]).to_bytes(4, "little") != data[-4:]:
        raise CorruptStreamError(f"{what} file is corrupted or truncated (checksum mismatch)")
    return ByteReader(data[:-4], len(magic) + 1)
