"""Tidy result rows: one CSV row per (image, codec setting), written safely, and the tables built from them.

The columns (``SCHEMA``) are documented in ``results/README.md``; every row carries its provenance
(``irec.provenance.stamp()``: git commit, device, timestamp) and the versions of the libraries that made it.
The published lossless numbers (the iREC paper, Flamich et al. 2020, Table 1) are read from
``irec/published/lossless_table.csv`` so that tables show them beside what is measured here, labelled as such.
Averaging convention: per-image values are averaged over images (as CompressAI and the paper's Table 1 do).
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from irec.fileio import atomic_write
from irec.paths import PACKAGE, RESULTS

PUBLISHED_LOSSLESS = PACKAGE / "published" / "lossless_table.csv"

# (column, meaning); results/README.md documents the same columns. Extra keys in a row become extra columns.
SCHEMA: tuple[tuple[str, str], ...] = (
    ("dataset", "dataset name or image folder given to the run"),
    ("split", "dataset split (empty for a folder)"),
    ("image", "image name within the dataset"),
    ("height", "image height in pixels"),
    ("width", "image width in pixels"),
    ("codec", "codec name (irec baselines --list)"),
    ("codec_label", "label for tables and plots; stand-ins say what they stand in for"),
    ("lossless", "True for lossless codecs (decoding checked bit-exact)"),
    ("sweep_param", "name of the parameter swept for the R-D curve (empty for lossless codecs)"),
    ("sweep_value", "its value for this row"),
    ("params", "JSON: every encoder parameter passed"),
    ("n_bytes", "length of the compressed file in bytes"),
    ("bpd", "bits per dimension = 8 n_bytes / (3 H W)"),
    ("bpp", "bits per pixel = 8 n_bytes / (H W)"),
    ("psnr_db", "PSNR in dB of the decoded RGB image, peak 255 (inf when bit-exact)"),
    ("ms_ssim", "5-scale MS-SSIM (pytorch-msssim); NaN for images with a side <= 160"),
    ("ms_ssim_db", "-10 log10(1 - MS-SSIM) (inf when MS-SSIM = 1)"),
    ("encode_s", "wall-clock seconds to encode (one thread)"),
    ("decode_s", "wall-clock seconds to decode"),
    ("bit_exact", "True when the decoded image equals the input exactly"),
    ("library_versions", "JSON: package and C-library versions that coded the file"),
    ("git_commit", "commit of the code that produced the row (+dirty: uncommitted changes)"),
    ("device", "compute device"),
    ("timestamp", "UTC time the row was produced (ISO 8601)"),
)
COLUMNS: tuple[str, ...] = tuple(name for name, _ in SCHEMA)

# Our codec -> the paper's method it is compared with in Table 1 (JPEG XL lossless stands in for FLIF).
PAPER_METHOD = {"png": "PNG", "webp-lossless": "WebP", "jpegxl-lossless": "FLIF"}
MEASURED = "measured here (bpd)"
PUBLISHED = "paper (published, bpd)"


# Names that results files written before a rename still use -> today's. The one place old names are read:
# read_rows applies it through modern_names, and so do the R-D curves of rows given directly.
LEGACY_NAMES = {
    # Omega, named kl_per_block until it became kl_per_step (a column, a swept parameter and a params key)
    "kl_per_block": "kl_per_step", "low_rate_kl_per_block": "low_rate_kl_per_step",
    # iREC lossless rows before they followed SCHEMA (their ``exact``, = bit_exact, is every iREC row's ``exact``)
    "file_bytes": "n_bytes", "label": "codec_label", "elbo_bpd": "negative_elbo_bpd",
    # the R-D curves' former names of the iREC lossy rows' columns
    "psnr_float_db": "psnr_float", "psnr_posterior_db": "sample_psnr", "ms_ssim_posterior_db": "sample_ms_ssim_db",
}


class ResultsFormatError(ValueError):
    """A results CSV that cannot be appended to or summarised."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # repr: full precision, "inf" for infinity
    return str(value)


