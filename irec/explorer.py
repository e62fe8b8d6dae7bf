"""An interactive explorer of the iREC coder settings: one image, one model, real bits beside the ideal rate.

Paper, section 3 (the coder's parameters: B beams, N = floor(exp((1 + eps) * Omega)) candidates per step, the
sampler) and section 4 (lossless bpd, lossy bpp with PSNR / MS-SSIM); docs/irec-method.md sections 2
and 4 (real files: the bits each level costs against its KL, the ideal rate), as an ipywidgets app.

- :func:`run_once` is the pure logic: code one image with the model's codec (:func:`irec.codecs.make_codec`, one
  contract for both kinds, returning an :class:`irec.codecs.encoding.Encoding`), decode the file ONCE, and return
  an :class:`ExplorerResult` whose times are the wall times the user waited for each;
- :func:`sweep` codes one image at each value of one parameter (the paper's sensitivity analysis);
- :func:`build_app` wires ipywidgets controls to them (each with a one-line explanation and the paper's symbol; B on a
  log-like scale): a "start from" menu of :data:`irec.settings.CODER_SETTINGS` that reads "custom" once a slider is
  moved off it, and an encode button whose callback draws the press (:mod:`irec.explorer_figures`: the bits per level,
  the image comparison with a zero-based error map) and adds it to the history (a table and a rate-quality plot, with
  the other models and the classical codecs on the image on demand, cached; clear and CSV export). A failure clears
  the old result; refine steps are disabled for lossless models. Widgets carry CSS classes (``irec-result``,
  ``irec-bits-chart``, ``irec-comparison``, ``irec-history``, ``irec-rate-quality``, ``irec-sweep-*``,
  ``irec-progress``, ``irec-candidates``) so a browser test can find them.
"""

from __future__ import annotations

import functools
import html
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from inspect import signature

import ipywidgets as widgets
import numpy as np
import pandas as pd

from irec import metrics, zoo
from irec.codecs import make_codec
from irec.codecs.classical import make_codecs
from irec.codecs.encoding import HEADER, PIXELS, TAIL
from irec.coder.params import SAMPLERS, CoderParams
from irec.data import decode_image
from irec.evaluation.coding import quality
from irec.explorer_figures import bits_png, comparison_png, summary_html
from irec.explorer_panels import (RED, WIDE, HistoryPanel, SweepPanel, error_html, picture, section, show_png,
                                  with_help)
from irec.explorer_results import (RATE_UNITS, SWEEPS, ExplorerResult, ExplorerSettingsError,  # noqa: F401
                                   candidates_text, classical_points, sweep_values)
from irec.settings import CODER_SETTINGS, DEFAULT_REFINEMENT, NO_REFINEMENT

START_SETTING = "paper-lossy"  # the named setting (irec.settings.CODER_SETTINGS) the sliders start from
START = CODER_SETTINGS[START_SETTING]
EXPLORER_SAMPLERS = tuple(s for s in SAMPLERS if s != "pfr")  # pfr codes standalone latents only
STAGES = ("load model", "encode", "decode", "measure")  # what the progress bar counts


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


def takes_refinement(model_ref: str) -> bool | None:
    """Whether the refine-steps slider applies to the model (lossy: yes; the lossless refinement's many slow steps
    stay off here); None when the model cannot be loaded."""
    try:
        kind = _resolve(str(model_ref))[2]["kind"]
    except (ValueError, OSError, KeyError):
        return None
    return kind == "lossy"


def _codec(model_ref, params: CoderParams, refine_steps: int | None) -> tuple:
    """(codec, display name) for ``model_ref`` with the fields of ``params`` the controls set (others: the codec's)."""
    refine_steps = refine_steps if takes_refinement(model_ref) else None
    overrides = {k: v for k, v in asdict(params).items() if k in signature(coder_params).parameters}
    codec, info = make_codec(str(model_ref), overrides, refine_steps=refine_steps, resolve=_resolve)
    name = str(info.get("name", model_ref))
    if info.get("source") == "path" and name == "model":  # a run folder's model.pt: name it by its folder
        name = os.path.basename(os.path.dirname(os.path.abspath(os.path.expanduser(os.fspath(model_ref)))))
    return codec, name


