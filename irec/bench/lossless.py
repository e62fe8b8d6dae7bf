"""``python -m irec.bench lossless``: real files of the lossless iREC codec against the model's -ELBO and PNG/WebP/JPEG XL.

The lossless codec's benchmark (paper, section 4.1 and Table 1: 4.18 real bpd against a 3.55 bpd -ELBO on
CIFAR-10, a ratio of 1.18; docs/irec-method.md section 4, "Report, per image"). On held-out CIFAR-10 test images (a
seeded subset) every image is compressed to a real file with :class:`irec.codecs.lossless.LosslessCodec`, decoded
again in the same process and compared bit for bit; PNG, WebP lossless and JPEG XL lossless code the same images
in the same run. The printed table gives the mean real bpd split into header / latents / pixels / ANS tail, the
model's -ELBO in bpd (analytic KL + one posterior sample, no free bits), their ratio (of the means, as the paper's
4.18 / 3.55), encode and decode seconds per image and the classical codecs' bpd, with the targets beside them:

- 100% bit-exact round trips (the command exits 1 otherwise);
- real bpd / -ELBO <= 1.10 (the paper: 1.18);
- real bpd below WebP lossless measured in this run;
- encode <= 1 s and decode <= 0.5 s per 32x32 image on a 2-core CPU.

``--kodak N`` codes N Kodak images (full size, or centre crops with ``--kodak-crop``) with the same model.
``--sweep`` instead codes a few images under a grid of B (n_beams), 1+eps (extra_samples), Omega (kl_per_step),
block size and the search's KL floor (ignore_kl_below) and prints real / -ELBO per setting: CIFAR-10 test images by
default, or any dataset's images (``--sweep-dataset bsds500 --sweep-split val --sweep-crop 128``: held-out photos
for the photo model). Rows (one per image and codec, with the coder settings, the model's fingerprint and registry
info, and provenance) go to ``--out`` (sweep: ``<out stem>-sweep.csv``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from irec import provenance
from irec.bench import (
    add_coder_options,
    add_lossless_refinement_options,
    coder_options,
    comma_separated,
    refinement_options,
)
from irec.timing import measure
from irec.codecs.classical import RoundTripError, make_codecs
from irec.codecs.lossless import LosslessCodec
from irec.settings import LOSSLESS_DEFAULT, LOSSLESS_REFINEMENT
from irec.data import centre_crop, load_images
from irec.evaluation.lossless import CODEC_NAME, evaluate_images, setting_label
from irec.evaluation.baselines import dataset_split
from irec.evaluation.results import COLUMNS
from irec.paths import RESULTS
from irec.zoo import resolve_model

log = logging.getLogger(__name__)

CLASSICAL = ("png", "webp-lossless", "jpegxl-lossless")
# The lossless codec's targets (2-core CPU, 32x32 images); the paper's Table 1 for reference.
TARGETS = {"exact_pct": 100.0, "real_over_elbo": 1.10, "encode_s": 1.0, "decode_s": 0.5}
PAPER = {"real_bpd": 4.18, "negative_elbo_bpd": 3.55}
# The default --sweep grid: the paper's lossless and lossy settings, with blocks of 1000 (paper) and 8192 (a whole
# level of the paper's 32-channel model on a 32x32 image); the codec's default came from a finer grid
# (docs/reference-run.md).
SWEEP_GRID = {"n_beams": (10, 20), "extra_samples": (1.0, 1.2), "kl_per_step": (3.0,), "block_size": (1000, 8192)}


def classical_row(codec, image: np.ndarray) -> dict:
    """One classical codec's file size and times (the results schema's names); a decoding that is not bit-exact
    counts as a failure."""
    error = ""
    try:
        trip = codec.roundtrip(image)
        size, encode_s, decode_s, exact = len(trip.data), trip.encode_s, trip.decode_s, True
    except RoundTripError as err:
        size, encode_s, decode_s, exact, error = len(codec.compress(image)), math.nan, math.nan, False, str(err)
    return {"codec": codec.name, "codec_label": codec.label, "lossless": True, "params": codec.params,
            "n_bytes": size, "bpd": 8.0 * size / image.size, "bpp": 24.0 * size / image.size, "encode_s": encode_s,
            "decode_s": decode_s, "bit_exact": exact, "error": error}


def warm_up(codec: LosslessCodec, image: np.ndarray) -> tuple[float, float]:
    """One untimed round trip, so that the per-image times are warm; returns its (cold) encode and decode seconds."""
    encoding = codec.encode(image)
    with measure() as dec:
        codec.decompress(encoding.data)
    return encoding.encode_seconds, dec.seconds


def code_images(dataset: str, images, codec: LosslessCodec, classical, model_columns: dict, *, workers: int = 1,
                source: str | None = None, warm: np.ndarray | None = None, progress: bool = False,
                split: str | None = None) -> list[dict]:
    """Rows for every image: iREC with ``codec``, then each classical codec (in this process). ``workers``: processes
    coding the iREC files (irec.evaluation.parallel; 0: one per available core), each loading the model from
    ``source`` and warming up on ``warm`` first; the rows come in the images' order whatever the count."""
    rows = []
    coded = evaluate_images(codec, images, dataset=dataset, split=dataset_split(dataset, split), workers=workers,
                            model=model_columns.get("model_name"), source=source, warm=warm, progress=progress)
    for i, ((name, image), row) in enumerate(zip(images, coded)):
        base = {"dataset": dataset, "image": name, "height": image.shape[0], "width": image.shape[1],
                "n_subpixels": image.size}
        rows.append({**base, **row, **model_columns})
        log.info("%s %d/%d %s: %.4f bpd (-ELBO %.4f), %.2f s / %.2f s%s", dataset, i + 1, len(images), name,
                 row["bpd"], row["negative_elbo_bpd"], row["encode_s"], row["decode_s"],
                 "" if row["bit_exact"] else "  NOT BIT-EXACT")
        rows.extend({**base, **classical_row(c, image), **model_columns} for c in classical)
    return rows


