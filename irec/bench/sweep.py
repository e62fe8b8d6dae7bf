"""``python -m irec.bench sweep``: the coding overhead of lossy iREC against Omega, 1+eps, B and the block size.

iREC paper, section 3 (the coder's parameters: Omega nats per step, N = exp((1+eps) Omega) candidates, B beams)
and docs/irec-method.md section 2. One lossy model codes centre crops of a few images into real files
while one parameter at a time moves away from the paper's lossy setting (B=10, 1+eps=1.0, Omega=3 nats, blocks
of 1,000 dimensions); every other parameter stays at that base. Per image and setting it records the real rate
over the KL (``real_over_kl``, file bits over the ideal rate) and the PSNR of the decoded image minus that of a
posterior sample (``psnr_gap_db``), with encode and decode seconds and the exact-decode check. The rows
(``varied`` names the moved parameter, ``base`` marks the base setting) go to ``results/bench/sweep.csv``, which
notebook 07 plots with :func:`irec.evaluation.plotting.overhead_figure`. It measures the coder alone, so the encoder codes
the model's own posterior (``NO_REFINEMENT``, as the paper), not the refined one (:mod:`irec.codecs.refine`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from irec import provenance
from irec.bench import comma_separated
from irec.codecs.lossy import LossyCodec
from irec.coder import CoderParams
from irec.settings import LOSSY_FINAL, LOSSY_FINALS, NO_REFINEMENT, PAPER_LOSSY
from irec.data import centre_crop, load_images
from irec.evaluation.lossy import evaluate_image
from irec.paths import RESULTS
from irec.zoo import resolve_model

log = logging.getLogger(__name__)

# Values tried for each parameter, the others held at PAPER_LOSSY.
GRID = {"n_beams": (1, 2, 5, 10, 20), "extra_samples": (1.0, 1.1, 1.2, 1.5), "kl_per_step": (1.5, 2.0, 3.0, 4.0, 5.0),
        "block_size": (128, 256, 384, 1000)}
BASE = "base"


def settings(base: CoderParams, grid: dict[str, tuple]) -> list[tuple[str, CoderParams]]:
    """(varied parameter, params) pairs: the base once, then each value of each parameter that differs from it."""
    out = [(BASE, base)]
    for name, values in grid.items():
        out += [(name, base.with_(**{name: value})) for value in values if value != getattr(base, name)]
    return out


def sweep_rows(model, fingerprint: str, images, grid: dict[str, tuple], final: str, model_name: str,
               dataset: str, progress: bool = True) -> pd.DataFrame:
    """One row per (setting, image): irec.evaluation.lossy's row plus the parameters, real_over_kl and psnr_gap_db."""
    rows = []
    pairs = settings(PAPER_LOSSY, grid)
    for varied, params in tqdm(pairs, desc="settings", disable=not progress):
        codec = LossyCodec(model, fingerprint, params, final=final, refinement=NO_REFINEMENT)
        for name, image in images:
            row = evaluate_image(codec, name, image, dataset=dataset, model=model_name)
            rows.append({**row, "varied": varied, "n_beams": params.n_beams, "extra_samples": params.extra_samples,
                         "kl_per_step": params.kl_per_step, "n_candidates": params.n_candidates,
                         "block_size": params.block_size,
                         "real_over_kl": row["bpp"] / row["bpp_ideal"],
                         "psnr_gap_db": row["psnr_db"] - row["sample_psnr"]})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irec.bench sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a lossy model: a name (irec info) or a saved-model path")
    parser.add_argument("--images", type=int, default=4, help="images of the dataset (seeded subset)")
    parser.add_argument("--dataset", default="kodak", help="dataset name or image folder (default kodak)")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crops coded (0: whole images)")
    parser.add_argument("--final", default=LOSSY_FINAL, choices=LOSSY_FINALS, help=(
        "how the coded sample is chosen (best-q: the paper's and notebook 05's; beams never beat it on Kodak, see "
        "irec.codecs.lossy)"))
    parser.add_argument("--n-beams", type=comma_separated(int), default=GRID["n_beams"], help="comma-separated B")
    parser.add_argument("--extra-samples", type=comma_separated(float), default=GRID["extra_samples"],
                        help="comma-separated 1+eps")
    parser.add_argument("--kl-per-step", "--kl-per-block", type=comma_separated(float), default=GRID["kl_per_step"],
                        help="comma-separated Omega (nats)")
    parser.add_argument("--block-size", type=comma_separated(int), default=GRID["block_size"],
                        help="comma-separated block sizes (latent dimensions per block)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench" / "sweep.csv", help="CSV to write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    model, fingerprint, info = resolve_model(args.model)
    images = [(name, centre_crop(image, args.crop)) for name, image in load_images(args.dataset, limit=args.images)]
    grid = {"n_beams": args.n_beams, "extra_samples": args.extra_samples, "kl_per_step": args.kl_per_step,
            "block_size": args.block_size}
    rows = sweep_rows(model, fingerprint, images, grid, args.final, info["name"], args.dataset,
                      progress=not args.no_progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)

    table = (rows.groupby(["varied", "n_beams", "extra_samples", "kl_per_step", "n_candidates", "block_size"],
                          as_index=False)
             [["bpp", "bpp_ideal", "real_over_kl", "psnr_db", "sample_psnr", "psnr_gap_db", "encode_s", "decode_s",
               "exact"]].mean())
    with pd.option_context("display.width", 200, "display.precision", 3):
        sys.stdout.write(f"iREC lossy coder sweep: {info['name']}, final={args.final}, {len(images)} images of "
                         f"{args.dataset}" + (f" (centre {args.crop}x{args.crop})" if args.crop else "") + "; "
                         f"one parameter moved at a time from B={PAPER_LOSSY.n_beams}, "
                         f"1+eps={PAPER_LOSSY.extra_samples:g}, Omega={PAPER_LOSSY.kl_per_step:g} nats, blocks of "
                         f"{PAPER_LOSSY.block_size}\n")
        sys.stdout.write(table.to_string(index=False) + "\n")
    sys.stdout.write(f"\nrows written to {args.out} ({provenance.device_description()}, "
                     f"commit {provenance.git_commit()})\n")
    return 0 if rows["exact"].all() else 1
