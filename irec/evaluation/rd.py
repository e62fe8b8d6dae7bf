"""Rate-distortion curves: the published Kodak curves, mean R-D points, and the Bjontegaard delta rate.

The iREC paper (Flamich et al., NeurIPS 2020, Section 5 and Figure 4) compares codecs by PSNR (RGB) and
MS-SSIM in dB (-10 log10(1 - MS-SSIM)) against bits per pixel on Kodak, each point the mean over the 24
images of per-image values. ``irec/published/kodak_rd.csv`` holds the published curves of that figure with
their sources; :func:`load_published_rd` reads it.

BD-rate (G. Bjontegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33, 2001; the
piecewise-cubic variant of VCEG-AL22, 2009, which CompressAI and the JVET tools use): log rate is interpolated
as a function of quality with a monotone piecewise-cubic Hermite interpolant (``method="pchip"``, the
default) or fitted by the original cubic polynomial (``method="cubic"``); the mean log-rate difference over
the overlapping quality range gives the average rate change in percent at equal quality. Negative is better.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from irec.paths import PACKAGE, RESULTS
from irec.evaluation.results import results_path, modern_names, rd_summary, read_rows

log = logging.getLogger(__name__)

PUBLISHED_RD = PACKAGE / "published" / "kodak_rd.csv"
PUBLISHED_SUFFIX = " (published)"  # appended to every published curve's label in tables and plots
BD_METHODS = ("pchip", "cubic")

# Columns an iREC lossy results CSV (results/lossy/kodak*.csv) may hold; absent ones are skipped with a note.
IREC_LOSSY_VALUES = ("bpp", "psnr_db", "psnr_float", "ms_ssim_db", "bpp_ideal", "sample_psnr", "sample_ms_ssim_db")
IREC_LOSSY_KEYS = ("distortion", "model", "beta")  # one point per model; curves join the models of a distortion
DISTORTION_LABELS = {"mse": "MSE", "ms_ssim": "MS-SSIM"}  # how curves name the distortion a model was trained for


class BDRateError(ValueError):
    """Two R-D curves whose BD-rate is undefined (too few points, no overlap, non-positive rates)."""


def load_published_rd() -> pd.DataFrame:
    """The published Kodak curves: columns method, bpp, psnr_rgb, ms_ssim_rgb, ms_ssim_db, source."""
    return pd.read_csv(PUBLISHED_RD, comment="#")


def published_curves(published: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """One DataFrame per published method (sorted by rate), keyed by its label with ``PUBLISHED_SUFFIX``.

    ``psnr_rgb`` is renamed ``psnr_db`` so that published and measured curves share column names.
    """
    published = load_published_rd() if published is None else published
    published = published.rename(columns={"psnr_rgb": "psnr_db"})
    return {f"{method}{PUBLISHED_SUFFIX}": group.sort_values("bpp", ignore_index=True)
            for method, group in published.groupby("method", sort=False)}


def classical_curves(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Mean R-D point per lossy codec setting (``irec.evaluation.results.rd_summary``), one curve per codec label."""
    table = rd_summary(rows)
    return {label: group.reset_index(drop=True) for label, group in table.groupby("codec_label", sort=False)}


