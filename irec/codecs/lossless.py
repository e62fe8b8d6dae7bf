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
    push the true pixels under p(x | z)                  pull the true pixels under p(x | z)

Padding: an odd side is padded by one row/column of edge replication (irec.data.pad_to_multiple) because the
RVAE works at H/2 x W/2. Only the true pixels are entropy-coded (the decoder never needs the padded ones), so
padding costs only the latents of the extra positions.

Determinism: the whole of encoding and of decoding, every network evaluation included, runs under :func:`pinned`
(one intra-op thread, torch's deterministic algorithms, no autograd) on a float32 CPU copy of the model at batch
size 1; the header records these PIN_* flags and the decoder refuses a file whose flags it would not reproduce.
One torch thread is also the fast choice here: the tensors are small, and torch's OpenMP threads would otherwise
spin against the coder's numba threads (measured: 1.09 s -> 0.81 s per CIFAR-10 image).

Across machines the pins are not enough: another CPU's kernels or another torch give floats that differ in the
last bits, the pixel probabilities move with them, and the ANS decoder reads other pixels from intact bytes. This
happened to 8 of 8 CIFAR-10 files between an AMD EPYC with torch 2.13 and an Intel Xeon with torch 2.11, in both
directions (``python -m irec.bench devices``, results/bench/devices.csv). The header's 2-byte pixel check turns
such a decode into a clear error instead of wrong pixels.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from irec.codecs.container import (
    PIN_DETERMINISTIC,
    PIN_FLOAT32,
    PIN_ONE_THREAD,
    CodecHeader,
    pack,
    pinned,
    pixel_check,
    unpack,
)
from irec.coder import (
    CoderParams,
    CorruptStreamError,
    LatentDecoder,
    LatentEncoder,
    SymbolReader,
    SymbolWriter,
)
from irec.data.images import check_rgb_uint8, crop_to, pad_to_multiple
from irec.models.rvae import RVAE
from irec.settings import LOSSLESS_DEFAULT

KIND = "lossless"
PINNED = PIN_ONE_THREAD | PIN_DETERMINISTIC | PIN_FLOAT32
# A decoder whose network gives other floats than the encoder's reads other symbols from intact bytes: measured
# between two x86 CPUs and torch versions (results/bench/devices.csv), 8 of 8 CIFAR-10 files did so.
MISMATCH = (
    "{what}: the bytes are intact, so this machine's network outputs differ from the encoder's (files decode "
    "exactly where torch and the CPU's kernels give the same floats as the encoder's; see python -m irec.bench "
    "devices), or the model is not the encoder's"
)
CHUNK_SUBPIXELS = 1 << 15  # pixels are coded in bands of rows of at most this many subpixels (2 KiB of table each)



@dataclass(frozen=True)
class LosslessReport:
    """What one file cost, real bits beside the ideal rate (irec-method.md section 4, "Report, per image")."""

    kind: str  # "lossless"
    height: int  # true image height
    width: int  # true image width
    file_bytes: int  # len(file)
    header_bits: float  # framing: magic, version, codec and latent headers, crc32
    latent_bits: tuple[float, ...]  # per level (0 = top): step counts and indices in the ANS stream
    pixel_bits: float  # the true pixels under p(x | z coded) in the ANS stream
    stream_tail_bits: float  # the ANS coder's final state and 32-bit word alignment
    kl_bits: tuple[float, ...]  # ideal: analytic KL(q || p) per level, q and p given the coded levels above
    pixel_ideal_bits: float  # ideal: -log2 p(x | z coded) from the same float64 tables
    negative_elbo_bpd: float  # ideal: analytic KL + one posterior sample's -log p(x|z), no free bits, bpd
    encode_seconds: float  # wall time of compress

    @property
    def n_subpixels(self) -> int:
        return 3 * self.height * self.width

    @property
    def total_bits(self) -> float:
        """Equals 8 * file_bytes: the parts add up to the file."""
        return self.header_bits + sum(self.latent_bits) + self.pixel_bits + self.stream_tail_bits

    @property
    def bpd(self) -> float:
        """Real bits per subpixel (dimension) of the file."""
        return 8.0 * self.file_bytes / self.n_subpixels

    @property
    def ideal_bpd(self) -> float:
        """Ideal bits per subpixel of this coding: KL of each level (given the coded levels above) + pixel bits."""
        return (sum(self.kl_bits) + self.pixel_ideal_bits) / self.n_subpixels

    def summary(self) -> str:
        """One line: real bpd with its split, the ideal rates labelled ideal."""
        n = self.n_subpixels
        return (
            f"{self.file_bytes} bytes, real {self.bpd:.4f} bpd ({3 * self.bpd:.4f} bpp) = header "
            f"{self.header_bits / n:.4f} + latents {sum(self.latent_bits) / n:.4f} + pixels {self.pixel_bits / n:.4f}"
            f" + ANS tail {self.stream_tail_bits / n:.4f}; ideal {self.ideal_bpd:.4f} bpd (KL "
            f"{sum(self.kl_bits) / n:.4f} + pixels {self.pixel_ideal_bits / n:.4f}), ideal -ELBO "
            f"{self.negative_elbo_bpd:.4f} bpd; encoded in {self.encode_seconds:.2f} s"
        )

    def as_dict(self) -> dict:
        """Plain values for a result row (per-level tuples as lists)."""
        row = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {**row, "bpd": self.bpd, "ideal_bpd": self.ideal_bpd}


def _cpu_float32(model: RVAE) -> RVAE:
    """The model in eval mode on the CPU in float32 (a copy when it is elsewhere, so the caller's is untouched)."""
    if not isinstance(model, RVAE):
        raise ValueError(f"the lossless codec needs an RVAE (irec.models.rvae), got {type(model).__name__}")
    on_cpu32 = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in model.state_dict().values())
    if not on_cpu32:
        model = copy.deepcopy(model).to("cpu", torch.float32)
    return model.eval()