def _quality(image: np.ndarray, decoded: np.ndarray) -> dict:
    logger = logging.getLogger(metrics.__name__)  # MS-SSIM of a small image is NaN, as the summary shows
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return quality(image, decoded)
    finally:
        logger.setLevel(level)


def run_once(model_ref: str | os.PathLike, image: np.ndarray, n_beams: int, extra_samples: float,
             kl_per_step: float, sampler: str = START.sampler, block_size: int = START.block_size,
             seed: int = START.seed, on_stage: Callable[[int, str], None] | None = None,
             steps_per_block: float = START.steps_per_block, refine_steps: int | None = None) -> ExplorerResult:
    """Code ``image`` with the model ``model_ref`` (a path or a zoo name) under these settings; decode it back once.

    ``on_stage(i, name)`` is called as each of :data:`STAGES` starts (for a progress bar). ``refine_steps``: lossy
    models only, the encoder's refinement steps of q(z1) (:mod:`irec.codecs.refine`; 0: none; None: the codec's)."""
    report_stage = on_stage or (lambda i, name: None)
    params = coder_params(n_beams, extra_samples, kl_per_step, sampler, block_size, seed, steps_per_block)
    report_stage(0, STAGES[0])
    started = time.perf_counter()
    codec, name = _codec(model_ref, params, refine_steps)
    load_s = time.perf_counter() - started
    report_stage(1, STAGES[1])
    started = time.perf_counter()
    encoding = codec.encode(image)
    encode_s = time.perf_counter() - started
    report_stage(2, STAGES[2])
    started = time.perf_counter()
    decoded = codec.decompress(encoding.data)  # the one decode of this press
    decode_s = time.perf_counter() - started
    report_stage(3, STAGES[3])
    started = time.perf_counter()
    shown, unit, levels = _quality(image, decoded), RATE_UNITS[codec.kind], encoding.levels
    error_map = np.abs(decoded.astype(np.float32) - image.astype(np.float32)).mean(axis=2)
    return ExplorerResult(
        kind=codec.kind, model=name, params=encoding.params, level_names=levels,
        real_bits=tuple(encoding.bits[level] for level in levels),
        ideal_bits=tuple(encoding.ideal_bits[level] for level in levels),
        pixel_bits=encoding.bits.get(PIXELS), pixel_ideal_bits=encoding.ideal_bits.get(PIXELS),
        framing_bits=encoding.bits[HEADER] + encoding.bits[TAIL], n_bytes=encoding.n_bytes,
        rate=getattr(encoding, unit), ideal_rate=getattr(encoding, f"ideal_{unit}"), psnr=shown["psnr"],
        ms_ssim=shown["ms_ssim"], ms_ssim_db=shown["ms_ssim_db"], encode_s=encode_s, decode_s=decode_s,
        exact=bool(np.array_equal(decoded, encoding.image)), reconstruction=decoded, error_map=error_map,
        refine_steps=getattr(codec, "refinement", NO_REFINEMENT).steps, load_s=load_s,
        measure_s=time.perf_counter() - started,
    )


