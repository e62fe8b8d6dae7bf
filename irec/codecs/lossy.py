"""The lossy iREC codec: the two-level VAE's latents z2, z1 coded with iREC; the decoder network gives the image.

iREC paper (Flamich, Havasi & Hernandez-Lobato 2020), sections 3 and 4 (lossy experiments); method notes
(docs/irec-method.md) section 2 step 7 (code z2 against p(z2), then z1 against p(z1 | z2_coded) with
q(z1 | x, z2_coded): the coded sample conditions the level below), section 4 (real files, exact decoders, a report
of real vs ideal rate and of the coded sample vs a posterior sample) and section 5 (pad to a multiple of 64, crop
back; PSNR of the clipped float output as the paper, and of the uint8 image).

Encoder and decoder are written as mirrored halves. The decoder's networks, p(z2), the hyper-synthesis p(z1 | z2)
and the synthesis, are integer networks (:class:`irec.models.exact_vae2.ExactTwoLevelVAE`, argument in
:mod:`irec.models.exact`), and the encoder evaluates the same exact path, so a decoder on any machine rebuilds the
encoder's reconstruction bit for bit. The image is made by ONE function, :meth:`LossyCodec.reconstruct`, on both
sides. A float model given to the codec is quantized first (:func:`irec.models.quantize.as_exact`). Everything
runs under :func:`pinned` (one thread, no autograd), the fast choice: torch's OpenMP threads would otherwise spin
against the coder's numba threads.

The coded sample (``final``). Beam search keeps the candidate with the highest q/p, which is a biased sample of the
posterior (``"best-q"``, iREC). ``"beams"`` decodes each of the B final beams of z1 (candidate k takes every
block's k-th beam) and keeps the one whose image has the lowest MSE: the rate is that of iREC (same step counts,
indices of the same length) and the MSE is never larger (ties keep beam 0). ``"mse"`` encodes the image with
``n_seeds`` seeds of the shared randomness (``params.seed``, ``params.seed + 1``, ...; the seed is in the file) and
keeps the file whose decoded uint8 image has the lowest MSE; the default seed is one of them, so its MSE is never
larger than best-q's (ties keep the default). The coded z2 sets p(z1 | z2), so another seed also changes the rate;
``"rd"`` (MSE models) keeps the seed with the lowest training loss beta * MSE(0-255) + bpp of the real file
instead, never higher than best-q's. The coder's ``sampler="sample"`` (Gumbel-top-B, via ``params``) is the other
option.

The coder's setting. The default, :data:`irec.settings.LOSSY_DEFAULT` (B = 100 beams, 1 + eps = 1, Omega = 6 nats
per step, so N = 403 candidates; adaptive blocks sized for about K_b = 40 steps and at most 384 dimensions), goes
beyond the paper's B = 10, N = 20, Omega = 3 with blocks of 1,000 (:data:`irec.settings.PAPER_LOSSY`). The gap
between the coded sample and a posterior sample is the undersampling of N = exp(Omega) candidates per step: larger
steps, more candidates per nat (1 + eps), more beams and smaller blocks all narrow it. Smaller blocks cost side
information (each block's last step rounds up, about Omega / 2 nats, and its step count K_b is sent), a share of
about 1 / K_b of the rate; sizing each level's blocks for about 40 steps
(:func:`irec.coder.schedule.adaptive_block_size`) keeps that share small and spends it on smaller blocks only where
the rate affords them. Images whose z1 is so cheap that those blocks would reach their cap take
:data:`irec.settings.LOSSY_LOW_RATE` (Omega = 7, N = 1,096, blocks of at most 768) instead, judged from z1's KL with
z2 at q2's mean before anything is coded (:meth:`LossyCodec.coder_params`); the file records N and the block sizes,
so the decoder needs nothing of the choice. The paper's setting stays one argument away (``params=PAPER_LOSSY``;
``python -m irec.bench lossy --coder paper``), and ``python -m irec.bench sweep`` moves each parameter alone.

Beyond the paper, the encoder refines the mean of q(z1 | x, z2_coded) per image before iREC codes it
(:mod:`irec.codecs.refine`, ``refinement``; ``NO_REFINEMENT`` codes the amortized posterior, as the paper). The
decoder and the file format are unchanged. An :class:`irec.codecs.encoding.Encoding` keeps the paper's ideal, the
KL of the model's own posterior (``ideal_bits``; :meth:`LossyCodec.posterior_sample` reconstructs a sample of it),
and gives the KL of the posterior actually coded beside it (``details["kl_coded_bits"]``): the coding gap measured
against the model's ideal includes what the refinement recovers of the analysis network's amortization gap. The
quality of both is measured by the evaluation (:mod:`irec.evaluation.lossy`), not here.

Every setting measured on Kodak, what it gave and why it stayed or went: docs/lossy-coder-history.md; the current
figures: docs/reference-run.md.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from irec.codecs.container import (
    MAX_SIDE,
    PINNED,
    CodecHeader,
    fingerprint_bytes,
    open_file,
    pack,
    pinned,
)
from irec.codecs.encoding import Encoding, file_parts, frozen_image
from irec.codecs.refine import refine_posterior
from irec.coder import (
    CoderParams,
    CorruptStreamError,
    LatentDecoder,
    LatentEncoder,
    SymbolReader,
    SymbolWriter,
)
from irec.coder.schedule import adaptive_block_size
from irec.data.images import check_rgb_uint8, crop_to, pad_to_multiple
from irec.distributions import DiagGaussian
from irec.models.exact_vae2 import ExactTwoLevelVAE
from irec.models.quantize import as_exact
from irec.models.vae2 import DOWNSAMPLING, TwoLevelVAE, latent_hw
from irec.settings import DEFAULT_REFINEMENT, LOSSY_DEFAULT, LOSSY_FINAL, LOSSY_FINALS, LOSSY_LOW_RATE, Refinement
from irec.timing import measure

KIND = "lossy"
LEVELS = ("z2", "z1")  # the latent levels' parts of a file (irec.codecs.encoding), in coding order


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
    return torch.round(x_float * 255.0).to(torch.uint8).numpy(), x_float.to(torch.float32).numpy()


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

    kind = KIND
    default_params = LOSSY_DEFAULT  # what coder options given on their own change (irec compress)
    default_refinement = DEFAULT_REFINEMENT  # what --refine-steps changes the steps of
    levels = LEVELS  # the latent levels' names in the file's parts (irec.codecs.encoding), in coding order

    def __init__(
        self, model: TwoLevelVAE | ExactTwoLevelVAE, fingerprint: str, params: CoderParams | None = None, final: str = LOSSY_FINAL,
        n_seeds: int = 4, refinement: Refinement = DEFAULT_REFINEMENT, low_rate_params: CoderParams | None = None,
    ) -> None:
        if params is None:
            if low_rate_params is not None:
                raise ValueError("low_rate_params goes with params; leave both out for the default pair")
            params, low_rate_params = LOSSY_DEFAULT, LOSSY_LOW_RATE
        model = as_exact(model, KIND)
        self._fingerprint = fingerprint_bytes(fingerprint)
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
        self.model, self.fingerprint = model, fingerprint  # fingerprint: the model weights' sha256 in hex
        self.params, self.low_rate_params = params, low_rate_params
        self.final, self.n_seeds, self.refinement = final, n_seeds, refinement

    # ------------------------------------------------------------------------------ shared by both halves
    def reconstruct(self, z1: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The decoded image from the coded z1: (uint8 (H, W, 3), clipped float32 (H, W, 3)); both halves call it.

        The exact synthesis gives the same bits at any thread count, and no coder runs beside it, so it uses the
        threads torch has (one in a worker of a pool; every core for ``irec decompress`` of one file)."""
        with pinned(self.model, one_thread=False):
            x_hat = self.model.synthesis(z1)
        return synthesized_image(x_hat, size)

    def latent_shapes(self, size: tuple[int, int]) -> list[tuple[int, ...]]:
        """The shapes of z2 and z1 (batch 1) for an image of ``size`` = (H, W) before padding."""
        (h1, w1), (h2, w2) = latent_hw(tuple(-(-s // DOWNSAMPLING) * DOWNSAMPLING for s in size))
        config = self.model.config
        return [(1, config.m_channels, h2, w2), (1, config.n_channels, h1, w1)]

    # ------------------------------------------------------------------- encode and decode, mirrored halves
    def compress(self, image: np.ndarray) -> bytes:
        """The file of a uint8 (H, W, 3) RGB image: :meth:`encode`'s data."""
        return self.encode(image).data

    def decompress(self, data: bytes) -> np.ndarray:
        """The uint8 (H, W, 3) image of a file written by :meth:`compress` with the same model."""
        return self.reconstruct(*self.decode_latents(data))[0]

    def encode(self, image: np.ndarray) -> Encoding:
        """The file and what it cost, its ``image`` the reconstruction the decoder gives. ``details``: per level
        ``kl_coded_bits`` (KL of the posterior coded, which the refinement moves), ``log_ratio_minus_kl_nats`` (log
        q/p of the coded sample minus the KL; > 0: the beam search's bias) and ``n_steps``; ``x_float``, the clipped
        float reconstruction; ``low_rate``: coded with ``low_rate_params``."""
        with measure() as timer:
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
        return replace(best, encode_seconds=timer.seconds, details={**best.details, "low_rate": params != self.params})

    def _encode_with_seed(self, x, enc, q2, p2, size: tuple[int, int], params: CoderParams,
                          original: np.ndarray) -> Encoding:
        """One encoding with ``params`` (its seed included): z2, then z1 given the coded z2, then the file."""
        latents = LatentEncoder(params, describe_shapes=False)
        z2 = latents.encode_level(q2.loc, q2.scale, p2.loc, p2.scale)
        with pinned(self.model):
            p1 = self.model.prior_z1(z2)
            q1 = self.model.posterior_z1(enc, p1)
        coded = refine_posterior(self.model.float_model(), x, q1, p1, self.refinement)
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
        data, packed = pack(CodecHeader(KIND, self._fingerprint, PINNED, *size), latents, symbols)
        stats = dict(zip(LEVELS, latents.stats))
        # the ideal: the KL of the model's own (amortized) posterior, the paper's, whatever the encoder coded
        amortized = {"z2": stats["z2"].kl_nats, "z1": stats["z1"].kl_nats if coded is q1 else _kl_nats(q1, p1)}
        return Encoding(
            data=data, image=frozen_image(image), bits=file_parts(data, packed, LEVELS),
            ideal_bits={name: nats / math.log(2.0) for name, nats in amortized.items()},
            encode_seconds=math.nan, params=params,  # encode() sets the time of the whole search
            details={"kl_coded_bits": {name: s.kl_bits for name, s in stats.items()},
                     "log_ratio_minus_kl_nats": {name: s.log_ratio_nats - s.kl_nats for name, s in stats.items()},
                     "n_steps": {name: s.n_steps for name, s in stats.items()}, "x_float": x_float},
        )

    def decode_latents(self, data: bytes) -> tuple[torch.Tensor, tuple[int, int]]:
        """The coded z1 of a file and the image size (H, W): :meth:`decompress` before the synthesis network."""
        header, r = open_file(data, KIND, self.fingerprint)
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

    # ---------------------------------------------------------------------- the encoder's choices (encode only)
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

    def cost(self, image: np.ndarray, encoding: Encoding) -> float:
        """What ``final`` minimizes: MSE (0-255 scale) of the decoded image, plus bpp / beta for "rd"."""
        mse = float(np.mean((encoding.image.astype(np.float64) - image.astype(np.float64)) ** 2))
        if self.final != "rd":
            return mse
        return mse + encoding.bpp / self.model.config.beta

    # ------------------------------------------------------------------------------ the paper's ideal sample
    def posterior_sample(self, image: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The reconstruction from ONE random posterior sample, z2 ~ q2, z1 ~ q1(. | x, z2), the paper's "ideal"
        beside the coded one: (uint8 (H, W, 3), clipped float32 (H, W, 3)); ``seed`` None: ``params.seed``."""
        x, size = _to_batch(image)
        generator = torch.Generator().manual_seed(self.params.seed if seed is None else seed)
        with pinned(self.model):
            enc = self.model.analysis(x)
            z2 = self.model.posterior_z2(enc).sample(generator)
            z1 = self.model.posterior_z1(enc, self.model.prior_z1(z2)).sample(generator)
        return self.reconstruct(z1, size)


def _kl_nats(q: DiagGaussian, p: DiagGaussian) -> float:
    """KL(q || p) in nats, summed in float64."""
    as64 = [DiagGaussian(d.loc.double(), d.scale.double(), validate=False) for d in (q, p)]
    return float(as64[0].kl(as64[1]).sum())