def _pixel_bands(height: int, width: int) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) of the true image, coded one after another (same split on both sides)."""
    rows = max(1, CHUNK_SUBPIXELS // (3 * width))
    return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]


class LosslessCodec:
    """``compress(image) -> bytes`` and ``decompress(bytes) -> image`` for an (H, W, 3) uint8 RGB image of any size.

    ``params`` (coder settings; only N, the block size and the seed reach the file). The default,
    :data:`irec.settings.LOSSLESS_DEFAULT`: B = 20, 1 + eps = 1.1 and Omega = 6 nats (N = 735), blocks of 384 dimensions, chosen by
    ``python -m irec.bench lossless --sweep`` on the shipped ``lossless-cifar10`` (results/bench/lossless-sweep.csv):

    - larger steps (Omega) and more candidates per nat (1 + eps) bring the coded samples closer to the posterior:
      with few candidates the lower levels' KL grows and the pixels pay under p(x | z);
    - *smaller* blocks do too, at a given Omega, while each block's rounded-up step count costs more side
      information. Real / -ELBO on 8 images (B = 20, 1 + eps = 1.1) for blocks of 256 / 384 / 1,000 / 4,096 (a whole
      level): 1.112 / 1.114 / 1.121 / 1.208 at Omega = 5 and 1.106 / 1.096 / 1.099 / 1.157 at Omega = 6;
    - the search's cost grows with N x B per step, and smaller blocks share the two cores more evenly: on 200
      CIFAR-10 test images the default gave 1.097 at 0.88 s per image (``python -m irec.bench lossless``).
    """

    kind = KIND
    default_params = LOSSLESS_DEFAULT  # what coder options given on their own change (irec compress)

    def __init__(self, model: RVAE, fingerprint: str, params: CoderParams = LOSSLESS_DEFAULT) -> None:
        if params.sampler == "pfr":
            raise ValueError("the pfr reference sampler codes standalone latents only; choose beam, greedy or sample")
        self.model = _cpu_float32(model)
        self.fingerprint = fingerprint
        self.params = params
        self.last_report: LosslessReport | None = None  # what the latest compress cost
        self.last_decode_seconds: float | None = None  # wall time of the latest decompress

    # ------------------------------------------------------------------------------------------------ encode
    def compress(self, image: np.ndarray) -> bytes:
        """The file's bytes; :attr:`last_report` holds what they cost."""
        data, self.last_report = self.compress_with_report(image)
        return data

    def compress_with_report(self, image: np.ndarray) -> tuple[bytes, LosslessReport]:
        start = time.perf_counter()
        check_rgb_uint8(image)
        height, width = image.shape[:2]
        padded, _ = pad_to_multiple(image, 2, layout="hwc")
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).unsqueeze(0)
        header = CodecHeader(KIND, bytes.fromhex(self.fingerprint), PINNED, height, width, pixel_check(image))
        latents, symbols = LatentEncoder(self.params, describe_shapes=False), SymbolWriter()
        model = self.model
        with pinned():
            up = model.bottom_up(x)
            state = model.top_down_init(1, tuple(x.shape[2:]))
            for level in range(model.n_levels):
                p, q = model.level_distributions(state, level, up)
                z = latents.encode_level(q.loc, q.scale, p.loc, p.scale)
                state = model.top_down_step(state, level, z)
            px = model.pixel_params(state)
            latents.write_symbols(symbols)
            pixel_ideal_bits = 0.0
            for r0, r1 in _pixel_bands(height, width):
                probabilities = px[0, :, r0:r1, :width].probabilities().reshape(-1, 256)
                values = x[0, :, r0:r1, :width].reshape(-1).numpy().astype(np.int64)
                symbols.push_categorical(values, probabilities, "pixels")
                pixel_ideal_bits -= float(np.log2(probabilities[np.arange(len(values)), values]).sum())
        data, bits = pack(header, latents, symbols)
        encode_seconds = time.perf_counter() - start
        report = LosslessReport(
            kind=KIND, height=height, width=width, file_bytes=len(data), header_bits=bits.pop("header"),
            latent_bits=tuple(
                bits.pop(f"level{i}/steps", 0.0) + bits.pop(f"level{i}/indices", 0.0) for i in range(model.n_levels)
            ),
            pixel_bits=bits.pop("pixels"), stream_tail_bits=0.0,
            kl_bits=tuple(s.kl_bits for s in latents.stats), pixel_ideal_bits=pixel_ideal_bits,
            negative_elbo_bpd=self._negative_elbo_bpd(x, up, height, width), encode_seconds=encode_seconds,
        )
        if bits:
            raise RuntimeError(f"unaccounted symbol labels {sorted(bits)}")
        tail = 8.0 * len(data) - report.header_bits - sum(report.latent_bits) - report.pixel_bits
        return data, LosslessReport(**{**asdict(report), "stream_tail_bits": tail})

    # ------------------------------------------------------------------------------------------------ decode
    def decompress(self, data: bytes) -> np.ndarray:
        """The image, bit for bit; raises WrongModelError for another model's file, CorruptStreamError for bad bytes."""
        start = time.perf_counter()
        header, r = unpack(data)
        if header.kind != KIND:
            raise CorruptStreamError(f"this is a {header.kind} irec file; decode it with the {header.kind} codec")
        header.check_model(bytes.fromhex(self.fingerprint), "the lossless model given")
        if header.pinned != PINNED:
            raise CorruptStreamError(
                f"the file was written with pinning flags {header.pinned}, this decoder reproduces only {PINNED}"
            )
        height, width = header.height, header.width
        size = (height + height % 2, width + width % 2)
        model = self.model
        level_shape = (1, model.config.latent_channels, size[0] // 2, size[1] // 2)
        latents = LatentDecoder(r, shapes=[level_shape] * model.n_levels)
        symbols = SymbolReader(r.rest())
        latents.attach(symbols)
        image = np.zeros((3, height, width), dtype=np.uint8)
        with pinned():
            state = model.top_down_init(1, size)
            for level in range(model.n_levels):
                p, _ = model.level_distributions(state, level)
                z = latents.decode_level(p.loc, p.scale)
                state = model.top_down_step(state, level, z)
            px = model.pixel_params(state)
            for r0, r1 in _pixel_bands(height, width):
                probabilities = px[0, :, r0:r1, :width].probabilities().reshape(-1, 256)
                image[:, r0:r1, :] = symbols.pull_categorical(probabilities).reshape(3, r1 - r0, width)
        if not symbols.exhausted():
            raise CorruptStreamError(MISMATCH.format(what="the coded payload holds more symbols than the image needs"))
        decoded = np.ascontiguousarray(crop_to(image.transpose(1, 2, 0), (height, width), layout="hwc"))
        if pixel_check(decoded) != header.pixel_check:
            raise CorruptStreamError(MISMATCH.format(what="the decoded pixels fail the file's pixel check"))
        self.last_decode_seconds = time.perf_counter() - start
        return decoded

    # ------------------------------------------------------------------------------------------------ report
    def _negative_elbo_bpd(self, x: torch.Tensor, up, height: int, width: int) -> float:
        """-ELBO of the true pixels: analytic KL of every level + one posterior sample's -log p(x|z), no free bits.

        The sample is drawn with a generator seeded by the coder seed, so the figure is reproducible; the latents
        cover the padded image (as the codec's do).
        """
        model, generator = self.model, torch.Generator().manual_seed(self.params.seed)
        kl = 0.0
        with pinned():
            state = model.top_down_init(1, tuple(x.shape[2:]))
            for level in range(model.n_levels):
                p, q = model.level_distributions(state, level, up)
                kl += float(q.kl(p).to(torch.float64).sum())
                state = model.top_down_step(state, level, q.sample(generator))
            nll = -float(model.pixel_params(state).log_prob(x)[..., :height, :width].to(torch.float64).sum())
        return (kl + nll) / (3 * height * width * math.log(2.0))
