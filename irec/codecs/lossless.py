"""The lossless iREC codec: the RVAE's latents by relative entropy coding, then the pixels under p(x | z).

Paper, sections 3 and 4.1; docs/irec-method.md sections 2 (step 7: code the levels top-down, each
conditioned on the *coded* samples above it), 4 (real files, the pixel stream coded with constriction, p(x|z)
from exactly the latent the decoder rebuilds) and 5 (the bidirectional ResNet VAE).

    encode                                               decode (mirrored)
    pad to even sides, bottom-up pass                    read the header: true size, coder N / block size / seed
    for each level, top-down:                            for each level, top-down:
        p, q = level_distributions(state, up)                p, _ = level_distributions(state)
        z = REC-code a sample of q against p                 z = rebuild the coded sample from p
        state = top_down_step(state, z)                      state = top_down_step(state, z)
    push the true pixels under p(x | z)                  pull the true pixels under p(x | z), band by band,
                                                         each band's channels in turn (p(x | z) may condition
                                                         green on red and blue on both)

Large images: an image larger than the codec's ``tile_size`` is split into tiles, each coded as above into its own
file, packed into a tiled file (:mod:`irec.codecs.tiles`); ``encode``/``decompress`` take a ``tile_map`` that a
caller may point at a process pool.

Padding: an odd side is padded by one row/column of edge replication (irec.data.pad_to_multiple) because the
RVAE works at H/2 x W/2. Only the true pixels are entropy-coded (the decoder never needs the padded ones), so
padding costs only the latents of the extra positions.

Exactness: the decoder's networks, the priors p(z_l | z_<l) and the pixel likelihood p(x | z), are integer networks
(:class:`irec.models.exact_rvae.ExactRVAE`, argument in :mod:`irec.models.exact`), and the encoder evaluates the
same exact path, so a file decodes bit for bit on any machine, whatever its CPU kernels, torch build or thread
count (``python -m irec.bench devices``; docs/cross-device.md). A float RVAE given to the codec is quantized first
(:func:`irec.models.quantize.as_exact`). Encoding and decoding still run under :func:`pinned` (one intra-op thread,
no autograd), the fast choice for these small tensors: torch's OpenMP threads would otherwise spin against the
coder's numba threads (docs/reference-run.md). The header's 2-byte pixel check stays as a last line of defence.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from irec.codecs.container import (
    PINNED,
    CodecHeader,
    WrongModelError,
    fingerprint_bytes,
    open_file,
    pack,
    pinned,
    pixel_check,
)
from irec.codecs.encoding import HEADER, PIXELS, Encoding, file_parts, frozen_image
from irec.codecs.refine import refine_levels
from irec.codecs.tiles import DEFAULT_TILE_SIZE, check_tile_size, is_tiled, tile_boxes, tile_error
from irec.codecs.tiles import pack as tiles_pack
from irec.codecs.tiles import unpack as tiles_unpack
from irec.coder import (
    CoderParams,
    CorruptStreamError,
    LatentDecoder,
    LatentEncoder,
    SymbolReader,
    SymbolWriter,
)
from irec.data.images import check_rgb_uint8, crop_to, pad_to_multiple
from irec.models.exact_rvae import ExactRVAE
from irec.models.quantize import as_exact
from irec.models.rvae import RVAE
from irec.settings import LOSSLESS_DEFAULT, LOSSLESS_REFINEMENT, LosslessRefinement
from irec.timing import measure

KIND = "lossless"
# The exact networks give every machine the encoder's distributions; intact bytes that still decode to other
# symbols mean another model whose fingerprint prefix collides, or a bug.
MISMATCH = (
    "{what}: the bytes are intact, so the model is not the encoder's (its 4-byte fingerprint prefix matches), or "
    "this irec computes other distributions than the writer's; please report it with the file"
)
CHUNK_SUBPIXELS = 1 << 15  # pixels are coded in bands of rows of at most this many subpixels (2 KiB of table each)


def _padded_tensor(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 image as the model's (1, 3, H', W') input, its odd sides padded by edge replication."""
    padded, _ = pad_to_multiple(image, 2, layout="hwc")
    return torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).unsqueeze(0)


