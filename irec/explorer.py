"""An interactive explorer of the iREC coder settings: one image, one model, real bits beside the ideal rate.

Paper, section 3 (the coder's parameters: B beams, N = floor(exp((1 + eps) * Omega)) candidates per step, the
sampler) and section 4 (lossless bpd, lossy bpp with PSNR / MS-SSIM); docs/irec-method.md sections 2
and 4 (real files: the bits each level costs against its KL, the ideal rate). Issue 6 asks for an ipywidgets app.

- :func:`run_once` is the pure logic: code one image with the model's codec (lossless RVAE or lossy two-level
  VAE, chosen by the model's kind), decode the file, and return an :class:`ExplorerResult`;
- :func:`build_app` wires ipywidgets controls to it: sliders for B, 1+eps, Omega, the block size and the steps per
  block (adaptive blocks; 0 keeps the block size fixed), a "start from" menu of named settings
  (:func:`named_settings`: the paper's and each codec's default), and a button whose
  callback fills an HTML table and a figure (reconstruction and error map), with a progress bar. Result widgets
  carry CSS classes (``irec-result``, ``irec-figure``, ``irec-progress``, ``irec-candidates``) so a browser test
  can find them.
"""

from __future__ import annotations

import functools
import html
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import pandas as pd

from irec import metrics, zoo
from irec.coder.params import SAMPLERS, CoderParams
from irec.settings import (
    DEFAULT_REFINEMENT, LOSSLESS_DEFAULT, LOSSY_DEFAULT, LOSSY_LOW_RATE, NO_REFINEMENT, PAPER_LOSSLESS, PAPER_LOSSY,
    with_steps,
)
from irec.data import decode_image

EXPLORER_SAMPLERS = tuple(s for s in SAMPLERS if s != "pfr")  # pfr codes standalone latents only
STAGES = ("load model", "encode", "decode", "measure")  # what the progress bar counts
MAX_CANDIDATES = 2**24  # N must be below this (irec.coder.params)


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
    pixel_bits: float  # lossless: real bits of the pixels under p(x | z); lossy: 0 (no pixel stream)
    pixel_ideal_bits: float  # lossless: -log2 p(x | z coded); lossy: 0
    framing_bits: float  # header, crc and the entropy coder's final flush
    n_bytes: int  # size of the file
    rate: float  # real rate: bpd (lossless) or bpp (lossy)
    ideal_rate: float  # (sum of ideal_bits + pixel_ideal_bits) in the same unit
    psnr: float  # dB of the decoded uint8 image (inf when exact)
    ms_ssim: float  # five-scale MS-SSIM (NaN for images with a side of 160 pixels or less)
    ms_ssim_db: float  # -10 log10(1 - MS-SSIM)
    encode_s: float  # wall time of the encoder
    decode_s: float  # wall time of the decoder
    exact: bool  # the decoder rebuilt what the encoder meant (lossless: the image itself)
    reconstruction: np.ndarray = field(repr=False)  # the decoded uint8 (H, W, 3) image
    error_map: np.ndarray = field(repr=False)  # |decoded - original| per pixel, mean over channels, 0-255 float
    refine_steps: int = 0  # lossy: the encoder's refinement steps of q(z1) (irec.codecs.refine); lossless: 0

    @property
    def unit(self) -> str:
        return "bpd" if self.kind == "lossless" else "bpp"

    @property
    def total_bits(self) -> float:
        return 8.0 * self.n_bytes

    @property
    def overhead_percent(self) -> float:
        """How much larger the file is than the ideal rate, in percent."""
        ideal = sum(self.ideal_bits) + self.pixel_ideal_bits
        return 100.0 * (self.total_bits - ideal) / ideal if ideal > 0 else math.inf  # ideal 0: no latent to code

    def bits_table(self) -> pd.DataFrame:
        """One row per part of the file: real bits, ideal bits and the overhead of each."""
        rows = [(name, real, ideal) for name, real, ideal in zip(self.level_names, self.real_bits, self.ideal_bits)]
        if self.kind == "lossless":
            rows.append(("pixels", self.pixel_bits, self.pixel_ideal_bits))
        ideal = sum(self.ideal_bits) + self.pixel_ideal_bits
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
            "MS-SSIM dB": self.ms_ssim_db, "encode s": self.encode_s, "decode s": self.decode_s, "exact": self.exact,
            "B": self.params.beams, "1+eps": self.params.extra_samples, "Omega": self.params.kl_per_step,
            "N": self.params.n_candidates, "sampler": self.params.sampler, "refine steps": self.refine_steps,
        }


