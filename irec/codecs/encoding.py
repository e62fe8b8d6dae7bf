"""One encoding of an image, as both iREC codecs return it: the file, what its decoder gives, what each part cost.

Paper, section 3 (what is sent) and docs/irec-method.md section 4 ("Report, per image": the real rate, split into
the header and the bits of each latent level, beside the ideal rate). ``LosslessCodec.encode`` and
``LossyCodec.encode`` both return an :class:`Encoding`; ``compress(image)`` is ``encode(image).data``.

The parts of a file (the keys of ``bits``, in file order), one naming scheme for both kinds:

- ``"header"``: every framing byte (magic, version, codec and latent headers, crc32);
- one part per latent level, in coding order, named as the model names it: ``"z2"``, ``"z1"`` for the lossy
  two-level VAE, ``"level 0"`` (the top) .. ``"level L-1"`` for the lossless RVAE (step counts and candidate
  indices in the ANS stream);
- ``"pixels"``: lossless only, the true pixels under p(x | z coded);
- ``"tail"``: the ANS stream's final state and its alignment to 32-bit words.

They add up to ``8 * len(data)``. ``ideal_bits`` holds, for each latent level, KL(q || p) in bits (lossless: q and p
given the coded levels above; lossy: the model's own amortized posterior, the paper's ideal, whatever the encoder
coded), and for the lossless pixels -log2 p(x | z coded): ideal figures, not file bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from irec.coder import CoderParams

HEADER, PIXELS, TAIL = "header", "pixels", "tail"


@dataclass(frozen=True)
class Encoding:
    """What ``encode(image)`` made: the file and, labelled, its real and ideal cost."""

    data: bytes  # the file
    image: np.ndarray = field(repr=False)  # exactly what decompress(data) returns, uint8 (H, W, 3), read-only:
    # the input pixels (lossless), the reconstruction (lossy)
    bits: dict[str, float]  # real bits per part (module docstring); they add up to 8 * len(data)
    ideal_bits: dict[str, float]  # ideal bits per latent level (KL) and, lossless, of the pixels (-log2 p(x|z))
    encode_seconds: float  # wall time of making the file (extras of ``details`` computed after it not included)
    params: CoderParams  # the coder setting this image was coded with (e.g. the lossy low-rate one), seed included
    details: dict = field(default_factory=dict, repr=False)  # what else the evaluation needs, per kind (the codecs)

    @property
    def levels(self) -> tuple[str, ...]:
        """The latent levels' parts, in coding order."""
        return tuple(part for part in self.bits if part not in (HEADER, PIXELS, TAIL))

    @property
    def n_bytes(self) -> int:
        return len(self.data)

    @property
    def n_pixels(self) -> int:
        return int(self.image.shape[0] * self.image.shape[1])

    @property
    def bpp(self) -> float:
        """Real bits per pixel of the file."""
        return 8.0 * self.n_bytes / self.n_pixels

    @property
    def bpd(self) -> float:
        """Real bits per dimension (subpixel) of the file."""
        return self.bpp / 3

    @property
    def ideal_bpp(self) -> float:
        """Ideal bits per pixel: the sum of ``ideal_bits``."""
        return sum(self.ideal_bits.values()) / self.n_pixels

    @property
    def ideal_bpd(self) -> float:
        return self.ideal_bpp / 3


def file_parts(data: bytes, packed: Mapping[str, float], levels: Sequence[str]) -> dict[str, float]:
    """The parts of a file from :func:`irec.codecs.container.pack`'s bits: its ``"header"``, level i's symbol
    labels (``"level{i}/..."``) as ``levels[i]``, ``"pixels"`` as it is, and the rest of the file as ``"tail"``."""
    bits = {HEADER: packed[HEADER]}
    for i, name in enumerate(levels):
        bits[name] = sum(b for label, b in packed.items() if label.startswith(f"level{i}/"))
    if PIXELS in packed:
        bits[PIXELS] = packed[PIXELS]
    unknown = [label for label in packed if label not in (HEADER, PIXELS)
               and not any(label.startswith(f"level{i}/") for i in range(len(levels)))]
    if unknown:
        raise RuntimeError(f"unaccounted symbol labels {sorted(unknown)}")
    bits[TAIL] = 8.0 * len(data) - sum(bits.values())
    return bits


def frozen_image(image: np.ndarray) -> np.ndarray:
    """A read-only contiguous copy of ``image``, so an Encoding's image cannot change after it is made."""
    image = np.array(image, copy=True, order="C")
    image.setflags(write=False)
    return image