def _pixel_bands(height: int, width: int) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) of the true image, coded one after another (same split on both sides)."""
    rows = max(1, CHUNK_SUBPIXELS // (3 * width))
    return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]


class LosslessCodec:
    """``compress(image) -> bytes`` and ``decompress(bytes) -> image`` for an (H, W, 3) uint8 RGB image of any size.

    ``params`` (coder settings; only N, the block size and the seed reach the file). The default,
    :data:`irec.settings.LOSSLESS_DEFAULT`: B = 100, 1 + eps = 1.1 and Omega = 5 nats (N = 244), blocks of 384
    dimensions, chosen by ``python -m irec.bench lossless --sweep`` on the shipped ``lossless-cifar10`` (CIFAR-10)
    and ``lossless-photos`` (BSDS500 val crops; results/bench/lossless-*sweep.csv):

    - larger steps (Omega) and more candidates per nat (1 + eps) bring the coded samples closer to the posterior:
      with few candidates the lower levels' KL grows and the pixels pay under p(x | z);
    - *smaller* blocks do too, at a given Omega, while each block's rounded-up step count costs more side
      information, so the block size has an optimum (384 at Omega = 6 on CIFAR-10);
    - the search's cost grows with N x dims per step (generating the candidates) plus B x N x dims (scoring them,
      one matrix product): more beams buy a closer sample more cheaply than more candidates do, so B = 100 at
      Omega = 5 codes photos in less time and fewer bits than B = 20 at Omega = 6;
    - the dims are those the search scores: it leaves out the dimensions whose KL is below 0.001 nats
      (``ignore_kl_below``; most of the top levels' dimensions), which takes a third off a Kodak image's encode
      for 0.04% more bits.

    The sweep's figures: docs/reference-run.md ("Why the lossless codec's default is what it is").

    ``tile_size``: an image larger than this on either side is coded as independent tiles of at most this many
    pixels a side, in a tiled file (:mod:`irec.codecs.tiles`: parallel coding, damage isolation); an image no
    larger is one ordinary file, as before tiles existed. Any even size >= 2 works, since each tile is coded by
    the any-size path (odd sides padded); even sizes keep every full tile unpadded. Default
    :data:`irec.codecs.tiles.DEFAULT_TILE_SIZE`.

    ``refinement``: the encoder's refinement of every level's posterior before coding it
    (:func:`irec.codecs.refine.refine_levels`; off by default, :data:`irec.settings.LOSSLESS_REFINEMENT`). The
    decoder does not depend on it: a refined file decodes with any codec of the same model.
    """

    kind = KIND
    default_params = LOSSLESS_DEFAULT  # what coder options given on their own change (irec compress)
    default_refinement = LOSSLESS_REFINEMENT  # what --refine-steps changes the steps of

    def __init__(self, model: RVAE | ExactRVAE, fingerprint: str, params: CoderParams = LOSSLESS_DEFAULT,
                 tile_size: int = DEFAULT_TILE_SIZE, refinement: LosslessRefinement = LOSSLESS_REFINEMENT) -> None:
        if params.sampler == "pfr":
            raise ValueError("the pfr reference sampler codes standalone latents only; choose beam, greedy or sample")
        self.model = as_exact(model, KIND)
        self.fingerprint = fingerprint  # the model weights' sha256 in hex
        self._fingerprint = fingerprint_bytes(fingerprint)
        self.params = params
        self.tile_size = check_tile_size(tile_size)
        self.refinement = refinement

    @property
    def levels(self) -> tuple[str, ...]:
        """The latent levels' names in the file's parts (irec.codecs.encoding), in coding order: top first."""
        return tuple(f"level {i}" for i in range(self.model.n_levels))

    def compress(self, image: np.ndarray) -> bytes:
        """The file's bytes: :meth:`encode`'s data (without the -ELBO, which only the evaluation needs)."""
        return self.encode(image, elbo=False).data

    # ------------------------------------------------------------------------------------------ tiled files
    def encode(self, image: np.ndarray, tile_map=None, *, elbo: bool = True) -> Encoding:
        """The file of an (H, W, 3) uint8 image and what it cost; ``details``: ``tiles`` (their count),
        ``tile_size`` and, if ``elbo``, ``negative_elbo_bpd`` (:meth:`negative_elbo_bpd`, the tiles' pixel-weighted
        mean), computed after the file, outside ``encode_seconds``.

        An image no larger than ``tile_size`` on both sides is one ordinary file; a larger one a tiled file of one
        ordinary file per tile (:mod:`irec.codecs.tiles`), coded by ``tile_map(function, tiles)`` (default
        ``map``: in this process). ``function`` is a bound method of this codec, so a pool may instead call the
        method of that name on an equal codec of its own (``irec compress --workers``). The parts' bits and ideal
        bits are summed over the tiles; the tiled file's own header goes into ``"header"``."""
        check_rgb_uint8(image)
        height, width = image.shape[:2]
        if height <= self.tile_size and width <= self.tile_size:
            encoding = self.encode_tile(image)
            if not elbo:
                return encoding
            return replace(encoding, details={**encoding.details, "negative_elbo_bpd": self.negative_elbo_bpd(image)})
        with measure() as timer:
            parts = [image[r0:r1, c0:c1] for r0, r1, c0, c1 in tile_boxes(height, width, self.tile_size)]
            tiles = list((tile_map or map)(self.encode_tile, parts))
            data = tiles_pack(KIND, self._fingerprint, height, width, self.tile_size, [t.data for t in tiles])
        bits = {HEADER: 8.0 * (len(data) - sum(t.n_bytes for t in tiles))}
        ideal: dict[str, float] = {}
        for tile in tiles:
            for part, value in tile.bits.items():
                bits[part] = bits.get(part, 0.0) + value
            for part, value in tile.ideal_bits.items():
                ideal[part] = ideal.get(part, 0.0) + value
        details = {"tiles": len(tiles), "tile_size": self.tile_size}
        if elbo:
            elbos = (tile_map or map)(self.negative_elbo_bpd, parts)
            details["negative_elbo_bpd"] = sum(e * t.n_pixels for e, t in zip(elbos, tiles)) / (height * width)
        return Encoding(data=data, image=frozen_image(image), bits=bits, ideal_bits=ideal,
                        encode_seconds=timer.seconds, params=self.params, details=details)

    def decompress(self, data: bytes, tile_map=None) -> np.ndarray:
        """The image, bit for bit; raises WrongModelError for another model's file or a lossy one, CorruptStreamError
        for damaged bytes (or a decode that fails the file's pixel check); for a tiled file, the first damaged
        tile's error names the tile and its pixels. ``tile_map``: as :meth:`encode`'s."""
        if not is_tiled(data):
            return self.decode_tile(data)
        return self._decode_tiles(data, tile_map, salvage=False)[0]

    def decompress_salvaging(self, data: bytes, tile_map=None) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """``(image, damaged)``: a tiled file's image with every intact tile decoded and each damaged one (a tile
        that fails its own checks, or lies past the end of a truncated file) filled with zeros, and the damaged
        tiles' boxes (r0, r1, c0, c1). A damaged tiled header, another model's file or a damaged ordinary
        (untiled) file raises as :meth:`decompress` does."""
        if not is_tiled(data):
            return self.decode_tile(data), []
        return self._decode_tiles(data, tile_map, salvage=True)

    def _decode_tiles(self, data: bytes, tile_map, salvage: bool):
        """Mirror of :meth:`encode`'s tiled branch: each tile's file decoded by :meth:`decode_tile` into its box."""
        header, tiles = tiles_unpack(data, truncated=salvage)
        if header.kind != KIND:
            raise WrongModelError(
                f"this is a {header.kind} irec file; decode it with a {header.kind} model, not a {KIND} one")
        header.check_model(self._fingerprint, f"the {KIND} model given ({self.fingerprint[:16]}...)")
        boxes = header.boxes
        image = np.zeros((header.height, header.width, 3), dtype=np.uint8)
        damaged = []
        for index, (box, result) in enumerate(zip(boxes, (tile_map or map)(self.try_decode_tile, tiles))):
            r0, r1, c0, c1 = box
            if not isinstance(result, Exception) and result.shape != (r1 - r0, c1 - c0, 3):
                result = CorruptStreamError(f"it holds a {result.shape[1]}x{result.shape[0]} image, not "
                                            f"{c1 - c0}x{r1 - r0}")
            if isinstance(result, Exception):
                if not salvage:
                    raise tile_error(index, box, len(boxes), result) from result
                damaged.append(box)
                continue
            image[r0:r1, c0:c1] = result
        return image, damaged

    def try_decode_tile(self, data: bytes) -> np.ndarray | CorruptStreamError | WrongModelError:
        """:meth:`decode_tile`'s image, or the error it raised (returned, so that one tile's damage, e.g. in a pool,
        does not stop the others)."""
        try:
            return self.decode_tile(data)
        except (CorruptStreamError, WrongModelError) as err:
            return err

    # ------------------------------------------------------------------------------------------------ encode
    def encode_tile(self, image: np.ndarray) -> Encoding:
        """One ordinary file of an (H, W, 3) uint8 image, whatever its size (a tile, or an image no larger than one)."""
        with measure() as timer:
            check_rgb_uint8(image)
            height, width = image.shape[:2]
            x = _padded_tensor(image)
            header = CodecHeader(KIND, self._fingerprint, PINNED, height, width, pixel_check(image))
            latents, symbols = LatentEncoder(self.params, describe_shapes=False), SymbolWriter()
            model = self.model
            with pinned(model):
                up = refine_levels(model.float_model(), x, model.bottom_up(x), self.refinement)
                state = model.top_down_init(1, tuple(x.shape[2:]))
                for level in range(model.n_levels):
                    p, q = model.level_distributions(state, level, up)
                    z = latents.encode_level(q.loc, q.scale, p.loc, p.scale)
                    state = model.top_down_step(state, level, z)
                px = model.pixel_params(state).given(x)  # the encoder knows every channel a location depends on
                latents.write_symbols(symbols)
                pixel_ideal_bits = 0.0
                for r0, r1 in _pixel_bands(height, width):
                    probabilities = px[0, :, r0:r1, :width].probabilities().reshape(-1, 256)
                    values = x[0, :, r0:r1, :width].reshape(-1).numpy().astype(np.int64)
                    symbols.push_categorical(values, probabilities, PIXELS)
                    pixel_ideal_bits -= float(np.log2(probabilities[np.arange(len(values)), values]).sum())
            data, packed = pack(header, latents, symbols)
        ideal = {name: stats.kl_bits for name, stats in zip(self.levels, latents.stats)}
        return Encoding(
            data=data, image=frozen_image(image), bits=file_parts(data, packed, self.levels),
            ideal_bits={**ideal, PIXELS: pixel_ideal_bits}, encode_seconds=timer.seconds, params=self.params,
            details={"tiles": 1, "tile_size": self.tile_size},
        )

    # ------------------------------------------------------------------------------------------------ decode
    def decode_tile(self, data: bytes) -> np.ndarray:
        """The image of one ordinary file (mirror of :meth:`encode_tile`)."""
        header, r = open_file(data, KIND, self.fingerprint)
        height, width = header.height, header.width
        size = (height + height % 2, width + width % 2)
        model = self.model
        level_shape = (1, model.config.latent_channels, size[0] // 2, size[1] // 2)
        latents = LatentDecoder(r, shapes=[level_shape] * model.n_levels)
        symbols = SymbolReader(r.rest())
        latents.attach(symbols)
        image = np.zeros((3, height, width), dtype=np.uint8)
        with pinned(model):
            state = model.top_down_init(1, size)
            for level in range(model.n_levels):
                p, _ = model.level_distributions(state, level)
                z = latents.decode_level(p.loc, p.scale)
                state = model.top_down_step(state, level, z)
            px = model.pixel_params(state)
            for r0, r1 in _pixel_bands(height, width):  # a band's channels in turn: red, green, blue, as pushed
                band, decoded = px[0, :, r0:r1, :width], torch.from_numpy(image[:, r0:r1, :])  # a view of image
                for c in range(3):  # green's distribution may depend on red's values, blue's on both
                    probabilities = band.channel(c, decoded).probabilities().reshape(-1, 256)
                    image[c, r0:r1, :] = symbols.pull_categorical(probabilities).reshape(r1 - r0, width)
        if not symbols.exhausted():
            raise CorruptStreamError(MISMATCH.format(what="the coded payload holds more symbols than the image needs"))
        decoded = np.ascontiguousarray(crop_to(image.transpose(1, 2, 0), (height, width), layout="hwc"))
        if pixel_check(decoded) != header.pixel_check:
            raise CorruptStreamError(MISMATCH.format(what="the decoded pixels fail the file's pixel check"))
        return decoded

    # ------------------------------------------------------------------------------------------------ report
    def negative_elbo_bpd(self, image: np.ndarray) -> float:
        """-ELBO of an image no larger than a tile, in bits per subpixel: the ideal its file is compared with.

        Analytic KL of every level + one posterior sample's -log p(x|z), no free bits. The sample is drawn with a
        generator seeded by the coder seed, so the figure is reproducible; the latents cover the padded image (as
        the codec's do).
        """
        height, width = image.shape[:2]
        x = _padded_tensor(image)
        model, generator = self.model, torch.Generator().manual_seed(self.params.seed)
        kl = 0.0
        with pinned(model):
            up = model.bottom_up(x)
            state = model.top_down_init(1, tuple(x.shape[2:]))
            for level in range(model.n_levels):
                p, q = model.level_distributions(state, level, up)
                kl += float(q.kl(p).to(torch.float64).sum())
                state = model.top_down_step(state, level, q.sample(generator))
            nll = -float(model.pixel_params(state).log_prob(x)[..., :height, :width].to(torch.float64).sum())
        return (kl + nll) / (3 * height * width * math.log(2.0))
