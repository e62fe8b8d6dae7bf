"""The lossy iREC codec: the two-level VAE's latents z2, z1 coded with iREC; the decoder network gives the image.

iREC paper (Flamich, Havasi & Hernandez-Lobato 2020), sections 3 and 4 (lossy experiments); method notes
(docs/irec-method.md) section 2 step 7 (code z2 against p(z2), then z1 against p(z1 | z2_coded) with
q(z1 | x, z2_coded): the coded sample conditions the level below), section 4 (real files, exact decoders, a report
of real vs ideal rate and of the coded sample vs a posterior sample) and section 5 (pad to a multiple of 64, crop
back; PSNR of the clipped float output as the paper, and of the uint8 image).

Encoder and decoder are written as mirrored halves. Every network evaluation runs inside :func:`pinned` (one
thread, deterministic algorithms, float32 on the CPU, batch 1, eval mode, no gradients) and the file records those
PIN_* flags. Encoding and decoding run under it from start to end, the coder's small tensor operations included:
torch's OpenMP threads would otherwise spin against the coder's numba threads (measured 4.39 s -> 4.05 s per Kodak
image). The image is made by ONE function, :meth:`LossyCodec.reconstruct`, on both sides, so a decoder in
another process rebuilds the encoder's reconstruction bit for bit. On another machine it need not: between an AMD
EPYC with torch 2.13 and an Intel Xeon with torch 2.11, all 4 Kodak files decoded both ways, none bit for bit,
with 0.001-0.002% of the uint8 values off by one and the PSNR unchanged to 1e-4 dB; the synthesis network on an
H200 changes 0.002% of them in strict float32 and 0.58% with TF32 (``python -m irec.bench devices``,
results/bench/devices.csv). A lossy file parses on any machine (its step counts and candidate indices are coded
under fixed distributions; only the floats of p(z1 | z2) and of the synthesis move), and it carries no pixel
check, so such a decode is returned.

Closing the coding gap (issue 5): beam search keeps the candidate with the highest q/p, which is a biased sample;
the paper's files lost 0.6-1.35 dB against a posterior sample. ``final="beams"`` decodes each of the B final beams
of z1 (candidate k takes every block's k-th beam) and keeps the one whose image has the lowest MSE: the rate is
that of iREC (same step counts, indices of the same length) and the MSE is never larger (ties keep beam 0).
``final="mse"`` encodes the image with ``n_seeds``
seeds of the shared randomness (``params.seed``, ``params.seed + 1``, ...; the seed is in the file) and keeps the
file whose decoded uint8 image has the lowest MSE. The default seed is one of them, so its MSE is never larger
than ``final="best-q"``'s (ties keep the default). The coded z2 sets p(z1 | z2), so another seed also changes the
rate; ``final="rd"`` (MSE models) keeps the seed with the lowest training loss beta * MSE(0-255) + bpp of the real
file instead, never higher than best-q's. The coder's ``sampler="sample"`` (Gumbel-top-B, via ``params``) is the
other option the current API allows.

What narrowed the gap, measured, is the coder's setting: :data:`irec.settings.LOSSY_DEFAULT` (B = 100, 1 + eps = 1, Omega = 6
nats, N = 403, adaptive blocks of about 40 steps and at most 384 dimensions; B = 10 with fixed blocks of 384 and
Omega = 5, N = 148, until 2026-11-26) against the paper's B = 10, N = 20, Omega = 3 with blocks of 1,000
(:data:`PAPER_LOSSY`). Larger steps and smaller blocks both keep the coded sample nearer the posterior (the same
held for the lossless codec). With the shipped ``lossy-mse-0.01`` (8,950 CPU steps, then 15,853 on an H200 and
10,534 at 256-px crops on an H100) on all 24 Kodak images: the paper's setting 0.76% above the KL and 2.47 dB below
a posterior sample, the default 2.6% above and 0.40 dB below (results/bench/lossy-paper-coder.csv,
results/bench/lossy.csv), fixed blocks of 384 2.2% and 0.65 dB, and Omega = 5 2.0% and 0.87 dB. The gap grew as the
models got better (0.91 dB with the model before, 0.70 dB with the 8,950-step one, 0.65 and 0.24 dB with weaker ones
before it); 1 + eps = 1.1 more than halves it (0.16-0.39 dB for the five MSE models) at 11-18% more rate, a BD-rate
0.8 points better against JPEG and 3 against WebP (results/bench/lossy-eps1.1.csv, at Omega = 5), while Omega = 6 (N
= 403) gains 0.13-0.22 dB over Omega = 5 at the same rate, for twice the encode time, and beats JPEG at every rate
(results/bench/lossy-omega6.csv): hence the default. ``final="beams"`` changed the mean PSNR by at most 0.001 dB
wherever we measured it (24 Kodak images at the paper's setting, 4 at the default with two models) while tripling
the encode time at the paper's setting: candidate k takes every block's k-th beam, which is further from the
posterior than beam 0 in every block at once, so beam 0 wins (choosing per block needs the decoder's error per
block, which this API does not give; see below). Also measured and dropped (scratch scripts, 1-4 Kodak images): the
schedule's exponent (0.6 to 1.0 around the original 0.786, ``lossy-mse-0.01``: the best, 0.82, gained 0.01 dB; 0.6
and 1.0 lost 1.4 and 1.1 dB), an equal-KL-per-step schedule solved from the level's own posterior (level with the
power law, whose steps already carry near-equal KL), larger blocks (1,152 at beta 0.001: 1.7% over the KL instead of
4.2%, but a gap of 1.02 dB instead of 0.71), the synthesis fine-tuned on coded z1 of 200 training crops
(``lossy-mse-0.03``: at most +0.02 dB), 40 Adam steps of per-image refinement of the analysis output
(``lossy-mse-0.01``: R-D loss -2.4%, 140 s per image), scoring the beams by log q~ - gamma log p~ instead of the
importance weight (gamma = 1; encoder-only, so the rate stays; ``lossy-mse-0.05``, 3 images: gamma 0, the candidate
nearest the posterior mean, lost 1.62 dB, 0.5 lost 0.66, 1.15 and 1.3 lost 0.04 and 0.23), and more candidates in
the last (or the first) steps of every block only (``lossy-mse-0.05``, 3 images: N = 403 in 4 steps, +0.04 dB for
0.8% more rate; N = 1,808 in the last step, +0.01 dB for 0.5%, in the first +0.02 dB): per point of rate no better
than 1 + eps on every step. The gap is the undersampling of N = exp(Omega) candidates per step, which more
candidates (1 + eps) or smaller blocks close, at their rate. Adaptive blocks (``steps_per_block``,
:func:`irec.coder.schedule.adaptive_block_size`): on 4 Kodak images (kodim01, 08, 15, 22) at Omega = 6, fixed blocks
of 256 / 192 / 128 instead of 384 raised the PSNR of the five MSE models by 0.05-0.10 / 0.07-0.17 / 0.08-0.25 dB for
0.4-2.7 / 0.9-5.1 / 1.6-9.7% more rate, more than the R-D curve's own slope pays for that rate, at every rate but
0.001 (even there), and encoding faster (fewer padded steps). The price is the overhead per block (the last step's
rounding, about Omega / 2 nats, and its step count, about 3 bits), a share of about 1 / K of the rate for blocks of
K steps: 16.8% over the KL at beta 0.001 with blocks of 128. Sizing each level's blocks for K = 40 steps keeps that
share near 2.5% (the issue's target is 3%) and spends it on smaller blocks only where the rate affords them: on the
median Kodak image 358 dimensions at beta 0.01, 223 at 0.03 and 187 at 0.05; 384 at 0.001. On all 24 images
(notebook 05) against fixed blocks of 384: +0.04 / +0.08 / +0.07 dB at beta 0.01 / 0.03 / 0.05 for 0.5 / 1.0 / 1.2%
more rate, the gap 0.65 / 0.58 / 0.52 -> 0.61 / 0.50 / 0.45 dB, 20% faster encoding. Omega = 7 (N = 1,096) with
these blocks, all 24 images (results/bench/lossy-omega7.csv): +0.06-0.11 dB at the same rate, the gap 0.25-0.50 dB,
BD-rate +5.1% against WebP (+8.2% at Omega = 6), but 2.2 times the encode time (5-26 s per image), so not the
default. Measured on 4 images and dropped: the search aimed at a posterior with scales times 1.15-1.25 (encoder
only: +0.05 dB at beta 0.05, -0.2 to -0.6 dB at 0.001), and each block's final beam chosen by the gradient of the
image's MSE (+0.02 dB on kodim01). More beams: once the search kept its top B pairs in one pass instead of sorting
all B x N scores of a step (same files, 2-5 times faster), B = 50 cost less encode time than B = 10 had, and on all
24 images (notebook 05) narrowed the gap to 0.25 / 0.41 / 0.45 / 0.36 / 0.31 dB at the same rate (from 0.34 / 0.54 /
0.61 / 0.50 / 0.45 at B = 10), BD-rate +4.0% against WebP, 2.6-9.7 s per image. On 3 images the gap at beta 0.01 was
0.60 / 0.47 / 0.44 / 0.39 / 0.35 dB at B = 10 / 30 / 50 / 100 / 200, and Omega = 7 or 8 bought less per second
(docs/lossy-coder-history.md). Once the search scored its beams and candidates with one matrix product per step
(irec.coder.search), B = 100 cost what B = 50 had, and on all 24 images (notebook 05) narrowed the gap to 0.22 /
0.37 / 0.40 / 0.31 / 0.27 dB at the same rate, BD-rate +2.9% against WebP, 3.8-10.5 s per image: hence the default.
Dropped: a coordinate-descent pass over the best beam's steps under the final log q/p (no change: beam search leaves
a local optimum), z1 shrunk toward the prior mean before the synthesis (-1.5 dB at 0.9), and at most 2 children per
beam at B = 50 (-0.03 dB). ``python -m irec.bench sweep`` moves each parameter alone. The paper's setting stays one
argument away (``params=PAPER_LOSSY``; ``python -m irec.bench lossy --coder paper``).

Low-rate images (issue 5's rate target at beta 0.001 and 0.003): below about 0.34 bpp of z1 (N = 96 channels) the
blocks of :data:`irec.settings.LOSSY_DEFAULT` reach their cap of 384 dimensions and take fewer than 40 steps, so the overhead per
block is a larger share of the rate: 8.2% of z1's coded KL at beta 0.001 on 6 Kodak images, 3.3 points for the step
counts and 4.9 for the last step's rounding. Larger blocks cut that share but cost PSNR (more steps per block), which
Omega = 7 (N = 1,096) wins back. On 3 Kodak images (kodim05, 19, 22) at beta 0.001, blocks of at most 384 / 576 / 768
at Omega = 6 were 5.9 / 3.9 / 3.0% over the KL with gaps of 0.24 / 0.30 / 0.35 dB; 768 at Omega = 7, 2.9% and 0.26
dB, in 10.3 s instead of 5.7 (also tried: Omega = 6.5, 2.7% and 0.31 dB; Omega = 7 with B = 50, 2.9% and 0.30 dB;
Omega = 6 with B = 200, 2.8% and 0.32 dB; 640 at Omega = 7, 3.5% and 0.24 dB). Omega = 7 with those blocks was better
at every rate on those images (+0.01 to +0.07 dB at 0.2-1.2% less rate for beta 0.003-0.05), but it doubles the
encode time where the rate is high (14-15 s instead of 7-8.5 s at beta >= 0.01). So the encoder uses it
(:data:`irec.settings.LOSSY_LOW_RATE`) only for images whose z1 would cap the default's blocks, estimating z1's KL with z2 at q2's
mean (:meth:`LossyCodec.coder_params`); the file records N and the block sizes, so the decoder needs nothing. Measured
and dropped (accounting on 6 images, coder unchanged): dealing z1's dimensions into blocks stratified by the prior's
scale, which the decoder knows, and coding the step counts under a discretized Gaussian would cut the counts' share
from 3.3 to 2.4 points at beta 0.001 (1.8 to 1.4 at 0.003); stratified by channel, which needs no float to agree
across machines, to 2.7: a format change for less than a point.

Beyond the coder: the encoder refines the mean of q(z1 | x, z2_coded) per image before iREC codes it
(:mod:`irec.codecs.refine`, ``refinement``; ``NO_REFINEMENT`` codes the amortized posterior, as the paper). The
decoder and the file format are unchanged. Reports keep the paper's ideal, the KL of the model's own posterior and a
sample of it (``bpp_ideal``, ``sample_*``), and give the KL of the posterior actually coded beside it
(``bpp_kl_coded``): the coding gap measured against the model's ideal includes what the refinement recovers of the
analysis network's amortization gap.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from irec import metrics
from irec.codecs.container import (
    FINGERPRINT_BYTES,
    MAX_SIDE,
    PIN_DETERMINISTIC,
    PIN_FLOAT32,
    PIN_ONE_THREAD,
    CodecHeader,
    WrongModelError,
    pack,
    pinned,
    unpack,
)
from irec.codecs.refine import refine_posterior
from irec.coder import (
    CoderParams,
    CorruptStreamError,
    LatentDecoder,
    LatentEncoder,
    LevelStats,
    SymbolReader,
    SymbolWriter,
)
from irec.coder.schedule import adaptive_block_size
from irec.data.images import check_rgb_uint8, crop_to, pad_to_multiple
from irec.distributions import DiagGaussian
from irec.models.vae2 import DOWNSAMPLING, TwoLevelVAE, latent_hw
from irec.settings import DEFAULT_REFINEMENT, LOSSY_DEFAULT, LOSSY_FINAL, LOSSY_FINALS, LOSSY_LOW_RATE, Refinement

PINNED = PIN_ONE_THREAD | PIN_DETERMINISTIC | PIN_FLOAT32  # what pinned() guarantees, recorded in every file
LEVELS = ("z2", "z1")  # coding order, level 0 then level 1


@dataclass(frozen=True)
class Encoding:
    """One encoding of an image and what the decoder will make of it."""

    data: bytes  # the file
    bits: dict[str, float]  # bits per part from container.pack: 'header' and the coder's symbol labels
    params: CoderParams  # the coder setting of this image (the codec's params or low_rate_params), seed included
    stats: tuple[LevelStats, ...]  # the coder's statistics per level (z2, z1), of the posterior coded
    kl_amortized_nats: tuple[float, ...]  # KL(q || p) per level of the model's own (amortized) posterior
    image: np.ndarray  # the decoded uint8 (H, W, 3) image
    x_float: np.ndarray  # the clipped float reconstruction in [0, 1], (H, W, 3) float32

    @property
    def seed(self) -> int:
        """The seed of the shared randomness written in the file."""
        return self.params.seed


def _to_batch(image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 (H, W, 3) -> float32 (1, 3, H', W') in [0, 1], H', W' padded to multiples of 64 by edge replication."""
    check_rgb_uint8(image)
    if max(image.shape[:2]) > MAX_SIDE:
        raise ValueError(f"image sides must be at most {MAX_SIDE} pixels, got {image.shape[0]}x{image.shape[1]}")
    padded, size = pad_to_multiple(np.ascontiguousarray(image), DOWNSAMPLING, layout="hwc")
    x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))).unsqueeze(0)
    return x.to(torch.float32) / 255.0, size


