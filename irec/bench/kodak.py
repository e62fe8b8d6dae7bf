"""``python -m irec.bench kodak``: lossless Kodak, one image at a time as a user codes it, beside its targets.

The paper codes the 24 Kodak images losslessly at 3.67 bpd (Section 4.1, Table 1, with a model trained on
ImageNet32). Ours are coded as independent tiles (irec.codecs.tiles) and, as ``irec compress --workers N`` does,
each image's tiles are spread over ``--workers`` processes (a pool started per image and per direction, so its
start-up is inside the times). For each of ``--images`` Kodak images (a seeded subset; 24: all) the benchmark
writes the real file, decodes it in the same way and compares the pixels bit for bit; PNG, WebP lossless and JPEG
XL lossless code the same images in the same run. The printed table sets the measured means beside:

- the wall time to encode one Kodak image, at most 60 s, and to decode it, at most 30 s, on the 2-core CPU;
- the real bpd, below the paper's 3.67 (published) at the least, then WebP lossless and JPEG XL of this run;
- real bpd / -ELBO at most 1.10 (the paper: 4.18 / 3.55 on CIFAR-10, 1.18);
- 100% bit-exact round trips (the command exits 1 otherwise).

Rows (one per image and codec, the results schema's columns with the model and the coder settings) go to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from irec import provenance
from irec.bench import add_coder_options, add_lossless_refinement_options, coder_options, refinement_options
from irec.bench.lossless import CLASSICAL, _model_columns, _show, _write, classical_row, finish
from irec.codecs.classical import make_codecs
from irec.codecs.lossless import LosslessCodec
from irec.codecs.tiles import DEFAULT_TILE_SIZE, check_tile_size
from irec.data import centre_crop, load_images
from irec.evaluation.lossless import CODEC_NAME, evaluate_image, setting_label
from irec.evaluation.parallel import TilePool, available_cores, codec_builder
from irec.paths import RESULTS
from irec.settings import LOSSLESS_DEFAULT, LOSSLESS_REFINEMENT
from irec.zoo import resolve_model

# Per Kodak image (768 x 512) on the 2-core CPU; the paper's Table 1 for the rate.
TARGETS = {"encode_s": 60.0, "decode_s": 30.0, "real_over_elbo": 1.10}
PAPER_KODAK_BPD = 3.67


def summary_table(df: pd.DataFrame, workers: int) -> pd.DataFrame:
    """Metric / measured / target rows (means over the images)."""
    ours, theirs = df[df.codec == CODEC_NAME], df[df.codec != CODEC_NAME]
    n_exact, n = int(ours.bit_exact.sum()), len(ours)
    real, elbo = ours.bpd.mean(), ours.negative_elbo_bpd.mean()
    by_codec = {c: g.bpd.mean() for c, g in theirs.groupby("codec")}
    beats = [label for codec, label in (("webp-lossless", "WebP"), ("jpegxl-lossless", "JPEG XL"))
             if codec in by_codec and real < by_codec[codec]]
    lines = [
        ("round trips bit-exact", f"{n_exact}/{n}", "100%"),
        ("real bpd", f"{real:.4f}", f"< {PAPER_KODAK_BPD} (paper, published); "
                                    + (f"beats {' and '.join(beats)} of this run" if beats else
                                       "beats neither WebP nor JPEG XL of this run")),
        ("  latents bpd", f"{ours.latent_bpd.mean():.4f}", f"ideal: KL {ours.kl_bpd.mean():.4f}"),
        ("  pixels bpd", f"{ours.pixel_bpd.mean():.4f}", f"ideal: -log2 p(x|z) {ours.pixel_ideal_bpd.mean():.4f}"),
        ("-ELBO bpd", f"{elbo:.4f}", "the ideal"),
        ("real / -ELBO", f"{real / elbo:.4f}", f"<= {TARGETS['real_over_elbo']:.2f}"),
        (f"encode s / image ({workers} workers)", f"{ours.encode_s.mean():.1f} (max {ours.encode_s.max():.1f})",
         f"<= {TARGETS['encode_s']:g} s on the 2-core CPU"),
        (f"decode s / image ({workers} workers)", f"{ours.decode_s.mean():.1f} (max {ours.decode_s.max():.1f})",
         f"<= {TARGETS['decode_s']:g} s on the 2-core CPU"),
    ]
    for _, group in theirs.groupby("codec", sort=False):
        lines.append((f"{group.codec_label.iloc[0]} bpd", f"{group.bpd.mean():.4f}",
                      f"{int(group.bit_exact.sum())}/{len(group)} exact, this run"))
    return pd.DataFrame(lines, columns=["metric", "measured", "target / note"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m irec.bench kodak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lossless-photos", help=(
        "a saved RVAE: a name in the model registry or a .pt path (default: the photo model, lossless-photos)"))
    parser.add_argument("--images", type=int, default=3, help="Kodak images (a seeded subset, seed 0; 24: all)")
    parser.add_argument("--workers", type=int, default=0, help=(
        "processes coding one image's tiles (0: one per available core; 1: this process)"))
    parser.add_argument("--crop", type=int, default=0, help=(
        "centre-crop the images to this side (0: full size, as the targets mean; a crop is for quick looks and tests)"))
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="side of the tiles")
    add_coder_options(parser, LOSSLESS_DEFAULT)
    add_lossless_refinement_options(parser)
    parser.add_argument("--no-classical", action="store_true", help="skip PNG / WebP / JPEG XL")
    parser.add_argument("--out", default=str(RESULTS / "bench" / "kodak-lossless.csv"), help="CSV of per-image rows")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 24:
        parser.error("--images must be between 1 and 24")
    if args.workers < 0 or args.crop < 0:
        parser.error("--workers and --crop must be >= 0 (workers 0: one per available core; crop 0: full size)")
    try:
        check_tile_size(args.tile_size)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, fingerprint, info = resolve_model(args.model)
    codec = LosslessCodec(model, fingerprint, coder_options(args, LOSSLESS_DEFAULT), tile_size=args.tile_size,
                          refinement=refinement_options(args, LOSSLESS_REFINEMENT))
    workers = args.workers or available_cores()
    tile_map = TilePool(codec_builder(codec, args.model), codec, workers) if workers > 1 else None
    classical = [] if args.no_classical else make_codecs(CLASSICAL)
    columns = _model_columns(fingerprint, info)
    stamp = provenance.stamp()
    images = [(n, centre_crop(im, args.crop)) for n, im in load_images("kodak", limit=args.images)]
    rows = []
    for i, (name, image) in enumerate(images):
        row = evaluate_image(codec, name, image, dataset="kodak", split="test", model=info.get("name"),
                             tile_map=tile_map)
        base = {"dataset": "kodak", "image": name, "height": image.shape[0], "width": image.shape[1],
                "n_subpixels": image.size, "workers": workers}
        rows.append({**base, **row, **columns})
        sys.stderr.write(f"kodak {i + 1}/{len(images)} {name}: {row['bpd']:.4f} bpd, encode {row['encode_s']:.1f} s, "
                         f"decode {row['decode_s']:.1f} s{'' if row['bit_exact'] else '  NOT BIT-EXACT'}\n")
        rows.extend({**base, **classical_row(c, image), **columns} for c in classical)
    df = pd.DataFrame([{**stamp, **r} for r in rows])
    out = Path(args.out)
    _write(df, out)
    size = f"{args.crop}x{args.crop} centre crops" if args.crop else "full size"
    _show(f"Kodak, {len(images)} image(s) ({size}), model {info.get('name', args.model)} "
          f"(fingerprint {fingerprint[:16]}), {setting_label(codec.params, codec.refinement)}, "
          f"tiles of {args.tile_size}, "
          f"{workers} worker(s) per image:", summary_table(df, workers))
    return finish(df, out)


if __name__ == "__main__":
    sys.exit(main())
