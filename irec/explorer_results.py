"""The explorer's results as plain values (nothing of the codecs): one press, the history of presses, the sweep's
values and the live line of candidates; :mod:`irec.explorer` makes them, :mod:`irec.explorer_figures` draws them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RATE_UNITS = {"lossless": "bpd", "lossy": "bpp"}  # each kind's rate: bits per dimension, or per pixel
MAX_CANDIDATES = 2**24  # N must be below this (irec.coder.params)
HISTORY_COLUMNS = ("press", "model", "image", "kind", "B", "1+eps", "Omega", "N", "block", "K_b", "sampler",
                   "refine steps", "bytes", "rate", "ideal rate", "unit", "overhead %", "PSNR dB", "MS-SSIM",
                   "exact", "encode s", "decode s")
SWEEPS = {  # the parameters a sweep can move: label -> CoderParams field
    "Omega (nats per step)": "kl_per_step", "B (beams)": "n_beams", "1+eps": "extra_samples",
    "K_b (steps per block)": "steps_per_block", "block size (dims)": "block_size",
}


class ExplorerSettingsError(ValueError):
    """The explorer's settings cannot be coded (e.g. fewer than two candidates per step)."""


@dataclass(frozen=True)
class ExplorerResult:
    """One image coded with one model and one set of coder settings: real and ideal rates, quality, timings."""

    kind: str  # "lossless" (rate in bpd) or "lossy" (rate in bpp)
    model: str  # the model's name
    params: CoderParams  # the coder settings used
    level_names: tuple[str, ...]  # latent levels in coding order (level 0 = top; z2 then z1 for lossy)
    real_bits: tuple[float, ...]  # real bits of each level in the file (step counts + indices)
    ideal_bits: tuple[float, ...]  # ideal bits of each level: KL(q || p) given the coded levels above (lossy: q the
    # model's own posterior, the paper's ideal, whatever the encoder's refinement codes)
    pixel_bits: float | None  # lossless: real bits of the pixels under p(x | z); None: no pixel stream (lossy)
    pixel_ideal_bits: float | None  # lossless: -log2 p(x | z coded); None: no pixel stream (lossy)
    framing_bits: float  # header, crc and the entropy coder's final flush
    n_bytes: int  # size of the file
    rate: float  # real rate: bpd (lossless) or bpp (lossy)
    ideal_rate: float  # (sum of ideal_bits + pixel_ideal_bits) in the same unit
    psnr: float  # dB of the decoded uint8 image (inf when exact)
    ms_ssim: float  # five-scale MS-SSIM (NaN for images with a side of 160 pixels or less)
    ms_ssim_db: float  # -10 log10(1 - MS-SSIM)
    encode_s: float  # wall time the user waited for the encoder (codec.encode, all of it)
    decode_s: float  # wall time the user waited for the decoder (one decompress of the file)
    exact: bool  # the decoder rebuilt what the encoder meant (lossless: the image itself)
    reconstruction: np.ndarray = field(repr=False)  # the decoded uint8 (H, W, 3) image
    error_map: np.ndarray = field(repr=False)  # |decoded - original| per pixel, mean over channels, 0-255 float
    refine_steps: int = 0  # lossy: the encoder's refinement steps of q(z1) (irec.codecs.refine); lossless: 0
    load_s: float = 0.0  # wall time of making the codec (the model itself is cached after its first load)
    measure_s: float = 0.0  # wall time of the quality measures (PSNR, MS-SSIM)

    @property
    def unit(self) -> str:
        return RATE_UNITS[self.kind]

    @property
    def total_bits(self) -> float:
        return 8.0 * self.n_bytes

    @property
    def overhead_percent(self) -> float:
        """How much larger the file is than the ideal rate, in percent."""
        ideal = sum(self.ideal_bits) + (self.pixel_ideal_bits or 0.0)
        return 100.0 * (self.total_bits - ideal) / ideal if ideal > 0 else math.inf  # ideal 0: no latent to code

    def bits_table(self) -> pd.DataFrame:
        """One row per part of the file: real bits, ideal bits and the overhead of each."""
        rows = [(name, real, ideal) for name, real, ideal in zip(self.level_names, self.real_bits, self.ideal_bits)]
        if self.pixel_bits is not None:
            rows.append(("pixels", self.pixel_bits, self.pixel_ideal_bits))
        ideal = sum(self.ideal_bits) + (self.pixel_ideal_bits or 0.0)
        rows += [("framing", self.framing_bits, 0.0), ("total", self.total_bits, ideal)]
        table = pd.DataFrame(rows, columns=["part", "real bits", "ideal bits"])
        table["overhead bits"] = table["real bits"] - table["ideal bits"]
        return table

    def summary(self) -> dict:
        """The headline figures, plain values."""
        return {
            "model": self.model, "kind": self.kind, f"real {self.unit}": self.rate,
            f"ideal {self.unit}": self.ideal_rate, "overhead %": self.overhead_percent, "bytes": self.n_bytes,
            "PSNR dB": self.psnr, "MS-SSIM": self.ms_ssim,
            "MS-SSIM dB": self.ms_ssim_db, "load s": self.load_s, "encode s": self.encode_s,
            "decode s": self.decode_s, "measure s": self.measure_s, "exact": self.exact,
            "B": self.params.beams, "1+eps": self.params.extra_samples, "Omega": self.params.kl_per_step,
            "N": self.params.n_candidates, "sampler": self.params.sampler, "refine steps": self.refine_steps,
        }


