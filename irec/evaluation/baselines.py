"""Classical-codec baselines over a dataset, and the ``irec baselines`` command.

Reproduces the classical rows of the iREC paper (Flamich et al., NeurIPS 2020): Table 1 (lossless PNG, WebP,
FLIF -> JPEG XL lossless stand-in; bits per dimension, each image coded on its own) and the classical curves of
Figure 4 (lossy Kodak: JPEG 4:2:0, BPG 4:4:4 -> HEIF/HEVC 4:4:4 stand-in, plus WebP, JPEG 2000, AVIF, JPEG XL).
Every image is coded into a real file with the codecs of :mod:`irec.codecs.classical`, decoded back and checked;
each (image, codec setting) gives one tidy row (schema in ``results/README.md``) written by
:func:`irec.evaluation.results.write_rows` as soon as the image is done, so an interrupted run keeps its rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irec import metrics
from irec.codecs.classical import FAMILIES, GROUPS, ClassicalCodec, make_codecs
from irec.paths import RESULTS
from irec.provenance import stamp
from irec.evaluation.results import results_path, lossless_summary, read_rows, write_rows

log = logging.getLogger(__name__)


class ProfileError(ValueError):
    """An unknown profile name."""


@dataclass(frozen=True)
class BaselineProfile:
    """How much of a dataset and which codecs a baselines run covers."""

    name: str  # preset name: smoke / cpu / paper
    limit: int | None  # images per dataset (None: all); a seeded subset when smaller than the dataset
    codecs: tuple[str, ...]  # codec families or groups (irec baselines --list)


PROFILES: dict[str, BaselineProfile] = {
    # seconds: two images, two fast lossless codecs and the JPEG sweep
    "smoke": BaselineProfile("smoke", limit=2, codecs=("png", "jpegxl-lossless", "jpeg")),
    # minutes on 2 CPU cores: all 24 Kodak images (or a 2,000-image CIFAR-10 subset), every codec
    "cpu": BaselineProfile("cpu", limit=2000, codecs=("all",)),
    # the paper's full test sets (10,000 CIFAR-10 test images), every codec
    "paper": BaselineProfile("paper", limit=None, codecs=("all",)),
}


def profile_settings(profile: str, limit: int | None = None, codecs: Sequence[str] | None = None) -> BaselineProfile:
    """The named profile, with ``limit`` and ``codecs`` overriding its own when given (not None / not empty)."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    base = PROFILES[profile]
    return BaselineProfile(
        name=base.name,
        limit=base.limit if limit is None else int(limit),
        codecs=tuple(codecs) if codecs else base.codecs,
    )


# The datasets a suite run covers per profile, with the codecs used on each (None: the profile's own codecs).
# The lossy sweeps run on Kodak only (the paper's R-D plots); CIFAR-10 takes the lossless codecs (Table 1).
SUITE_DATASETS: dict[str, tuple[tuple[str, tuple[str, ...] | None], ...]] = {
    "smoke": (("kodak", None), ("cifar10", ("png", "jpegxl-lossless"))),
    "cpu": (("kodak", None), ("cifar10", ("lossless",))),
    "paper": (("kodak", None), ("cifar10", ("lossless",))),
}


@dataclass(frozen=True)
class BaselineRun:
    """One dataset of a baselines run: what to code and where the rows go."""

    dataset: str  # dataset name or image folder
    limit: int | None  # images (a seeded subset when smaller than the dataset); None: all
    codecs: tuple[str, ...]  # codec families or groups
    out_csv: str  # CSV path relative to irec.paths.RESULTS