def summary_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Metric / measured / target rows for one dataset (means over its images)."""
    ours = df[(df.dataset == dataset) & (df.codec == CODEC_NAME)]
    theirs = df[(df.dataset == dataset) & (df.codec != CODEC_NAME)]
    n_exact, n = int(ours.bit_exact.sum()), len(ours)
    real, elbo = ours.bpd.mean(), ours.negative_elbo_bpd.mean()
    webp = theirs[theirs.codec == "webp-lossless"].bpd.mean()
    small = dataset == "cifar10"
    paper_ratio = PAPER["real_bpd"] / PAPER["negative_elbo_bpd"]
    ratio_target = (f"<= {TARGETS['real_over_elbo']:.2f} (paper {PAPER['real_bpd']}/{PAPER['negative_elbo_bpd']}"
                    f" = {paper_ratio:.2f})")
    lines = [
        ("round trips bit-exact", f"{n_exact}/{n} ({100 * n_exact / n:.0f}%)", f"{TARGETS['exact_pct']:.0f}%"),
        ("real bpd", f"{real:.4f}", f"< WebP lossless ({webp:.4f} in this run)" if small else ""),
        ("  header bpd", f"{ours.header_bpd.mean():.4f}", ""),
        ("  latents bpd", f"{ours.latent_bpd.mean():.4f}", f"ideal: KL {ours.kl_bpd.mean():.4f}"),
        ("  pixels bpd", f"{ours.pixel_bpd.mean():.4f}", f"ideal: -log2 p(x|z) {ours.pixel_ideal_bpd.mean():.4f}"),
        ("  ANS tail bpd", f"{ours.tail_bpd.mean():.4f}", ""),
        ("-ELBO bpd", f"{elbo:.4f}", f"paper: {PAPER['negative_elbo_bpd']}" if small else ""),
        ("real / -ELBO", f"{real / elbo:.4f}", ratio_target),
        ("encode s / image", f"{ours.encode_s.mean():.3f}", f"<= {TARGETS['encode_s']:g} s" if small else ""),
        ("decode s / image", f"{ours.decode_s.mean():.3f}", f"<= {TARGETS['decode_s']:g} s" if small else ""),
        ("peak MiB enc / dec", f"{ours.encode_peak_mib.max():.0f} / {ours.decode_peak_mib.max():.0f}", ""),
    ]
    for _, group in theirs.groupby("codec", sort=False):
        verdict = "" if not small else ("iREC beats it" if real < group.bpd.mean() else "iREC does not beat it")
        lines.append((f"{group.codec_label.iloc[0]} bpd", f"{group.bpd.mean():.4f}",
                      f"{int(group.bit_exact.sum())}/{len(group)} exact; {group.encode_s.mean():.4f} s / "
                      f"{group.decode_s.mean():.4f} s; {verdict}".rstrip("; ")))
    return pd.DataFrame(lines, columns=["metric", "measured", "target / note"])


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per coder setting: means over the images, real / -ELBO and whether it meets the target."""
    ours = df[df.codec == CODEC_NAME]
    table = ours.groupby("setting", sort=False).agg(
        n_images=("image", "size"), exact=("bit_exact", "sum"), real_bpd=("bpd", "mean"),
        latent_bpd=("latent_bpd", "mean"), kl_bpd=("kl_bpd", "mean"), pixel_bpd=("pixel_bpd", "mean"),
        negative_elbo_bpd=("negative_elbo_bpd", "mean"), encode_s=("encode_s", "mean"),
        decode_s=("decode_s", "mean"),
    ).reset_index()
    table["real_over_elbo"] = table.real_bpd / table.negative_elbo_bpd
    table["meets_1.10"] = table.real_over_elbo <= TARGETS["real_over_elbo"]
    return table