def named_settings() -> dict[str, CoderParams]:
    """The settings the app can start from, by label: the paper's (Section 4), each of our codecs' default, and the
    lossy codec's setting for low-rate images."""
    from irec.codecs import lossless, lossy

    named = {"paper, lossless": PAPER_LOSSLESS, "paper, lossy": PAPER_LOSSY,
             "irec lossless default": LOSSLESS_DEFAULT, "irec lossy default": LOSSY_DEFAULT,
             "irec lossy low-rate images": LOSSY_LOW_RATE}
    return {
        f"{name}: B {p.n_beams}, 1+eps {p.extra_samples:g}, Omega {p.kl_per_step:g}, blocks of {p.blocks_label}": p
        for name, p in named.items()
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


def coder_params(n_beams: int, extra_samples: float, kl_per_step: float, sampler: str, block_size: int,
                 seed: int, steps_per_block: float = 0.0) -> CoderParams:
    """Validated coder settings; ExplorerSettingsError with a message naming the problem otherwise."""
    if sampler not in EXPLORER_SAMPLERS:
        raise ExplorerSettingsError(f"unknown sampler {sampler!r}; choose one of {', '.join(EXPLORER_SAMPLERS)}")
    line = candidates_text(extra_samples, kl_per_step)
    if "too " in line:
        raise ExplorerSettingsError(line)
    try:
        return CoderParams(kl_per_step=kl_per_step, n_beams=n_beams, extra_samples=extra_samples,
                           block_size=block_size, seed=seed, sampler=sampler, steps_per_block=steps_per_block)
    except ValueError as err:
        raise ExplorerSettingsError(str(err)) from err


@functools.lru_cache(maxsize=4)
def _load(model_ref: str, modified: float) -> tuple:
    """(model, fingerprint, info), cached per path and modification time."""
    return zoo.resolve_model(model_ref)


def run_once(model_ref: str | os.PathLike, image: np.ndarray, n_beams: int, extra_samples: float,
             kl_per_step: float, sampler: str = "beam", block_size: int = 1000, seed: int = 42,
             on_stage: Callable[[int, str], None] | None = None, steps_per_block: float = 0.0,
             refine_steps: int | None = None) -> ExplorerResult:
    """Code ``image`` with the model ``model_ref`` (a path or a zoo name) under these settings; decode it back.

    ``on_stage(i, name)`` is called as each of :data:`STAGES` starts (for a progress bar). ``refine_steps``: lossy
    models only, the encoder's refinement steps of q(z1) (:mod:`irec.codecs.refine`; 0: none; None: the codec's).
    """
    report_stage = on_stage or (lambda i, name: None)
    params = coder_params(n_beams, extra_samples, kl_per_step, sampler, block_size, seed, steps_per_block)
    report_stage(0, STAGES[0])
    path = os.path.expanduser(os.fspath(model_ref))
    model, fingerprint, info = _load(str(model_ref), os.path.getmtime(path) if os.path.isfile(path) else 0.0)
    name = str(info.get("name", model_ref))
    if info.get("source") == "path" and name == "model":  # a run folder's model.pt: name it by its folder
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    height, width = image.shape[:2]
    report_stage(1, STAGES[1])
    if info.get("kind") == "lossless":
        from irec.codecs.lossless import LosslessCodec

        codec = LosslessCodec(model, fingerprint, params)
        data, report = codec.compress_with_report(image)
        report_stage(2, STAGES[2])
        start = time.perf_counter()
        decoded = codec.decompress(data)
        decode_s = time.perf_counter() - start
        levels = tuple(f"level {i}" for i in range(len(report.latent_bits)))
        real, ideal = report.latent_bits, report.kl_bits
        pixel_bits, pixel_ideal = report.pixel_bits, report.pixel_ideal_bits
        framing = report.header_bits + report.stream_tail_bits
        encode_s, exact, rate = report.encode_seconds, bool(np.array_equal(decoded, image)), report.bpd
        ideal_rate = report.ideal_bpd
    else:
        from irec.codecs.lossy import LEVELS, LossyCodec
        codec = LossyCodec(model.cpu().float(), fingerprint, params, refinement=with_steps(refine_steps))
        start = time.perf_counter()
        encoding = codec.encode(image)
        encode_s = time.perf_counter() - start
        report_stage(2, STAGES[2])
        start = time.perf_counter()
        decoded = codec.decompress(encoding.data)
        report = codec.report(image, encoding, decoded, encode_s, time.perf_counter() - start)
        data, pixels = encoding.data, height * width
        levels = LEVELS
        real = tuple(report[f"bpp_{level}"] * pixels for level in LEVELS)
        ideal = tuple(report[f"bpp_ideal_{level}"] * pixels for level in LEVELS)
        pixel_bits = pixel_ideal = 0.0
        framing = report["bpp_header"] * pixels
        encode_s, decode_s, exact = report["encode_s"], report["decode_s"], report["exact"]
        rate, ideal_rate = report["bpp"], report["bpp_ideal"]
    report_stage(3, STAGES[3])
    ms_ssim = metrics.ms_ssim(image, decoded)
    return ExplorerResult(
        kind=str(info.get("kind")), model=name, params=params, level_names=tuple(levels), real_bits=tuple(real),
        ideal_bits=tuple(ideal), pixel_bits=pixel_bits, pixel_ideal_bits=pixel_ideal, framing_bits=framing,
        n_bytes=len(data), rate=rate, ideal_rate=ideal_rate, psnr=metrics.psnr(image, decoded), ms_ssim=ms_ssim,
        ms_ssim_db=metrics.ms_ssim_db(ms_ssim), encode_s=encode_s, decode_s=decode_s, exact=exact,
        reconstruction=decoded, error_map=np.abs(decoded.astype(np.float32) - image.astype(np.float32)).mean(axis=2),
        refine_steps=getattr(codec, "refinement", NO_REFINEMENT).steps,
    )


def result_html(result: ExplorerResult) -> str:
    """The result as two HTML tables: headline figures, then bits per part."""
    summary = pd.DataFrame([result.summary()]).T.rename(columns={0: "value"})
    return (summary.to_html(float_format=lambda v: f"{v:.4g}", classes="irec-summary")
            + result.bits_table().to_html(index=False, float_format=lambda v: f"{v:,.1f}", classes="irec-bits"))


def result_png(original: np.ndarray, result: ExplorerResult) -> bytes:
    """A PNG of the original, the reconstruction and the error map side by side."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.4), layout="constrained")
    axes = figure.subplots(1, 3)
    axes[0].imshow(original, interpolation="nearest")
    axes[0].set_title("original")
    axes[1].imshow(result.reconstruction, interpolation="nearest")
    axes[1].set_title(f"reconstruction, {result.rate:.3f} {result.unit}")
    shown = axes[2].imshow(result.error_map, cmap="magma", vmin=0, interpolation="nearest")
    axes[2].set_title("|error|, mean over RGB (0-255)")
    figure.colorbar(shown, ax=axes[2])
    for ax in axes:
        ax.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


NO_MODELS = "no models to explore yet: train one (notebooks 01/02, or irec train) or pass a checkpoint path"


class ExplorerApp(widgets.VBox):
    """The explorer's widgets; :meth:`encode` is the button's callback (call it directly, or press the button)."""

    def __init__(self, models: dict[str, str], images: dict[str, np.ndarray], block_size: int = 1000,
                 seed: int = 42) -> None:
        self.models, self.images, self.seed = dict(models), dict(images), seed
        self.settings = named_settings()
        self.model = widgets.Dropdown(options=list(self.models), description="model")
        self.image = widgets.Dropdown(options=list(self.images), description="image")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.n_beams = widgets.IntSlider(value=10, min=1, max=200, description="B (beams)")
        self.extra_samples = widgets.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.05, description="1+eps")
        self.kl_per_step = widgets.FloatSlider(value=3.0, min=0.5, max=10.0, step=0.25, description="Omega (nats)")
        self.block_size = widgets.IntSlider(value=block_size, min=64, max=4096, step=8, description="block (dims)")
        self.steps_per_block = widgets.FloatSlider(  # adaptive blocks (0: the block size above, fixed)
            value=0.0, min=0.0, max=200.0, step=5.0, description="steps/block")
        self.refine_steps = widgets.IntSlider(  # lossy models: the encoder's refinement of q(z1) (0: none, the paper)
            value=DEFAULT_REFINEMENT.steps, min=0, max=20, description="refine steps")
        self.start_from = widgets.Dropdown(options=["", *self.settings], value="", description="start from")
        self.sampler = widgets.Dropdown(options=list(EXPLORER_SAMPLERS), value="beam", description="sampler")
        self.candidates = widgets.HTML().add_class("irec-candidates")
        self.encode_button = widgets.Button(description="encode", button_style="primary").add_class("irec-encode")
        self.progress = widgets.IntProgress(value=0, min=0, max=len(STAGES), description="idle")
        self.progress.add_class("irec-progress")
        self.message = widgets.HTML().add_class("irec-message")
        self.result = widgets.HTML().add_class("irec-result")
        self.figure = widgets.Image(format="png").add_class("irec-figure")
        self.last_result: ExplorerResult | None = None  # what the latest press produced
        for slider in (self.extra_samples, self.kl_per_step):
            slider.observe(self._show_candidates, names="value")
        self.upload.observe(self._add_upload, names="value")
        self.start_from.observe(self._apply_setting, names="value")
        self.encode_button.on_click(self.encode)
        self._show_candidates()
        controls = widgets.VBox([self.model, self.image, self.upload, self.start_from, self.n_beams,
                                 self.extra_samples, self.kl_per_step, self.candidates, self.block_size,
                                 self.steps_per_block, self.sampler, self.refine_steps,
                                 widgets.HBox([self.encode_button, self.progress])])
        super().__init__([controls, self.message, self.result, self.figure])
        if not self.models:  # e.g. the cpu profile before its checkpoints are shipped: say so, don't fail
            self.encode_button.disabled = True
            self._fail(ExplorerSettingsError(NO_MODELS))

    def _show_candidates(self, _change=None) -> None:
        line = candidates_text(self.extra_samples.value, self.kl_per_step.value)
        colour = "#b00020" if "too " in line else "inherit"
        self.candidates.value = f'<span style="color:{colour}">{html.escape(line)}</span>'

    def _apply_setting(self, change) -> None:
        """Move the sliders to the named setting just chosen (the sliders stay free to move afterwards)."""
        params = self.settings.get(change["new"])
        if params is not None:
            self.n_beams.value, self.extra_samples.value = params.n_beams, params.extra_samples
            self.kl_per_step.value, self.block_size.value = params.kl_per_step, params.block_size
            self.steps_per_block.value = params.steps_per_block

    def _add_upload(self, change) -> None:
        for item in change["new"]:
            name = f"upload: {item['name']}"
            try:
                self.images[name] = decode_image(bytes(item["content"]), name=item["name"])
            except ValueError as err:
                self._fail(err)
                return
            self.image.options = list(self.images)
            self.image.value = name

    def _fail(self, err: Exception) -> None:
        self.message.value = f'<p style="color:#b00020"><b>Cannot encode:</b> {html.escape(str(err))}</p>'

    def _stage(self, i: int, name: str) -> None:
        self.progress.value, self.progress.description = i, name

    def encode(self, _button=None) -> ExplorerResult | None:
        """Code the chosen image with the chosen model and settings; fill the result widgets (or the message)."""
        self.message.value, self.progress.bar_style = "", ""
        original = self.images.get(self.image.value)
        try:
            if not self.models:
                raise ExplorerSettingsError(NO_MODELS)
            if original is None:
                raise ExplorerSettingsError("no image chosen: pick one, or upload an image file")
            result = run_once(self.models[self.model.value], original, self.n_beams.value, self.extra_samples.value,
                              self.kl_per_step.value, self.sampler.value, block_size=self.block_size.value,
                              seed=self.seed, on_stage=self._stage, steps_per_block=self.steps_per_block.value,
                              refine_steps=self.refine_steps.value)
        except ValueError as err:  # settings, models and images all report bad input as ValueError subclasses
            self._fail(err)
            self.progress.description, self.progress.bar_style = "failed", "danger"
            return None
        self.result.value = result_html(result)
        self.figure.value = result_png(original, result)
        self.progress.value, self.progress.description, self.progress.bar_style = len(STAGES), "done", "success"
        self.last_result = result
        return result


def build_app(models: dict[str, str], images: dict[str, np.ndarray], block_size: int = 1000,
              seed: int = 42) -> ExplorerApp:
    """The explorer widget: ``models`` name -> checkpoint path (or zoo name), ``images`` name -> uint8 (H, W, 3)."""
    return ExplorerApp(models, images, block_size=block_size, seed=seed)