def sweep(model_ref: str | os.PathLike, image: np.ndarray, parameter: str, values: Sequence, base: CoderParams,
          refine_steps: int | None = None, on_value: Callable[[int, object], None] | None = None) -> pd.DataFrame:
    """Code ``image`` at each of ``values`` of ``parameter`` (a key of :data:`SWEEPS`), the rest as ``base``: one
    row per value with the rate, the overhead over the ideal, PSNR, the gap between the PSNR of one posterior
    sample and the coded one (models with a ``posterior_sample``, i.e. lossy; NaN otherwise) and the times.
    ``on_value(i, value)`` is called before each value (a progress bar); a value that cannot be coded is skipped
    with its message in the ``error`` column."""
    field_name = SWEEPS[parameter] if parameter in SWEEPS else None
    if field_name is None:
        raise ExplorerSettingsError(f"unknown sweep parameter {parameter!r}; choose one of {', '.join(SWEEPS)}")
    codec, _ = _codec(model_ref, base, refine_steps)
    sample = getattr(codec, "posterior_sample", None)
    sample_psnr = metrics.psnr(image, sample(image)[0]) if sample is not None else math.nan
    rows = []
    for i, value in enumerate(values):
        if on_value is not None:
            on_value(i, value)
        p = asdict(base) | {field_name: value}
        try:
            r = run_once(model_ref, image, p["n_beams"], p["extra_samples"], p["kl_per_step"], p["sampler"],
                         p["block_size"], p["seed"], steps_per_block=p["steps_per_block"], refine_steps=refine_steps)
        except ValueError as err:
            rows.append({"value": value, "error": str(err)})
            continue
        rows.append({"value": value, "rate": r.rate, "ideal rate": r.ideal_rate, "unit": r.unit,
                     "overhead %": r.overhead_percent, "PSNR dB": r.psnr, "gap dB": sample_psnr - r.psnr,
                     "encode s": r.encode_s, "decode s": r.decode_s, "exact": r.exact, "error": ""})
    return pd.DataFrame(rows, columns=["value", "rate", "ideal rate", "unit", "overhead %", "PSNR dB", "gap dB",
                                       "encode s", "decode s", "exact", "error"])


REFERENCE_CODECS = {"lossy": ["jpeg", "webp", "jpeg2000"], "lossless": ["lossless"]}  # irec.codecs.classical
B_SCALE = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)  # B's slider: log-like
NO_MODELS = "no models to explore yet: train one (notebooks 01/02, or irec train) or pass a checkpoint path"


