"""Rate-distortion figures on Kodak, like the iREC paper's Figure 4, and the coder-overhead sweep figure.

Flamich et al., NeurIPS 2020, Section 5 / Figure 4: PSNR (RGB, dB) and MS-SSIM in dB (-10 log10(1 - MS-SSIM))
against bits per pixel, each point the mean over the Kodak images. Line styles: curves measured here are solid
(iREC's real file bits too), iREC's ideal curves (KL rate, posterior sample) dashed, published curves dotted
with the label suffix " (published)". The overhead figure shows what Section 3's parameters cost: real bits
over KL and the PSNR gap against Omega (``kl_per_step``), 1+eps (``extra_samples``) and B (``n_beams``).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``, no pyplot state), so they
render headless on the Agg/PDF/SVG canvases; :func:`save_figure` writes PNG, PDF and SVG to ``figures/``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from irec.paths import FIGURES, RESULTS
from irec.evaluation.results import read_rows
from irec.evaluation.rd import PUBLISHED_SUFFIX, mean_points

log = logging.getLogger(__name__)

FORMATS = ("png", "pdf", "svg")
# Figures are committed, so a re-run that changes no number must write the same bytes: no creation dates in
# the PDF and SVG metadata, and SVG ids (clip paths, glyphs) hashed with a fixed salt instead of a random uuid.
# PNG (Agg) writes no date, only the "Software" key, which is deterministic.
METADATA = {"png": {}, "pdf": {"CreationDate": None, "ModDate": None}, "svg": {"Date": None}}
SVG_HASH_SALT = "irec"
QUALITY_AXES = (("psnr_db", "PSNR (RGB) [dB]"), ("ms_ssim_db", "MS-SSIM (RGB) [dB]"))
RATE_LABEL = "rate [bits per pixel]"
SWEEP_PARAMETERS = (("kl_per_step", "Ω: KL per step [nats]"), ("extra_samples", "1+ε: extra_samples"),
                    ("n_beams", "B: n_beams"), ("block_size", "block size [dimensions]"))
SWEEP_METRICS = (("real_over_kl", "real bits / KL"), ("psnr_gap_db", "PSNR gap to posterior sample [dB]"))
# Curves of one family share a colour (measured, stand-in and published); others take the next free colour.
FAMILIES = (("irec ms-ssim", "darkmagenta"), ("irec", "C3"), ("bpg", "C0"), ("heif", "C0"), ("jpeg 4:2:0", "C1"),
            ("balle", "C2"), ("minnen", "C4"), ("webp", "C5"), ("jpeg 2000", "C6"), ("avif", "C8"), ("jpeg xl", "C9"))
SPARE_COLOURS = ("C7", "tab:olive", "tab:cyan", "black", "navy", "maroon")


def _colour(label: str, taken: dict[str, str]) -> str:
    for key, colour in FAMILIES:
        if key in label.lower():
            return colour
    if label not in taken:
        taken[label] = SPARE_COLOURS[len(taken) % len(SPARE_COLOURS)]
    return taken[label]


def save_figure(fig: Figure, stem: str, figures_dir: str | Path = "") -> list[Path]:
    """Write ``<figures_dir>/<stem>.{png,pdf,svg}`` (``irec.paths.FIGURES`` when empty); returns the paths.

    The bytes depend only on the figure (:data:`METADATA`, :data:`SVG_HASH_SALT`): saving the same figure again,
    or a re-run that draws the same numbers, leaves the committed files unchanged.
    """
    folder = Path(figures_dir) if str(figures_dir) else FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{fmt}" for fmt in FORMATS]
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        for path, fmt in zip(paths, FORMATS):
            fig.savefig(path, dpi=150, bbox_inches="tight", metadata=METADATA[fmt])
    return paths


def rd_figure(classical: dict[str, pd.DataFrame], published: dict[str, pd.DataFrame],
              irec: dict[str, pd.DataFrame] | None = None, dataset: str = "Kodak", max_bpp: float = 2.0) -> Figure:
    """PSNR and MS-SSIM (dB) against bpp: measured codecs solid, iREC ideal dashed, published dotted.

    ``classical`` and ``published`` map labels to curves with columns bpp, psnr_db, ms_ssim_db (as
    :func:`irec.evaluation.rd.classical_curves` and :func:`irec.evaluation.rd.published_curves` give); ``irec`` the iREC curves of
    :func:`irec.evaluation.rd.irec_curves` (labels with "ideal" are dashed), or None when iREC has not been run. Points above
    ``max_bpp`` are left out (the paper's figure stops near 1 bpp).
    """
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    taken: dict[str, str] = {}
    curves: list[tuple[str, pd.DataFrame, str, str]] = []  # label, points, line style, marker
    curves += [(label, points, "-", "o") for label, points in classical.items()]
    for label, points in (irec or {}).items():
        curves.append((label, points, "--", "^") if "ideal" in label else (label, points, "-", "s"))
    for label, points in published.items():
        suffixed = label if label.endswith(PUBLISHED_SUFFIX) else label + PUBLISHED_SUFFIX
        curves.append((suffixed, points, ":", "."))
    for ax, (quality, axis_label) in zip(axes, QUALITY_AXES):
        for label, points, style, marker in curves:
            if quality not in points.columns or "bpp" not in points.columns:
                log.info("curve %r has no bpp/%s columns; skipped on the %s plot", label, quality, quality)
                continue
            data = points[["bpp", quality]].dropna().sort_values("bpp")
            data = data[(data[quality].abs() != math.inf) & (data["bpp"] <= max_bpp)]
            if data.empty:
                continue
            ax.plot(data["bpp"], data[quality], linestyle=style, marker=marker, markersize=4, label=label,
                    color=_colour(label, taken), linewidth=2.0 if label.startswith("iREC") else 1.4)
        ax.set_xlabel(RATE_LABEL)
        ax.set_ylabel(axis_label)
        ax.set_xlim(0, max_bpp)
        ax.grid(alpha=0.3)
        ax.set_title(f"{dataset}: {axis_label.split(' [')[0]} vs rate")
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(*axes[1].get_legend_handles_labels()) if lab not in labels]
    handles += [h for h, _ in extra]
    labels += [lab for _, lab in extra]
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    fig.suptitle(f"{dataset} (mean over images): measured here (solid), iREC ideal (dashed), published (dotted)")
    return fig


def per_image_figure(rows: pd.DataFrame, dataset: str = "Kodak", columns: int = 6, max_bpp: float = 2.0) -> Figure:
    """Small multiples: PSNR (RGB) against bpp for each image and each lossy codec measured here."""
    lossy = rows[rows["lossless"].astype(str) != "True"]
    if lossy.empty:
        raise ValueError("no lossy rows to plot per image; run the lossy baselines (irec baselines --codecs lossy)")
    images = sorted(lossy["image"].unique())
    n_rows = math.ceil(len(images) / columns)
    n_cols = min(columns, len(images))
    fig = Figure(figsize=(2.4 * n_cols, 2.0 * n_rows + 1.0), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharex=True, squeeze=False)
    taken: dict[str, str] = {}
    for ax, image in zip(axes.flat, images):
        for label, group in lossy[lossy["image"] == image].groupby("codec_label", sort=True):
            data = group.sort_values("bpp")
            data = data[data["bpp"] <= max_bpp]
            ax.plot(data["bpp"], data["psnr_db"], "-", marker=".", markersize=3, linewidth=1.0, label=label,
                    color=_colour(label, taken))
        ax.set_title(image, fontsize="small")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize="x-small")
    for ax in axes.flat[len(images):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("bpp", fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel("PSNR [dB]", fontsize="small")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize="small", frameon=False)
    fig.suptitle(f"{dataset}: PSNR (RGB) vs rate per image, codecs measured here")
    return fig


def read_sweep(results_dir: str | Path = "") -> pd.DataFrame | None:
    """``<results_dir>/bench/sweep.csv`` (``python -m irec.bench sweep``), or None (logged) when it has not been run."""
    path = (Path(results_dir) if str(results_dir) else RESULTS) / "bench" / "sweep.csv"
    if not path.is_file():
        log.info("no coder sweep at %s; the overhead figure is skipped", path)
        return None
    return read_rows(path)


def overhead_figure(sweep: pd.DataFrame, parameters: Sequence[tuple[str, str]] = SWEEP_PARAMETERS) -> Figure:
    """Coding overhead (real bits / KL, PSNR gap) against Omega, 1+eps, B and the block size, means over the images.

    With a ``varied`` column (one parameter moved at a time, ``irec.bench.sweep``) each panel takes the rows that
    moved its parameter and the base rows; without it, each point is the mean over all other swept settings."""
    present = [(name, label) for name, label in parameters if name in sweep.columns]
    metrics = [(name, label) for name, label in SWEEP_METRICS if name in sweep.columns]
    if not present or not metrics:
        raise ValueError(f"the sweep needs one of the columns {[n for n, _ in parameters]} and one of "
                         f"{[n for n, _ in SWEEP_METRICS]}; it has {list(sweep.columns)}")
    fig = Figure(figsize=(3.6 * len(present), 2.9 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), len(present), squeeze=False)
    for j, (parameter, parameter_label) in enumerate(present):
        rows = sweep[sweep["varied"].isin([parameter, "base"])] if "varied" in sweep.columns else sweep
        points = mean_points(rows, [parameter], [m for m, _ in metrics]).sort_values(parameter)
        for i, (metric, metric_label) in enumerate(metrics):
            ax = axes[i, j]
            ax.plot(points[parameter], points[metric], "-o", color="C3", markersize=4)
            ax.set_xlabel(parameter_label)
            ax.set_ylabel(metric_label)
            ax.grid(alpha=0.3)
            if parameter in ("n_beams", "block_size") and points[parameter].max() > 8 * max(points[parameter].min(), 1):
                ax.set_xscale("log", base=2)
    others = "the others at the base setting" if "varied" in sweep.columns else "mean over the other swept settings"
    fig.suptitle(f"iREC coding overhead against its parameters ({others})")
    return fig