def _read_header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def write_rows(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Append rows to a CSV file, creating it (and its folder) with a header if needed.

    Columns come in ``SCHEMA`` order, then any extra keys in order of appearance. Appending holds an exclusive
    lock on the file, so concurrent writers do not interleave; rows whose keys are a subset of the existing
    header are appended in place (missing cells empty), and rows with new columns make the file be rewritten
    atomically with the widened header. Returns the path.
    """
    path = Path(path)
    rows = [dict(r) for r in rows]
    if not rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [{k: _cell(v) for k, v in r.items()} for r in rows]
    while True:
        with open(path, "a+", newline="") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_ino != os.stat(path).st_ino:
                continue  # another writer replaced the file while we waited for the lock: lock the new one
            header = _read_header(path) if os.fstat(handle.fileno()).st_size > 0 else []
            if header and set(keys) <= set(header):
                csv.DictWriter(handle, fieldnames=header, restval="").writerows(cells)
            else:
                _rewrite(path, header, keys, cells)
            return path


def _rewrite(path: Path, header: list[str], keys: list[str], cells: list[dict[str, str]]) -> None:
    """Rewrite ``path`` atomically with a header widened to hold ``keys``, old rows first."""
    ordered = [c for c in COLUMNS if c in keys or c in header]
    fieldnames = list(dict.fromkeys([*ordered, *header, *keys]))
    old_rows = []
    if header:
        with open(path, newline="") as f:
            old_rows = list(csv.DictReader(f))
    with atomic_write(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fieldnames, restval="")
        writer.writeheader()
        writer.writerows(old_rows)
        writer.writerows(cells)


def results_path(kind: str, dataset: str, profile: str, results_dir: str | os.PathLike | None = None) -> Path:
    """Where a step's rows go: ``<results_dir>/<kind>/<dataset>.csv``, or ``<dataset>-smoke.csv`` (git-ignored) for
    the smoke profile. ``kind``: ``baselines``, ``lossless`` or ``lossy``; ``dataset``: a name, or an image folder
    (its name is used); ``results_dir``: None or "" for ``irec.paths.RESULTS``."""
    root = RESULTS if results_dir in (None, "") else Path(results_dir)
    stem = Path(str(dataset)).name
    return root / kind / (f"{stem}-smoke.csv" if profile == "smoke" else f"{stem}.csv")


def read_rows(path: str | os.PathLike) -> pd.DataFrame:
    """A results CSV as a DataFrame ("inf" and "nan" cells become floats)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}; run `irec baselines --out {path}` first")
    return modern_names(pd.read_csv(path))


def modern_names(df: pd.DataFrame) -> pd.DataFrame:
    """Columns, swept-parameter names and ``params`` keys renamed from :data:`LEGACY_NAMES` to today's names (a
    column only where today's name is absent, so a file holding both keeps both)."""
    df = df.rename(columns={old: new for old, new in LEGACY_NAMES.items() if new not in df.columns})
    for column in ("varied", "sweep_param"):
        if column in df.columns:
            df[column] = df[column].replace(LEGACY_NAMES)
    if "params" in df.columns:
        df["params"] = [_modern_params_cell(p) for p in df["params"]]
    return df


def _modern_params_cell(cell):
    try:
        params = json.loads(cell)
    except (TypeError, ValueError):
        return cell  # empty, or written before params were JSON
    return json.dumps(modern_params(params), sort_keys=True) if isinstance(params, dict) else cell


def modern_params(params: dict) -> dict:
    """A row's ``params`` with keys renamed from :data:`LEGACY_NAMES` (nested settings too)."""
    return {LEGACY_NAMES.get(k, k): (modern_params(v) if isinstance(v, dict) else v) for k, v in params.items()}


def load_published_lossless() -> pd.DataFrame:
    """The paper's Table 1 (bits per dimension), columns method, variant, cifar10, imagenet32, kodak."""
    return pd.read_csv(PUBLISHED_LOSSLESS, comment="#")


def dataset_key(dataset: str) -> str:
    """The published-table column for a dataset name ("CIFAR-10" -> "cifar10"); a folder gives its name."""
    return Path(str(dataset)).name.lower().replace("-", "").replace("_", "")


def lossless_summary(df: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean bpd per dataset and lossless codec, beside the paper's single-image number for the same method.

    Columns: dataset, codec, codec_label, n_images, all_bit_exact, ``MEASURED``, paper_method, ``PUBLISHED``.
    The published value is empty where the paper has no such method or dataset.
    """
    missing = {"dataset", "codec", "codec_label", "lossless", "bpd", "bit_exact", "image"} - set(df.columns)
    if missing:
        raise ResultsFormatError(f"results table lacks columns {sorted(missing)}; is it a baselines CSV?")
    published = load_published_lossless() if published is None else published
    single = published[published["variant"] == "single_image"].set_index("method")
    lossless = df[df["lossless"].astype(str) == "True"]
    rows = []
    for (dataset, codec, label), group in lossless.groupby(["dataset", "codec", "codec_label"], sort=False):
        method = PAPER_METHOD.get(codec)
        column = dataset_key(dataset)
        paper = math.nan
        if method in single.index and column in single.columns:
            paper = float(single.loc[method, column])
        rows.append({
            "dataset": dataset, "codec": codec, "codec_label": label, "n_images": group["image"].nunique(),
            "all_bit_exact": bool((group["bit_exact"].astype(str) == "True").all()),
            MEASURED: float(group["bpd"].mean()), "paper_method": method or "", PUBLISHED: paper,
        })
    return pd.DataFrame(rows)


def rd_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean rate and quality per dataset, lossy codec and sweep value (one R-D point each), sorted by rate."""
    lossy = df[df["lossless"].astype(str) != "True"]
    if lossy.empty:
        return pd.DataFrame(columns=["dataset", "codec", "codec_label", "sweep_param", "sweep_value", "n_images",
                                     "bpp", "psnr_db", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"])
    keys = ["dataset", "codec", "codec_label", "sweep_param", "sweep_value"]
    table = lossy.groupby(keys, sort=False).agg(
        n_images=("image", "nunique"), bpp=("bpp", "mean"), psnr_db=("psnr_db", "mean"),
        ms_ssim=("ms_ssim", "mean"), ms_ssim_db=("ms_ssim_db", "mean"),
        encode_s=("encode_s", "mean"), decode_s=("decode_s", "mean"),
    ).reset_index()
    return table.sort_values(["dataset", "codec", "bpp"], ignore_index=True)