def candidates_text(extra_samples: float, kl_per_step: float) -> str:
    """The live line under the sliders: N = floor(exp((1+eps) * Omega)), and whether it can be coded."""
    exponent = extra_samples * kl_per_step
    n = math.floor(math.exp(exponent)) if exponent < 700 else math.inf
    text = f"N = floor(exp({extra_samples:g} × {kl_per_step:g})) = {n:,} candidates per step"
    if n < 2:
        return f"{text}: too few; raise 1+eps or Omega so that N ≥ 2"
    if n >= MAX_CANDIDATES:
        return f"{text}: too many; lower 1+eps or Omega so that N < 2^24"
    return text


def sweep_values(parameter: str, start: float, stop: float, count: int) -> list:
    """``count`` values of ``parameter`` (a key of :data:`SWEEPS`) from ``start`` to ``stop``: B and the block size
    as distinct integers (B spaced geometrically), the others evenly."""
    if parameter not in SWEEPS:
        raise ExplorerSettingsError(f"unknown sweep parameter {parameter!r}; choose one of {', '.join(SWEEPS)}")
    if count < 2 or not start < stop:
        raise ExplorerSettingsError("a sweep needs at least 2 values and from < to")
    if SWEEPS[parameter] == "n_beams":
        return sorted({max(1, round(v)) for v in np.geomspace(max(start, 1), stop, count)})
    if SWEEPS[parameter] == "block_size":
        return sorted({max(1, round(v)) for v in np.linspace(start, stop, count)})
    return [float(v) for v in np.linspace(start, stop, count)]


class History:
    """Every press: one row of settings and results per press (:data:`HISTORY_COLUMNS`)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.presses = 0

    def add(self, result, image: str) -> dict:
        self.presses += 1
        p = result.params
        row = {"press": self.presses, "model": result.model, "image": image, "kind": result.kind, "B": p.beams,
               "1+eps": p.extra_samples, "Omega": p.kl_per_step, "N": p.n_candidates, "block": p.block_size,
               "K_b": p.steps_per_block, "sampler": p.sampler, "refine steps": result.refine_steps,
               "bytes": result.n_bytes, "rate": result.rate, "ideal rate": result.ideal_rate, "unit": result.unit,
               "overhead %": result.overhead_percent, "PSNR dB": result.psnr, "MS-SSIM": result.ms_ssim,
               "exact": result.exact, "encode s": result.encode_s, "decode s": result.decode_s}
        self.rows.append(row)
        return row

    def clear(self) -> None:
        self.rows, self.presses = [], 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))

    def to_csv(self) -> str:
        return self.frame().to_csv(index=False)

    def html(self) -> str:
        if not self.rows:
            return "<p><i>no presses yet: every press of encode adds a row here and a point to the plot</i></p>"
        return self.frame().to_html(index=False, float_format=lambda v: f"{v:.4g}", classes="irec-history-table")


def classical_points(image: np.ndarray, codecs, image_name: str) -> list[dict]:
    """Each classical codec setting (:mod:`irec.codecs.classical`, passed in) on ``image``: one row of label, kind,
    rate (bpd for lossless codecs, bpp for lossy ones) and PSNR, for the rate-quality plot's references."""
    from irec import metrics

    height, width = image.shape[:2]
    rows = []
    for codec in codecs:
        trip = codec.roundtrip(image)
        bits = 8.0 * len(trip.data)
        rows.append({"label": f"{codec.label} · {image_name}", "kind": "lossless" if codec.lossless else "lossy",
                     "rate": bits / image.size if codec.lossless else bits / (height * width),
                     "PSNR dB": metrics.psnr(image, trip.decoded)})
    return rows