def mean_points(rows: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean over images of each value column per group of ``keys``, with ``n_images``; sorted by the first value.

    Columns of ``keys`` or ``values`` that ``rows`` lacks are skipped with a logged note, so partial result
    files (e.g. an iREC run without posterior-sample metrics) still give the curves they can.
    """
    present_keys = [k for k in keys if k in rows.columns]
    present_values = [v for v in values if v in rows.columns]
    missing = [c for c in (*keys, *values) if c not in rows.columns]
    if missing:
        log.info("results lack columns %s; those curves are skipped", missing)
    if not present_values:
        return pd.DataFrame(columns=[*present_keys, "n_images"])
    count = ("image", "nunique") if "image" in rows.columns else (present_values[0], "size")
    aggregations = {"n_images": count, **{v: (v, "mean") for v in present_values}}
    if present_keys:
        table = rows.groupby(present_keys, sort=False, dropna=False).agg(**aggregations).reset_index()
    else:
        table = pd.DataFrame([{name: getattr(rows[col], how)() for name, (col, how) in aggregations.items()}])
    return table.sort_values(present_values[0], ignore_index=True)


def irec_lossy_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean R-D point per iREC model and beta from iREC lossy rows (:mod:`irec.evaluation.lossy`; columns
    ``IREC_LOSSY_VALUES``, older names read through ``irec.evaluation.results.modern_names``)."""
    return mean_points(modern_names(rows), IREC_LOSSY_KEYS, IREC_LOSSY_VALUES)


def irec_curves(points: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """iREC curves by label from :func:`irec_lossy_points`: real file bits, and the ideal curve (KL rate
    ``bpp_ideal`` with a posterior sample's quality) where those columns exist; empty for None.

    One curve joins the models trained for one distortion (one model per rate, e.g. ``lossy-mse-<beta>``); results
    without a ``distortion`` column give one curve per ``model`` value."""
    if points is None or points.empty:
        return {}
    points, curves = modern_names(points), {}
    by = "distortion" if "distortion" in points.columns else "model" if "model" in points.columns else None
    for key, group in points.groupby(by, sort=False) if by else [("", points)]:
        name = f"iREC {DISTORTION_LABELS.get(key, key)} models" if by == "distortion" else f"iREC {key}".strip()
        group = group.sort_values("bpp")
        curves[f"{name} (real file bits)"] = group.reset_index(drop=True)
        if "bpp_ideal" in group.columns:
            ideal = group.drop(columns=["bpp", "psnr_db", "ms_ssim_db"], errors="ignore").rename(columns={
                "bpp_ideal": "bpp", "sample_psnr": "psnr_db", "sample_ms_ssim_db": "ms_ssim_db"})
            curves[f"{name} (ideal: KL rate, posterior sample)"] = ideal.sort_values("bpp").reset_index(drop=True)
    return curves


def _sorted_curve(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(rate, dtype=float)
    quality = np.asarray(quality, dtype=float)
    if rate.shape != quality.shape or rate.ndim != 1:
        raise BDRateError(f"{name} curve: rate and quality must be 1-D sequences of the same length")
    keep = np.isfinite(rate) & np.isfinite(quality)
    rate, quality = rate[keep], quality[keep]
    if (rate <= 0).any():
        raise BDRateError(f"{name} curve: rates must be positive to take their logarithm")
    order = np.argsort(quality)
    rate, quality = rate[order], quality[order]
    if len(quality) < 2 or np.any(np.diff(quality) <= 0):
        raise BDRateError(f"{name} curve: needs at least two points with distinct finite qualities")
    return rate, quality


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean of the curve y(x) over [lo, hi], interpolated by ``method``."""
    if method == "pchip":
        integral = PchipInterpolator(x, y).integrate(lo, hi)
    elif method == "cubic":
        if len(x) < 4:
            raise BDRateError("the cubic Bjontegaard fit needs at least four points per curve; use method='pchip'")
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        integral = np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo)
    else:
        raise BDRateError(f"unknown BD method {method!r}; choose one of {', '.join(BD_METHODS)}")
    return float(integral) / (hi - lo)


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if not lo < hi:
        raise BDRateError(f"the two curves' {what} ranges do not overlap ([{a.min():g}, {a.max():g}] and "
                          f"[{b.min():g}, {b.max():g}]); BD values need a common range")
    return lo, hi


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], method: str = "pchip") -> float:
    """Average rate change of the test curve against the anchor at equal quality, in percent (negative: better).

    Log rate is interpolated over quality (``method``: "pchip" piecewise cubic, or "cubic" polynomial fit) and
    averaged over the overlapping quality range of the two curves.
    """
    a_rate, a_quality = _sorted_curve(anchor_rate, anchor_quality, "anchor")
    t_rate, t_quality = _sorted_curve(test_rate, test_quality, "test")
    lo, hi = _overlap(a_quality, t_quality, "quality")
    difference = (_mean_over(t_quality, np.log(t_rate), lo, hi, method)
                  - _mean_over(a_quality, np.log(a_rate), lo, hi, method))
    return float(np.expm1(difference) * 100.0)


def bd_quality(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
               test_quality: Sequence[float], method: str = "pchip") -> float:
    """Average quality change (e.g. BD-PSNR in dB) of the test curve at equal rate, over the common log-rate range."""
    a_rate, a_quality = _sorted_curve(anchor_rate, anchor_quality, "anchor")
    t_rate, t_quality = _sorted_curve(test_rate, test_quality, "test")
    a_order, t_order = np.argsort(a_rate), np.argsort(t_rate)
    a_log, t_log = np.log(a_rate[a_order]), np.log(t_rate[t_order])
    if np.any(np.diff(a_log) <= 0) or np.any(np.diff(t_log) <= 0):
        raise BDRateError("BD quality needs distinct rates along each curve")
    lo, hi = _overlap(a_log, t_log, "log-rate")
    return (_mean_over(t_log, t_quality[t_order], lo, hi, method)
            - _mean_over(a_log, a_quality[a_order], lo, hi, method))


def bd_rate_table(curves: dict[str, pd.DataFrame], anchor: str, quality: str = "psnr_db",
                  rate: str = "bpp", method: str = "pchip") -> pd.DataFrame:
    """BD-rate (%) and BD-quality of every curve against ``anchor``; curves without a common range are noted."""
    if anchor not in curves:
        raise BDRateError(f"no anchor curve named {anchor!r}; the curves are: {', '.join(curves)}")
    base = curves[anchor]
    rows = []
    for name, curve in curves.items():
        if name == anchor or quality not in curve.columns or quality not in base.columns:
            continue
        row = {"curve": name, "anchor": anchor, "quality": quality, "method": method}
        try:
            row["bd_rate_percent"] = bd_rate(base[rate], base[quality], curve[rate], curve[quality], method)
            row["bd_quality"] = bd_quality(base[rate], base[quality], curve[rate], curve[quality], method)
            row["note"] = ""
        except BDRateError as err:
            row.update(bd_rate_percent=np.nan, bd_quality=np.nan, note=str(err))
        rows.append(row)
    return pd.DataFrame(rows, columns=["curve", "anchor", "quality", "method", "bd_rate_percent", "bd_quality",
                                       "note"])


def read_irec_lossy(results_dir: str | Path = "", dataset: str = "kodak", profile: str = "cpu") -> pd.DataFrame | None:
    """The rows of the profile's iREC lossy results file (:func:`irec.evaluation.results.results_path`), or None
    when there is none yet (the iREC lossy step has not run)."""
    path = results_path("lossy", dataset, profile, results_dir)
    if not path.is_file():
        log.info("no iREC lossy results at %s; iREC curves are skipped", path)
        return None
    return read_rows(path)
