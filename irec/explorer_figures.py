"""The explorer's pictures: matplotlib figures as PNG bytes, and the summary as an HTML table.

Pure functions of :class:`irec.explorer_results.ExplorerResult` (read by attribute, so this module needs nothing of the
codecs) and of plain tables: :func:`bits_png` (real against ideal bits per level), :func:`comparison_png` (the
original, the reconstruction and an error map whose scale starts at zero; "bit-exact" for an exact result),
:func:`rate_quality_png` (each press of :class:`irec.explorer_results.History` a point: PSNR against bpp for lossy
models, bpd for lossless ones; other codecs dashed) and :func:`sweep_png` (one parameter swept: the overhead over
the ideal, the gap to a posterior sample and the encode time).
"""

from __future__ import annotations

import html
import io
import math

import numpy as np
import pandas as pd

MIN_PANEL_PX = 256  # small images (CIFAR-10's 32 x 32) are enlarged, pixel for pixel, to at least this
DPI = 100


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def bits_png(result) -> bytes:
    """A bar chart: the real bits of each latent level (and, lossless, of the pixels) beside its ideal bits."""
    names, real, ideal = list(result.level_names), list(result.real_bits), list(result.ideal_bits)
    if result.pixel_bits is not None:
        names, real, ideal = names + ["pixels"], real + [result.pixel_bits], ideal + [result.pixel_ideal_bits]
    figure = _figure(max(5.5, 1.1 * len(names) + 3.5), 3.2)
    ax = figure.subplots()
    x = np.arange(len(names))
    ideal_label = "ideal: KL (pixels: -log2 p)" if result.pixel_bits is not None else "ideal: KL"
    ax.bar(x - 0.2, ideal, 0.4, label=ideal_label, color="#9ecae1")
    ax.bar(x + 0.2, real, 0.4, label="real bits in the file", color="#08519c")
    for i, (r, q) in enumerate(zip(real, ideal)):
        if q > 0:
            ax.annotate(f"{100 * (r - q) / q:+.1f}%", (i + 0.2, r), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names)
    positive = [v for v in real + ideal if v > 0]
    if positive and max(positive) > 50 * min(positive):  # e.g. the pixels beside small latent levels
        ax.set_yscale("log")
    ax.set_ylabel("bits")
    ax.set_title(f"real against ideal bits per level\n{result.overhead_percent:+.1f}% over the ideal in all, "
                 f"{result.framing_bits:.0f} bits of framing", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.margins(y=0.2)
    return _png(figure)


def error_scale(result) -> tuple[float, float] | None:
    """The error map's colour scale, from 0 to at least 1 (0-255 units); None for a bit-exact result (no map)."""
    error = np.asarray(result.error_map)
    return None if result.exact and not error.any() else (0.0, max(1.0, float(error.max())))


def comparison_png(original: np.ndarray, result) -> bytes:
    """Original, reconstruction and |error| side by side at full resolution (small images enlarged to
    :data:`MIN_PANEL_PX`); the error's colour scale starts at 0; an exact result says "bit-exact" instead."""
    height, width = original.shape[:2]
    scale = max(1.0, MIN_PANEL_PX / max(height, width))
    panel_w, panel_h = width * scale / DPI, height * scale / DPI
    figure = _figure(3 * panel_w + 1.2, panel_h + 0.5)
    axes = figure.subplots(1, 3)
    axes[0].imshow(original, interpolation="nearest")
    axes[0].set_title("original", fontsize=10)
    axes[1].imshow(result.reconstruction, interpolation="nearest")
    axes[1].set_title(f"decoded, {result.rate:.3f} {result.unit}", fontsize=10)
    error, scale = np.asarray(result.error_map), error_scale(result)
    if scale is None:
        axes[2].text(0.5, 0.5, "bit-exact\nevery pixel equal\nto the original", ha="center", va="center",
                     fontsize=12, transform=axes[2].transAxes)
        axes[2].set_title("|error|: none", fontsize=10)
    else:
        shown = axes[2].imshow(error, cmap="magma", vmin=scale[0], vmax=scale[1], interpolation="nearest")
        axes[2].set_title(f"|error|, mean over RGB (0-255), max {error.max():.0f}", fontsize=10)
        figure.colorbar(shown, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    return _png(figure)


def rate_quality_png(frame: pd.DataFrame, references: pd.DataFrame | None = None) -> bytes | None:
    """Each press a numbered point: PSNR against bpp (lossy), bpd real and ideal per press (lossless); None if
    there are no presses. ``references`` (columns label, kind, rate, PSNR dB): other codecs on the same image, a
    dashed curve per label (lossy) or a dashed level per label (lossless)."""
    if frame.empty:
        return None
    from matplotlib.ticker import MaxNLocator

    kinds = [k for k in ("lossy", "lossless") if (frame["kind"] == k).any()]
    figure = _figure(5.2 * len(kinds), 3.6)
    axes = np.atleast_1d(figure.subplots(1, len(kinds)))
    for ax, kind in zip(axes, kinds):
        rows = frame[frame["kind"] == kind]
        for (model, image), group in rows.groupby(["model", "image"], sort=False):
            if kind == "lossy":
                line = ax.plot(group["rate"], group["PSNR dB"], "o", label=f"{model} · {image}")[0]
                ax.plot(group["ideal rate"], group["PSNR dB"], "o", mfc="none", color=line.get_color())
                xs, ys = group["rate"], group["PSNR dB"]
            else:
                line = ax.plot(group["press"], group["rate"], "o", label=f"{model} · {image}")[0]
                ax.plot(group["press"], group["ideal rate"], "o", mfc="none", color=line.get_color())
                xs, ys = group["press"], group["rate"]
            for press, x, y in zip(group["press"], xs, ys):
                ax.annotate(f"#{press}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        shown = references[references["kind"] == kind] if references is not None else pd.DataFrame()
        for i, (label, group) in enumerate(shown.groupby("label", sort=False) if len(shown) else ()):
            style = {"ls": "--", "lw": 1, "alpha": 0.7, "label": label, "color": f"C{(i + 3) % 10}"}
            if kind == "lossy":
                ax.plot(group["rate"], group["PSNR dB"], marker=".", **style)
            else:
                ax.axhline(float(group["rate"].min()), **style)
        if kind == "lossy":
            ax.set_xlabel("bits per pixel (filled: real; hollow: the same press's ideal rate)")
            ax.set_ylabel("PSNR (dB)")
            ax.set_title("lossy presses: rate against quality", fontsize=10)
        else:
            ax.set_xlabel("press")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(rows["press"].min() - 0.5, rows["press"].max() + 0.5)
            ax.set_ylabel("bpd (filled: real; hollow: ideal)")
            exact = "every one bit-exact" if rows["exact"].all() else "NOT every one exact"
            ax.set_title(f"lossless presses: bpd ({exact})", fontsize=10)
        ax.ticklabel_format(useOffset=False, axis="y")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _png(figure)


def sweep_png(frame: pd.DataFrame, parameter: str) -> bytes:
    """One parameter swept: the overhead over the ideal (%), the PSNR gap to a posterior sample (lossy; dB) and
    the encode time (s) against the parameter's value."""
    panels = [("overhead %", "overhead over the ideal (%)")]
    if "gap dB" in frame and frame["gap dB"].notna().any():
        panels.append(("gap dB", "PSNR gap to a posterior sample (dB)"))
    panels.append(("encode s", "encode time (s)"))
    figure = _figure(4.0 * len(panels), 3.2)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for ax, (column, label) in zip(axes, panels):
        ax.plot(frame["value"], frame[column], "o-")
        ax.set_xlabel(parameter)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if parameter.startswith("B") and frame["value"].max() > 4 * max(frame["value"].min(), 1):
            ax.set_xscale("log")
    figure.suptitle(f"sweep of {parameter}", fontsize=10)
    return _png(figure)


def summary_html(summary: dict) -> str:
    """The headline figures as one compact table (class ``irec-summary``): name -> value."""
    def shown(value) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.4g}"
        return str(value)

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(shown(v))}</td></tr>"
                   for k, v in summary.items())
    return f'<table class="irec-summary"><tbody>{rows}</tbody></table>'