class ExplorerApp(widgets.VBox):
    """The explorer's widgets; :meth:`encode` is the button's callback (call it directly, or press the button);
    :attr:`history` (:class:`irec.explorer_panels.HistoryPanel`) keeps every press, :attr:`sweeper`
    (:class:`irec.explorer_panels.SweepPanel`) sweeps one parameter."""

    def __init__(self, models: dict[str, str], images: dict[str, np.ndarray], setting: str = START_SETTING,
                 refine_steps: int | None = None, export_path: str = "explorer-history.csv", **changes) -> None:
        label = setting_label(setting)  # checks the name
        start = CODER_SETTINGS[setting].with_(**{k: v for k, v in changes.items() if v is not None})
        self.models, self.images, self.seed = dict(models), dict(images), start.seed
        self.settings, self._applying = named_settings(), False
        self.model = widgets.Dropdown(options=list(self.models), description="model", **WIDE)
        self.image = widgets.Dropdown(options=list(self.images), description="image", **WIDE)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.start_from = widgets.Dropdown(options=["custom", *self.settings], value=label,
                                           description="start from", **WIDE)
        self.n_beams = widgets.SelectionSlider(options=B_SCALE, value=1, description="B (beams)", **WIDE)
        self._set_beams(start.n_beams)
        self.extra_samples = widgets.FloatSlider(value=start.extra_samples, min=0.1, max=3.0, step=0.05,
                                                 description="1+ε", **WIDE)
        self.kl_per_step = widgets.FloatSlider(value=start.kl_per_step, min=0.5, max=10.0, step=0.25,
                                               description="Ω (nats per step)", **WIDE)
        self.block_size = widgets.IntSlider(value=start.block_size, min=64, max=4096, step=8,
                                            description="block size (dims)", **WIDE)
        self.steps_per_block = widgets.FloatSlider(value=start.steps_per_block, min=0.0, max=200.0, step=5.0,
                                                   description="K_b (steps per block)", **WIDE)
        self.sampler = widgets.Dropdown(options=list(EXPLORER_SAMPLERS), value=start.sampler, description="sampler",
                                        **WIDE)
        self.refine_steps = widgets.IntSlider(
            value=DEFAULT_REFINEMENT.steps if refine_steps is None else refine_steps, min=0, max=20,
            description="refine steps", **WIDE)
        self.candidates = widgets.HTML().add_class("irec-candidates")
        self.encode_button = widgets.Button(description="encode", button_style="primary").add_class("irec-encode")
        self.progress = widgets.IntProgress(value=0, min=0, max=len(STAGES), description="idle")
        self.progress.add_class("irec-progress")
        self.message = widgets.HTML().add_class("irec-message")
        self.result = widgets.HTML().add_class("irec-result")
        self.bits_chart = picture("irec-bits-chart")
        self.comparison = picture("irec-comparison", max_width="none")
        self.last_result: ExplorerResult | None = None  # what the latest press produced
        self.history, self._references = HistoryPanel(export_path, self.references), {}
        self.sweeper = SweepPanel(self._sweep)
        for slider in (self.extra_samples, self.kl_per_step):
            slider.observe(self._show_candidates, names="value")
        for control in (self.n_beams, self.extra_samples, self.kl_per_step, self.block_size, self.steps_per_block,
                        self.sampler):
            control.observe(self._moved, names="value")
        self.upload.observe(self._add_upload, names="value")
        self.start_from.observe(self._apply_setting, names="value")
        self.model.observe(self._model_changed, names="value")
        self.encode_button.on_click(self.encode)
        controls = widgets.VBox([
            self.model, self.image, self.upload, with_help(self.start_from, "start_from"),
            with_help(self.n_beams, "n_beams"), with_help(self.extra_samples, "extra_samples"),
            with_help(self.kl_per_step, "kl_per_step"), self.candidates, with_help(self.block_size, "block_size"),
            with_help(self.steps_per_block, "steps_per_block"), with_help(self.sampler, "sampler"),
            with_help(self.refine_steps, "refine_steps"), widgets.HBox([self.encode_button, self.progress])])
        summary = widgets.HBox([self.result, self.bits_chart], layout={"align_items": "flex-start"})
        press = widgets.VBox([section("This press"), self.message, summary,
                              widgets.Box([self.comparison], layout={"overflow": "auto", "width": "100%"})])
        press.add_class("irec-press")
        super().__init__([controls.add_class("irec-controls"), press, self.history, self.sweeper])
        self._show_candidates()
        self._moved()
        self._model_changed()
        self._clear_result()
        if not self.models:  # e.g. the cpu profile before its checkpoints are shipped: say so, don't fail
            self.encode_button.disabled = self.sweeper.button.disabled = True
            self._fail(ExplorerSettingsError(NO_MODELS))

    def _set_beams(self, n_beams: int) -> None:
        if n_beams not in self.n_beams.options:
            self.n_beams.options = tuple(sorted({*self.n_beams.options, n_beams}))
        self.n_beams.value = n_beams

    def _show_candidates(self, _change=None) -> None:
        line = candidates_text(self.extra_samples.value, self.kl_per_step.value)
        self.candidates.value = f'<span style="color:{RED if "too " in line else "inherit"}">{html.escape(line)}</span>'

    def _moved(self, _change=None) -> None:
        """A control moved: "start from" reads "custom" unless the controls still match its setting."""
        self.n_beams.disabled = self.sampler.value == "greedy"  # greedy keeps one beam
        p = self.settings.get(self.start_from.value)
        values = (self.n_beams.value, self.extra_samples.value, self.kl_per_step.value, self.block_size.value,
                  self.steps_per_block.value, self.sampler.value)
        if not self._applying and p is not None and values != (
                p.n_beams, p.extra_samples, p.kl_per_step, p.block_size, p.steps_per_block, p.sampler):
            self.start_from.value = "custom"

    def _apply_setting(self, change) -> None:
        """Move the controls to the named setting just chosen (they stay free to move afterwards)."""
        params = self.settings.get(change["new"])
        if params is None:
            return
        self._applying = True
        try:
            self._set_beams(params.n_beams)
            self.extra_samples.value, self.kl_per_step.value = params.extra_samples, params.kl_per_step
            self.block_size.value, self.steps_per_block.value = params.block_size, params.steps_per_block
            self.sampler.value, self.seed = params.sampler, params.seed
        finally:
            self._applying = False

    def _model_changed(self, _change=None) -> None:
        """Refine steps apply to lossy models only: disabled for a model whose codec does not take them."""
        takes = takes_refinement(self.models[self.model.value]) if self.model.value is not None else None
        self.refine_steps.disabled = takes is False

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
        """Say what went wrong, and clear the old result so that it cannot pass for this one."""
        self._clear_result()
        self.message.value = error_html("Cannot encode", err)

    def _clear_result(self) -> None:
        self.result.value, self.last_result = "", None
        show_png(self.bits_chart, None)
        show_png(self.comparison, None)

    def _stage(self, i: int, name: str) -> None:
        self.progress.value, self.progress.description = i, name

    def _chosen(self) -> tuple[str, np.ndarray, CoderParams, int | None]:
        """(model, image, coder settings, refine steps) as the controls say; ExplorerSettingsError if none fits."""
        if not self.models:
            raise ExplorerSettingsError(NO_MODELS)
        original = self.images.get(self.image.value)
        if original is None:
            raise ExplorerSettingsError("no image chosen: pick one, or upload an image file")
        params = coder_params(self.n_beams.value, self.extra_samples.value, self.kl_per_step.value,
                              self.sampler.value, self.block_size.value, self.seed, self.steps_per_block.value)
        refine = None if self.refine_steps.disabled else self.refine_steps.value
        return self.models[self.model.value], original, params, refine

    def encode(self, _button=None) -> ExplorerResult | None:
        """Code the chosen image with the chosen model and settings; draw it and add it to the history."""
        self._clear_result()
        self.message.value, self.progress.bar_style = "", ""
        try:
            model_ref, original, p, refine = self._chosen()
            result = run_once(model_ref, original, p.n_beams, p.extra_samples, p.kl_per_step, p.sampler,
                              block_size=p.block_size, seed=p.seed, on_stage=self._stage,
                              steps_per_block=p.steps_per_block, refine_steps=refine)
        except ValueError as err:  # settings, models and images all report bad input as ValueError subclasses
            self._fail(err)
            self.progress.description, self.progress.bar_style = "failed", "danger"
            return None
        self.result.value = summary_html(result.summary())
        show_png(self.bits_chart, bits_png(result))
        show_png(self.comparison, comparison_png(original, result))
        self.history.add(result, self.image.value)
        self.progress.value, self.progress.description, self.progress.bar_style = len(STAGES), "done", "success"
        self.last_result = result
        return result

    def references(self) -> pd.DataFrame:
        """On the chosen image, cached: every model of the chosen model's kind at these settings (the shipped
        models' curve) and the classical codecs of that kind (:data:`REFERENCE_CODECS`)."""
        model_ref, original, params, refine = self._chosen()
        kind = _resolve(model_ref)[2]["kind"]
        key = (self.image.value, kind, params, refine)
        if key not in self._references:
            rows = classical_points(original, make_codecs(REFERENCE_CODECS[kind]), self.image.value)
            for ref in (r for r in self.models.values() if _resolve(r)[2]["kind"] == kind):
                r = run_once(ref, original, params.n_beams, params.extra_samples, params.kl_per_step, params.sampler,
                             params.block_size, params.seed, steps_per_block=params.steps_per_block,
                             refine_steps=refine)
                rows.append({"label": f"iREC models, these settings · {self.image.value}", "kind": kind,
                             "rate": r.rate, "PSNR dB": r.psnr})
            self._references[key] = pd.DataFrame(rows).sort_values(["label", "rate"])
        return self._references[key]

    def _sweep(self, parameter: str, values: list, on_value) -> pd.DataFrame:
        model_ref, original, params, refine = self._chosen()
        return sweep(model_ref, original, parameter, values, params, refine, on_value=on_value)


def build_app(models: dict[str, str], images: dict[str, np.ndarray], setting: str = START_SETTING,
              refine_steps: int | None = None, **changes) -> ExplorerApp:
    """The explorer widget: ``models`` name -> checkpoint path (or zoo name), ``images`` name -> uint8 (H, W, 3).

    The controls start from ``setting``, a name in :data:`irec.settings.CODER_SETTINGS`, with ``changes`` (fields
    of :class:`irec.coder.CoderParams`, e.g. ``n_beams=2``; None keeps the setting's); ``refine_steps``: the lossy
    encoder's refinement steps at start (None: :data:`irec.settings.DEFAULT_REFINEMENT`'s).
    """
    return ExplorerApp(models, images, setting, refine_steps, **changes)
