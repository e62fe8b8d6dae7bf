"""An interactive explorer of the iREC coder settings: one image, one model, real bits beside the ideal rate.

Paper, section 3 (the coder's parameters: B beams, N = floor(exp((1 + eps) * Omega)) candidates per step, the
sampler) and section 4 (lossless bpd, lossy bpp with PSNR / MS-SSIM); docs/irec-method.md sections 2
and 4 (real files: the bits each level costs against its KL, the ideal rate), as an ipywidgets app.

- :func:`run_once` is the pure logic: code one image with the model's codec (:func:`irec.codecs.make_codec`: the
  lossless RVAE's or the lossy two-level VAE's, both returning an :class:`irec.codecs.encoding.Encoding`), decode
  the file, and return an :class:`ExplorerResult`;
- :func:`build_app` wires ipywidgets controls to it: sliders for B, 1+eps, Omega, the block size and the steps per
  block (adaptive blocks; 0 keeps the block size fixed), a "start from" menu of the named settings of
  :data:`irec.settings.CODER_SETTINGS` (:func:`named_settings`: the paper's, each codec's default, the lossy one
  for low-rate images; ``build_app(..., setting=name)`` starts from one), and a button whose
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import ipywidgets as widgets
import numpy as np
import pandas as pd

from irec import zoo
from irec.codecs import make_codec
from irec.codecs.encoding import HEADER, PIXELS, TAIL
from irec.coder.params import SAMPLERS, CoderParams
from irec.data import decode_image
from irec.evaluation.coding import quality
from irec.settings import CODER_SETTINGS, DEFAULT_REFINEMENT, NO_REFINEMENT
from irec.timing import measure

START_SETTING = "paper-lossy"  # the named setting (irec.settings.CODER_SETTINGS) the sliders start from
START = CODER_SETTINGS[START_SETTING]
RATE_UNITS = {"lossless": "bpd", "lossy": "bpp"}  # each kind's rate: bits per dimension, or per pixel
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
    pixel_bits: float | None  # lossless: real bits of the pixels under p(x | z); None: no pixel stream (lossy)
    pixel_ideal_bits: float | None  # lossless: -log2 p(x | z coded); None: no pixel stream (lossy)
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
            "MS-SSIM dB": self.ms_ssim_db, "encode s": self.encode_s, "decode s": self.decode_s, "exact": self.exact,
            "B": self.params.beams, "1+eps": self.params.extra_samples, "Omega": self.params.kl_per_step,
            "N": self.params.n_candidates, "sampler": self.params.sampler, "refine steps": self.refine_steps,
        }


def named_settings() -> dict[str, CoderParams]:
    """The settings the app can start from, by label (:func:`setting_label`): every one of
    :data:`irec.settings.CODER_SETTINGS`, the paper's, each codec's default and the lossy one for low-rate images."""
    return {setting_label(name): params for name, params in CODER_SETTINGS.items()}


def setting_label(name: str) -> str:
    """A named setting's label in the "start from" menu: its name, then B, 1+eps, Omega and the blocks."""
    if name not in CODER_SETTINGS:
        raise ExplorerSettingsError(f"unknown setting {name!r}; choose one of {', '.join(CODER_SETTINGS)}")
    p = CODER_SETTINGS[name]
    return f"{name}: B {p.n_beams}, 1+eps {p.extra_samples:g}, Omega {p.kl_per_step:g}, blocks of {p.blocks_label}"


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


def _resolve(model_ref: str) -> tuple:
    """:func:`irec.zoo.resolve_model`, cached until the file changes."""
    path = os.path.expanduser(model_ref)
    return _load(model_ref, os.path.getmtime(path) if os.path.isfile(path) else 0.0)