def suite_runs(profile: str, dataset: str = "", limit: int | None = None, codecs: Sequence[str] | None = None,
               out_csv: str = "") -> list[BaselineRun]:
    """The runs of notebook 03: every dataset of the profile (``dataset`` empty) or just ``dataset``."""
    settings = profile_settings(profile, limit=limit, codecs=codecs)
    if dataset:
        return [BaselineRun(dataset, settings.limit, settings.codecs, out_csv or _relative(results_path("baselines", dataset, profile)))]
    return [
        BaselineRun(name, settings.limit, tuple(codecs) if codecs else (own or settings.codecs),
                    _relative(results_path("baselines", name, profile)))
        for name, own in SUITE_DATASETS[settings.name]
    ]


def _relative(path: Path) -> str:
    """A path under ``irec.paths.RESULTS`` as the relative string a :class:`BaselineRun` holds."""
    return str(path.relative_to(RESULTS))


def codec_table() -> pd.DataFrame:
    """One row per codec family: name, kind, label, swept parameter and values, and what the sweep means."""
    return pd.DataFrame([
        {"codec": f.name, "kind": "lossless" if f.lossless else "lossy", "label": f.label,
         "sweep": "" if f.sweep_param is None else f"{f.sweep_param} in {list(f.sweep)}", "note": f.note}
        for f in FAMILIES.values()
    ])


def evaluate(codec: ClassicalCodec, image: np.ndarray) -> dict[str, Any]:
    """Code one image with one codec setting: sizes, rates, distortion and timings (no provenance)."""
    trip = codec.roundtrip(image)  # raises if a lossless codec does not give the pixels back exactly
    height, width = image.shape[:2]
    n_bytes = len(trip.data)
    ms_ssim = metrics.ms_ssim(image, trip.decoded)
    return {
        "height": height, "width": width,
        "codec": codec.name, "codec_label": codec.label, "lossless": codec.lossless,
        "sweep_param": codec.sweep_param, "sweep_value": codec.sweep_value, "params": codec.params,
        "n_bytes": n_bytes,
        "bpd": metrics.bits_per_dim(n_bytes, image.shape),
        "bpp": metrics.bits_per_pixel(n_bytes, height, width),
        "psnr_db": metrics.psnr(image, trip.decoded),
        "ms_ssim": ms_ssim, "ms_ssim_db": metrics.ms_ssim_db(ms_ssim),
        "encode_s": trip.encode_s, "decode_s": trip.decode_s,
        "bit_exact": bool(np.array_equal(image, trip.decoded)),
        "library_versions": codec.library_versions(),
    }


# The datasets load_images always reads one split of (their registry's first when none is named); the other
# named datasets with splits (bsds500) read every image when none is named.
DEFAULT_SPLIT_DATASETS = ("cifar10", "imagenet32", "clic")


def dataset_split(dataset: str, split: str | None) -> str:
    """The split :func:`irec.data.load_images` reads for ``split`` (None: the dataset's default, e.g. "test" for
    CIFAR-10, as it resolves it), for the rows; "" where there is no split: Kodak, an image folder, or a folder
    dataset read whole (bsds500 without a split)."""
    from irec.data import REGISTRY

    if split:
        return split
    info = REGISTRY.get(dataset)
    if info is None or not info.splits or dataset not in DEFAULT_SPLIT_DATASETS:
        return ""
    return info.splits[0]


def _code_image(codecs: Sequence[ClassicalCodec], item: tuple) -> list[dict[str, Any]]:
    """One job of :func:`run_baselines`: every codec setting on one image (module-level for the worker processes)."""
    name, image, dataset, split = item
    with _one_torch_thread():
        return [{"dataset": dataset, "split": split, "image": name, **evaluate(codec, image), **stamp()}
                for codec in codecs]