def _model_columns(fingerprint: str, info: dict) -> dict:
    return {"model_fingerprint": fingerprint, **{f"model_{k}": v for k, v in info.items()
                                                  if isinstance(v, (str, int, float, bool)) and k != "fingerprint"}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m irec.bench lossless", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved RVAE: a name in the model registry or a .pt path")
    parser.add_argument("--images", type=int, default=200, help="CIFAR-10 test images (seeded subset)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subset")
    add_coder_options(parser, LOSSLESS_DEFAULT)
    add_lossless_refinement_options(parser)
    parser.add_argument("--kodak", type=int, default=0, help="also code this many Kodak images (0: none)")
    parser.add_argument("--kodak-crop", type=int, default=0, help="centre-crop Kodak images to this side (0: full)")
    parser.add_argument("--no-classical", action="store_true", help="skip PNG / WebP / JPEG XL")
    parser.add_argument("--sweep", action="store_true", help="code --sweep-images images under a grid of settings")
    parser.add_argument("--sweep-images", type=int, default=4, help="images for --sweep (a seeded subset)")
    parser.add_argument("--sweep-dataset", default="cifar10",
                        help="what --sweep codes: a dataset of irec.data.load_images (cifar10, bsds500, ...)")
    parser.add_argument("--sweep-split", default=None, help="its split (default: the dataset's; bsds500: val)")
    parser.add_argument("--sweep-crop", type=int, default=0,
                        help="centre-crop the --sweep images to this side (0: whole images)")
    parser.add_argument("--sweep-n-beams", type=comma_separated(int), default=SWEEP_GRID["n_beams"],
                        help="comma-separated B")
    parser.add_argument("--sweep-extra-samples", type=comma_separated(float), default=SWEEP_GRID["extra_samples"],
                        help="comma-separated 1+eps")
    parser.add_argument("--sweep-kl-per-step", "--sweep-kl-per-block", type=comma_separated(float), default=SWEEP_GRID["kl_per_step"],
                        help="comma-separated Omega")
    parser.add_argument("--sweep-ignore-kl-below", type=comma_separated(float), default=None, help=(
        "comma-separated --ignore-kl-below values for --sweep (default: --ignore-kl-below's)"))
    parser.add_argument("--sweep-block-size", type=comma_separated(int), default=SWEEP_GRID["block_size"],
                        help="comma-separated block sizes")
    parser.add_argument("--out", default=str(RESULTS / "bench" / "lossless.csv"), help="CSV of per-image rows")
    parser.add_argument("--workers", type=int, default=0, help=(
        "worker processes coding the images, one thread each, each warmed up on the first image (default 0: one "
        "per available core; 1: this process); the files are the same whatever the count (--sweep codes here)"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("images", "sweep_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.kodak < 0 or args.kodak_crop < 0 or args.sweep_crop < 0:
        parser.error("--kodak, --kodak-crop and --sweep-crop must be >= 0")
    if args.workers < 0:
        parser.error("--workers must be >= 0 (0: one per available core)")
    return args


def _write(df: pd.DataFrame, out: Path) -> None:
    """The rows as a results CSV: the schema's columns first (irec.evaluation.results), dicts as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    df = df[[c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]]
    df.map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v).to_csv(out, index=False)


def _show(title: str, table: pd.DataFrame) -> None:
    """Print ``table`` under ``title``, text columns left-aligned."""
    text = table.astype(object).map(lambda v: f"{v:.4f}" if isinstance(v, float) else str(v))
    widths = [max(len(c), *(len(v) for v in text[c])) for c in text.columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(text.columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in text.itertuples(index=False)]
    sys.stdout.write(f"\n{title}\n" + "\n".join(line.rstrip() for line in lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, fingerprint, info = resolve_model(args.model)
    columns = _model_columns(fingerprint, info)
    stamp = provenance.stamp()
    out = Path(args.out)
    base, refinement = coder_options(args, LOSSLESS_DEFAULT), refinement_options(args, LOSSLESS_REFINEMENT)
    model_line = f"model {info.get('name', args.model)} (fingerprint {fingerprint[:16]})"

    if args.sweep:
        images = [(name, centre_crop(image, args.sweep_crop)) for name, image in
                  load_images(args.sweep_dataset, args.sweep_split, limit=args.sweep_images, seed=args.seed)]
        warm_up(LosslessCodec(model, fingerprint, base), images[0][1])
        rows = []
        grid = itertools.product(args.sweep_n_beams, args.sweep_extra_samples, args.sweep_kl_per_step,
                                 args.sweep_block_size, args.sweep_ignore_kl_below or (base.ignore_kl_below,))
        for n_beams, extra, omega, block, floor in grid:
            params = base.with_(n_beams=n_beams, extra_samples=extra, kl_per_step=omega, block_size=block,
                                ignore_kl_below=floor)
            codec = LosslessCodec(model, fingerprint, params, refinement=refinement)
            rows += code_images(args.sweep_dataset, images, codec, [], columns,
                                split=args.sweep_split)
        df = pd.DataFrame([{**stamp, **r} for r in rows])  # the iREC rows' own stamps kept
        _write(df, out.with_name(out.stem + "-sweep.csv"))
        what = " ".join(filter(None, (args.sweep_dataset, dataset_split(args.sweep_dataset, args.sweep_split))))
        crop = f", {args.sweep_crop}-px centre crops" if args.sweep_crop else ""
        _show(f"Sweep on {len(images)} {what} image(s){crop}, {model_line}; target real / -ELBO <= "
              f"{TARGETS['real_over_elbo']:.2f}:", sweep_table(df))
    else:
        codec = LosslessCodec(model, fingerprint, base, refinement=refinement)
        classical = [] if args.no_classical else make_codecs(CLASSICAL)
        images = load_images("cifar10", limit=args.images, seed=args.seed)
        cold = warm_up(codec, images[0][1])
        parallel = {"workers": args.workers, "source": args.model, "warm": images[0][1],
                    "progress": not args.no_progress}
        rows = code_images("cifar10", images, codec, classical, columns, **parallel)
        if args.kodak:
            kodak = [(n, centre_crop(im, args.kodak_crop)) for n, im in load_images("kodak", limit=args.kodak,
                                                                                    seed=args.seed)]
            rows += code_images("kodak", kodak, codec, classical, columns, **{**parallel, "warm": kodak[0][1]})
        df = pd.DataFrame([{**stamp, **r} for r in rows])  # the iREC rows' own stamps kept
        _write(df, out)
        _show(f"CIFAR-10 test, {len(images)} images (seed {args.seed}), {model_line}, {setting_label(base)}; "
              f"times after one warm-up round trip (cold: {cold[0]:.2f} s / {cold[1]:.2f} s):",
              summary_table(df, "cifar10"))
        if args.kodak:
            crop = f"{args.kodak_crop}x{args.kodak_crop} centre crops" if args.kodak_crop else "full size"
            _show(f"Kodak, {args.kodak} images ({crop}), same model and settings:", summary_table(df, "kodak"))
    return finish(df, out.with_name(out.stem + "-sweep.csv") if args.sweep else out)


def finish(df: pd.DataFrame, written: Path) -> int:
    """Say where the rows went (device, commit); the exit status: 1 when a round trip was not bit-exact, else 0."""
    failures = int((~df.bit_exact.astype(bool)).sum())
    sys.stdout.write(f"\nrows written to {written} ({provenance.device_description()}, commit "
                     f"{provenance.git_commit()})\n")
    if failures:
        sys.stdout.write(f"FAILED: {failures} round trip(s) not bit-exact (see the 'error' and 'bit_exact' columns)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