def synthesized_image(x_hat: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A synthesis output (1, 3, H', W') on any device as the image a decoder gives: cropped to ``size`` = (H, W),
    clipped to [0, 1], rounded on the CPU; (uint8 (H, W, 3), clipped float32 (H, W, 3))."""
    x_float = crop_to(x_hat[0], size, layout="chw").clamp(0.0, 1.0).permute(1, 2, 0).contiguous().cpu()
    return torch.round(x_float * 255.0).to(torch.uint8).numpy(), x_float.numpy()


class LossyCodec:
    """``compress(image) -> bytes`` and ``decompress(bytes) -> image`` with a two-level VAE and iREC.

    ``fingerprint``: the model weights' sha256 in hex (as from :func:`irec.checkpoint.load_model`);
    ``params``: the coder settings (the paper's are :data:`irec.settings.PAPER_LOSSY`); None: :data:`irec.settings.LOSSY_DEFAULT`, and
    :data:`irec.settings.LOSSY_LOW_RATE` for low-rate images;
    ``low_rate_params``: with ``params`` given, the setting for images whose z1 would cap ``params``' adaptive blocks
    (:meth:`coder_params`); None: ``params`` for every image;
    ``final``: ``"best-q"`` (iREC), ``"mse"`` or ``"rd"`` (keep the best of ``n_seeds`` encodings; see the module);
    ``refinement``: the encoder's refinement of q(z1)'s mean (:mod:`irec.codecs.refine`; ``NO_REFINEMENT``: the paper).
    """

    kind = "lossy"
    default_params = LOSSY_DEFAULT  # what coder options given on their own change (irec compress)

    def __init__(
        self, model: TwoLevelVAE, fingerprint: str, params: CoderParams | None = None, final: str = LOSSY_FINAL,
        n_seeds: int = 4, refinement: Refinement = DEFAULT_REFINEMENT, low_rate_params: CoderParams | None = None,
    ) -> None:
        if params is None:
            if low_rate_params is not None:
                raise ValueError("low_rate_params goes with params; leave both out for the default pair")
            params, low_rate_params = LOSSY_DEFAULT, LOSSY_LOW_RATE
        if not isinstance(model, TwoLevelVAE):
            raise ValueError(f"LossyCodec needs a TwoLevelVAE (irec.models.vae2), got {type(model).__name__}")  # noqa: TRY004 (house rule: bad input is a ValueError)
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
                raise ValueError(
                    f"the codec evaluates the model in float32 on the CPU, but {name} is {tensor.dtype} on "
                    f"{tensor.device}; pass model.cpu().float()"
                )
        try:
            self.fingerprint = bytes.fromhex(fingerprint)
        except (TypeError, ValueError) as err:
            raise ValueError(f"fingerprint must be the model's sha256 in hex, got {fingerprint!r}") from err
        if len(self.fingerprint) < FINGERPRINT_BYTES:
            raise ValueError(f"fingerprint must have at least {2 * FINGERPRINT_BYTES} hex digits, got {fingerprint!r}")
        if params.sampler == "pfr" or (low_rate_params is not None and low_rate_params.sampler == "pfr"):
            raise ValueError("the pfr reference sampler codes standalone latents only; use beam, greedy or sample")
        if low_rate_params is not None and low_rate_params.seed != params.seed:
            raise ValueError(f"low_rate_params must share params' seed ({params.seed}), got {low_rate_params.seed}")
        if final not in LOSSY_FINALS:
            raise ValueError(f"unknown final {final!r}; choose one of {', '.join(LOSSY_FINALS)}")
        if final == "rd" and model.config.distortion != "mse":
            raise ValueError(f"final='rd' uses the MSE loss; this model was trained for {model.config.distortion}")
        if n_seeds < 1 or (final in ("mse", "rd") and params.seed + n_seeds > 2**63):
            raise ValueError(f"n_seeds must be at least 1 and params.seed + n_seeds below 2**63, got {n_seeds}")
        self.model, self.fingerprint_hex = model, fingerprint
        self.params, self.low_rate_params = params, low_rate_params
        self.final, self.n_seeds, self.refinement = final, n_seeds, refinement

    # ------------------------------------------------------------------------------ shared by both halves
    def reconstruct(self, z1: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The decoded image from the coded z1: (uint8 (H, W, 3), clipped float32 (H, W, 3)); both halves call it."""
        with pinned(self.model):
            x_hat = self.model.synthesis(z1)
        return synthesized_image(x_hat, size)

    def latent_shapes(self, size: tuple[int, int]) -> list[tuple[int, ...]]:
        """The shapes of z2 and z1 (batch 1) for an image of ``size`` = (H, W) before padding."""
        (h1, w1), (h2, w2) = latent_hw(tuple(-(-s // DOWNSAMPLING) * DOWNSAMPLING for s in size))
        config = self.model.config
        return [(1, config.m_channels, h2, w2), (1, config.n_channels, h1, w1)]

    # ------------------------------------------------------------------------------------------ encoder
    def coder_params(self, enc: torch.Tensor, q2: DiagGaussian) -> CoderParams:
        """This image's coder setting: ``low_rate_params`` when ``params`` has adaptive blocks and the image's z1 is
        so cheap that they would be capped (:func:`irec.coder.schedule.adaptive_block_size` of its KL, amortized,
        with z2 at q2's mean: the encoder's estimate, gives the largest size); else ``params``. The file records N
        and the block sizes, so the decoder needs nothing of this choice."""
        params, low = self.params, self.low_rate_params
        if low is None or not params.steps_per_block:
            return params
        with pinned(self.model):
            p1 = self.model.prior_z1(q2.loc)
            q1 = self.model.posterior_z1(enc, p1)
        size = adaptive_block_size(q1.loc.numel(), _kl_nats(q1, p1), params.kl_per_step, params.steps_per_block,
                                   params.block_size)
        return low if size == params.block_size else params

    def _encode_with_seed(self, x, enc, q2, p2, size: tuple[int, int], params: CoderParams,
                          original: np.ndarray) -> Encoding:
        latents = LatentEncoder(params, describe_shapes=False)
        z2 = latents.encode_level(q2.loc, q2.scale, p2.loc, p2.scale)
        with pinned(self.model):
            p1 = self.model.prior_z1(z2)
            q1 = self.model.posterior_z1(enc, p1)
        coded = refine_posterior(self.model, x, q1, p1, self.refinement)
        select, chosen = None, []
        if self.final == "beams":
            def select(candidates):  # lowest MSE of the decoded image; ties keep beam 0, the iREC choice
                decoded = [self.reconstruct(z, size) for z in candidates]
                errors = [float(np.mean((image.astype(np.float64) - original) ** 2)) for image, _ in decoded]
                best = int(np.argmin(errors))
                chosen.append(decoded[best])  # its reconstruction, so it is not synthesized twice
                return best
        z1 = latents.encode_level(coded.loc, coded.scale, p1.loc, p1.scale, select=select)
        image, x_float = chosen[0] if chosen else self.reconstruct(z1, size)
        symbols = SymbolWriter()
        latents.write_symbols(symbols)
        header = CodecHeader(self.kind, self.fingerprint[:FINGERPRINT_BYTES], PINNED, *size)
        data, bits = pack(header, latents, symbols)
        stats = tuple(latents.stats)
        kl_z1 = stats[1].kl_nats if coded is q1 else _kl_nats(q1, p1)
        return Encoding(data, bits, params, stats, (stats[0].kl_nats, kl_z1), image, x_float)

    def encode(self, image: np.ndarray) -> Encoding:
        """The file and the encoder's view of it (the decoded image included)."""
        x, size = _to_batch(image)
        with pinned(self.model):  # all of it (see the module docstring)
            enc = self.model.analysis(x)
            q2 = self.model.posterior_z2(enc)
            p2 = self.model.prior_z2(q2.shape[-2:], batch_size=1)
            params = self.coder_params(enc, q2)
            several = self.final in ("mse", "rd")
            seeds = range(params.seed, params.seed + self.n_seeds) if several else [params.seed]
            best, best_cost = None, math.inf
            original = image.astype(np.float64)
            for seed in seeds:
                candidate = self._encode_with_seed(x, enc, q2, p2, size, params.with_(seed=seed), original)
                cost = self.cost(image, candidate)
                if cost < best_cost:  # strict: ties keep the earlier seed, the default first
                    best, best_cost = candidate, cost
        return best

    def cost(self, image: np.ndarray, encoding: Encoding) -> float:
        """What ``final`` minimizes: MSE (0-255 scale) of the decoded image, plus bpp / beta for "rd"."""
        mse = float(np.mean((encoding.image.astype(np.float64) - image.astype(np.float64)) ** 2))
        if self.final != "rd":
            return mse
        return mse + metrics.bits_per_pixel(len(encoding.data), *image.shape[:2]) / self.model.config.beta

    def compress(self, image: np.ndarray) -> bytes:
        """Compress a uint8 (H, W, 3) RGB image."""
        return self.encode(image).data

    # ------------------------------------------------------------------------------------------ decoder
    def decompress(self, data: bytes) -> np.ndarray:
        """The uint8 (H, W, 3) image of a file written by :meth:`compress` with the same model."""
        return self.reconstruct(*self.decode_latents(data))[0]

    def decode_latents(self, data: bytes) -> tuple[torch.Tensor, tuple[int, int]]:
        """The coded z1 of a file and the image size (H, W): :meth:`decompress` before the synthesis network."""
        header, r = unpack(data)
        if header.kind != self.kind:
            raise WrongModelError(f"this is a {header.kind} irec file; decode it with the {header.kind} codec")
        header.check_model(self.fingerprint, f"the given model ({self.fingerprint_hex[:16]}...)")
        if header.pinned & ~(PIN_ONE_THREAD | PIN_DETERMINISTIC | PIN_FLOAT32):
            raise CorruptStreamError(f"malformed header: unknown pinned flags {header.pinned:#x}")
        size = (header.height, header.width)
        latents = LatentDecoder(r, shapes=self.latent_shapes(size))
        symbols = SymbolReader(r.rest())
        latents.attach(symbols)
        with pinned(self.model):
            p2 = self.model.prior_z2(self.latent_shapes(size)[0][-2:], batch_size=1)
            z2 = latents.decode_level(p2.loc, p2.scale)
            p1 = self.model.prior_z1(z2)
            z1 = latents.decode_level(p1.loc, p1.scale)
        if not symbols.exhausted():
            raise CorruptStreamError("the coded payload holds more symbols than the header announces (corrupt file)")
        return z1, size

    # ------------------------------------------------------------------------------------------- report
    def posterior_sample(self, image: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The paper's "ideal" reconstruction from ONE random posterior sample: z2 ~ q2, z1 ~ q1(. | x, z2)."""
        x, size = _to_batch(image)
        generator = torch.Generator().manual_seed(self.params.seed if seed is None else seed)
        with pinned(self.model):
            enc = self.model.analysis(x)
            z2 = self.model.posterior_z2(enc).sample(generator)
            z1 = self.model.posterior_z1(enc, self.model.prior_z1(z2)).sample(generator)
        return self.reconstruct(z1, size)

    def compress_with_report(self, image: np.ndarray) -> tuple[bytes, dict]:
        """The file and a report: real and ideal rates, quality of the file and of a posterior sample, timings."""
        start = time.perf_counter()
        encoding = self.encode(image)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = self.decompress(encoding.data)
        decode_s = time.perf_counter() - start
        return encoding.data, self.report(image, encoding, decoded, encode_s, decode_s)

    def report(
        self, image: np.ndarray, encoding: Encoding, decoded: np.ndarray, encode_s: float, decode_s: float
    ) -> dict:
        """What :meth:`compress_with_report` reports, for an encoding and its decoded image timed by the caller."""
        height, width = image.shape[:2]
        pixels = height * width
        report = {"n_bytes": len(encoding.data), "bpp": metrics.bits_per_pixel(len(encoding.data), height, width)}
        # Real bits: each level's step counts and indices; the header part also holds the ANS stream's final flush
        # (the payload is whole 32-bit words), so that header + z2 + z1 = 8 * len(file) exactly.
        level_bits = {
            name: sum(b for label, b in encoding.bits.items() if label.startswith(f"level{i}/"))
            for i, name in enumerate(LEVELS)
        }
        report["bpp_header"] = (8 * len(encoding.data) - sum(level_bits.values())) / pixels
        # The ideal rate is the KL of the model's own posterior (the paper's); bpp_kl_coded that of the posterior coded,
        # which differs from it when the encoder refines q(z1)'s mean (irec.codecs.refine).
        to_bpp = 1.0 / (pixels * math.log(2.0))
        for name, stats, amortized in zip(LEVELS, encoding.stats, encoding.kl_amortized_nats):
            report[f"bpp_{name}"] = level_bits[name] / pixels
            report[f"bpp_ideal_{name}"] = amortized * to_bpp
            report[f"bpp_kl_coded_{name}"] = stats.kl_bits / pixels
            report[f"log_ratio_minus_kl_{name}"] = stats.log_ratio_nats - stats.kl_nats  # nats; > 0: beam bias
        report["bpp_ideal"] = sum(encoding.kl_amortized_nats) * to_bpp
        report["bpp_kl_coded"] = sum(s.kl_bits for s in encoding.stats) / pixels
        report.update(_quality(image, encoding.image, encoding.x_float, ""))
        report.update(_quality(image, *self.posterior_sample(image), "sample_"))
        report.update({
            **self.refinement.columns(), "seed": encoding.seed, "final": self.final,
            "low_rate": encoding.params.with_(seed=self.params.seed) != self.params,  # coded with low_rate_params
            "n_seeds": self.n_seeds if self.final in ("mse", "rd") else 1,
            "encode_s": encode_s, "decode_s": decode_s, "exact": bool(np.array_equal(decoded, encoding.image)),
        })
        return report


def _kl_nats(q: DiagGaussian, p: DiagGaussian) -> float:
    """KL(q || p) in nats, summed in float64."""
    as64 = [DiagGaussian(d.loc.double(), d.scale.double(), validate=False) for d in (q, p)]
    return float(as64[0].kl(as64[1]).sum())


def _quality(image: np.ndarray, decoded: np.ndarray, x_float: np.ndarray, prefix: str) -> dict[str, float]:
    """PSNR of the uint8 image and of the clipped float output (as the paper), MS-SSIM and its dB."""
    reference = image.astype(np.float64) / 255.0
    value = metrics.ms_ssim(image, decoded)
    return {
        f"{prefix}psnr": metrics.psnr(image, decoded),
        f"{prefix}psnr_float": metrics.psnr(reference, x_float.astype(np.float64), data_range=1.0),
        f"{prefix}ms_ssim": value,
        f"{prefix}ms_ssim_db": metrics.ms_ssim_db(value),
    }