def _lossless_bpd(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The progress bar's running means: bpd of each lossless codec."""
    return {row["codec"]: row["bpd"] for row in rows if row["lossless"]}


def run_baselines(
    images: Sequence[tuple[str, np.ndarray]],
    codecs: Sequence[ClassicalCodec],
    *,
    dataset: str,
    split: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    workers: int | None = 1,
) -> pd.DataFrame:
    """Code every image with every codec setting; append the rows to ``out`` (if given) image by image, in the
    images' order. ``split``: the rows' split (:func:`dataset_split` resolves a default); ``workers``: processes
    coding images (:mod:`irec.evaluation.parallel`; 0: one per available core; 1: in this process); the rows are
    the same whatever the count (timings and stamps apart)."""
    from irec.evaluation.parallel import imap_ordered, ready

    if not codecs:
        raise ValueError("no codecs to run; pass at least one codec name (irec baselines --list)")
    split = dataset_split(str(dataset), split)
    rows: list[dict[str, Any]] = []
    jobs = [(0, (name, image, dataset, split)) for name, image in images]
    for image_rows in imap_ordered(_code_image, jobs, [ready(list(codecs))], workers=workers, local=[codecs],
                                   desc=f"baselines {Path(str(dataset)).name}", progress=progress,
                                   means=_lossless_bpd):
        if out is not None:
            write_rows(out, image_rows)
        rows.extend(image_rows)
    return pd.DataFrame(rows)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run MS-SSIM (torch) on one thread, as the encoders, then restore torch's thread count.

    A run then takes one core; on a loaded machine torch's intra-op threads made each MS-SSIM several times slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_dataset(
    dataset: str,
    codec_names: Sequence[str],
    *,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
    workers: int | None = 1,
) -> pd.DataFrame:
    """Load a dataset (name or image folder) with :func:`irec.data.load_images` and run :func:`run_baselines`
    (``workers``: its worker processes; 0: one per available core)."""
    from irec.data import load_images

    codecs = make_codecs(codec_names)  # resolve names first: a typo fails before any image is loaded
    images = load_images(dataset, split=split, limit=limit, seed=seed)
    log.info("%d images of %s, %d codec settings -> %s", len(images), dataset, len(codecs), out)
    return run_baselines(images, codecs, dataset=dataset, split=split, out=out, progress=progress,
                         workers=workers)


def _split_names(values: Sequence[str]) -> list[str]:
    return [name for value in values for name in value.split(",") if name.strip()]


def _command(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write(codec_table().to_string(index=False) + "\n")
        sys.stdout.write(f"groups: {json.dumps({k: list(v) for k, v in GROUPS.items()})}\n")
        return 0
    if args.dataset is None or args.out is None:
        raise ValueError("irec baselines needs --dataset and --out (or --list to see the codecs)")
    run_dataset(args.dataset, _split_names(args.codecs or ["all"]), split=args.split, limit=args.limit,
                seed=args.seed, out=args.out, progress=not args.no_progress, workers=args.workers)
    summary = lossless_summary(read_rows(args.out))
    if not summary.empty:
        sys.stdout.write(summary.to_string(index=False) + "\n")
    sys.stdout.write(f"rows appended to {args.out}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``irec baselines`` to the command line."""
    parser = subparsers.add_parser(
        "baselines",
        help="code a dataset with classical codecs (PNG, WebP, JPEG XL, JPEG 2000, JPEG, AVIF, HEIF)",
        description="Code every image of a dataset with classical codecs, decode it back and check it, and "
        "append one CSV row per (image, codec setting): bytes, bpd/bpp, PSNR, MS-SSIM, timings, provenance.",
    )
    parser.add_argument("--dataset", help="dataset name (kodak, cifar10, ...) or a folder of images")
    parser.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    parser.add_argument("--codecs", action="append", default=None, metavar="LIST",
                        help="comma-separated codec names or groups (lossless, lossy, all); default: all")
    parser.add_argument("--out", type=Path, help="CSV file to append the rows to (created if missing)")
    parser.add_argument("--limit", type=int, default=None, help="code a seeded subset of N images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes coding images (default 0: one per available core; 1: this process)")
    parser.add_argument("--list", action="store_true", help="list the codecs and their sweeps, then exit")
    parser.set_defaults(func=_command)