def run_once(model_ref: str | os.PathLike, image: np.ndarray, n_beams: int, extra_samples: float,
             kl_per_step: float, sampler: str = START.sampler, block_size: int = START.block_size,
             seed: int = START.seed, on_stage: Callable[[int, str], None] | None = None,
             steps_per_block: float = START.steps_per_block, refine_steps: int | None = None) -> ExplorerResult:
    """Code ``image`` with the model ``model_ref`` (a path or a zoo name) under these settings; decode it back.

    ``on_stage(i, name)`` is called as each of :data:`STAGES` starts (for a progress bar). ``refine_steps``: lossy
    models only, the encoder's refinement steps of q(z1) (:mod:`irec.codecs.refine`; 0: none; None: the codec's).
    """
    report_stage = on_stage or (lambda i, name: None)
    params = coder_params(n_beams, extra_samples, kl_per_step, sampler, block_size, seed, steps_per_block)
    report_stage(0, STAGES[0])
    codec, info = make_codec(str(model_ref), asdict(params), refine_steps=refine_steps, strict=False,
                             resolve=_resolve)
    name = str(info.get("name", model_ref))
    path = os.path.expanduser(os.fspath(model_ref))
    if info.get("source") == "path" and name == "model":  # a run folder's model.pt: name it by its folder
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    report_stage(1, STAGES[1])
    encoding = codec.encode(image)
    report_stage(2, STAGES[2])
    with measure() as decoder:
        decoded = codec.decompress(encoding.data)
    report_stage(3, STAGES[3])
    shown, unit, levels = quality(image, decoded), RATE_UNITS[codec.kind], encoding.levels
    return ExplorerResult(
        kind=codec.kind, model=name, params=encoding.params, level_names=levels,
        real_bits=tuple(encoding.bits[level] for level in levels),
        ideal_bits=tuple(encoding.ideal_bits[level] for level in levels),
        pixel_bits=encoding.bits.get(PIXELS), pixel_ideal_bits=encoding.ideal_bits.get(PIXELS),
        framing_bits=encoding.bits[HEADER] + encoding.bits[TAIL], n_bytes=encoding.n_bytes,
        rate=getattr(encoding, unit), ideal_rate=getattr(encoding, f"ideal_{unit}"), psnr=shown["psnr"],
        ms_ssim=shown["ms_ssim"], ms_ssim_db=shown["ms_ssim_db"], encode_s=encoding.encode_seconds,
        decode_s=decoder.seconds, exact=bool(np.array_equal(decoded, encoding.image)), reconstruction=decoded,
        error_map=np.abs(decoded.astype(np.float32) - image.astype(np.float32)).mean(axis=2),
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

    def __init__(self, models: dict[str, str], images: dict[str, np.ndarray], setting: str = START_SETTING,
                 refine_steps: int | None = None, **changes) -> None:
        label = setting_label(setting)  # checks the name
        start = CODER_SETTINGS[setting].with_(**{k: v for k, v in changes.items() if v is not None})
        self.models, self.images, self.seed = dict(models), dict(images), start.seed
        self.settings = named_settings()
        self.model = widgets.Dropdown(options=list(self.models), description="model")
        self.image = widgets.Dropdown(options=list(self.images), description="image")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.n_beams = widgets.IntSlider(value=start.n_beams, min=1, max=200, description="B (beams)")
        self.extra_samples = widgets.FloatSlider(value=start.extra_samples, min=0.1, max=3.0, step=0.05,
                                                 description="1+eps")
        self.kl_per_step = widgets.FloatSlider(value=start.kl_per_step, min=0.5, max=10.0, step=0.25,
                                               description="Omega (nats)")
        self.block_size = widgets.IntSlider(value=start.block_size, min=64, max=4096, step=8,
                                            description="block (dims)")
        self.steps_per_block = widgets.FloatSlider(  # adaptive blocks (0: the block size above, fixed)
            value=start.steps_per_block, min=0.0, max=200.0, step=5.0, description="steps/block")
        self.refine_steps = widgets.IntSlider(  # lossy models: the encoder's refinement of q(z1) (0: none, the paper)
            value=DEFAULT_REFINEMENT.steps if refine_steps is None else refine_steps, min=0, max=20,
            description="refine steps")
        self.start_from = widgets.Dropdown(options=["", *self.settings], value=label, description="start from")
        self.sampler = widgets.Dropdown(options=list(EXPLORER_SAMPLERS), value=start.sampler, description="sampler")
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
            self.steps_per_block.value, self.sampler.value = params.steps_per_block, params.sampler
            self.seed = params.seed

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


def build_app(models: dict[str, str], images: dict[str, np.ndarray], setting: str = START_SETTING,
              refine_steps: int | None = None, **changes) -> ExplorerApp:
    """The explorer widget: ``models`` name -> checkpoint path (or zoo name), ``images`` name -> uint8 (H, W, 3).

    The sliders start from ``setting``, a name in :data:`irec.settings.CODER_SETTINGS`, with ``changes`` (fields of
    :class:`irec.coder.CoderParams`, e.g. ``n_beams=2``; None keeps the setting's); ``refine_steps``: the lossy
    encoder's refinement steps at start (None: :data:`irec.settings.DEFAULT_REFINEMENT`'s).
    """
    return ExplorerApp(models, images, setting, refine_steps, **changes)
