"""Held-out evaluation of lossless models on natural photos, and the "ship only when better" comparison.

The lossless RVAE (iREC, Flamich et al. 2020, Section 4.1; docs/irec-method.md Section 5) codes an image at about
its negative ELBO, but not at exactly that: the coder pays about 1.2 bits per bit of the latents' KL and one per bit of
the pixels' -log p(x|z), so a model trained for the coded rate (``RVAEConfig.kl_weight``) can have the worse -ELBO and
the smaller files. The real files on images no run trained on therefore decide whether a newly trained model should
replace the shipped one (``measure="real"``, the default); the -ELBO is reported beside them, and can decide instead
(``measure="elbo"``). Three held-out sets (``dataset``):

- ``bsds500``, for the photo models: BSDS500 val, which the lossless ``photos`` presets leave out of their training
  crops (irec.training.runs.PHOTOS_BSDS_SPLITS); Kodak, the test set, is not used, so that choosing a model does
  not look at the test set. Its JPEGs store chroma at half resolution, as the photos presets' BSDS500 crops do;
- ``clic``, for the photo models too: tiles of Kodak's tile size from the two CLIC professional validation images of
  the prepared data (``clic_sample``), a source no photos preset trains on, with full-resolution chroma as Kodak's;
- ``cifar10``, for the CIFAR-10 models: the training subset is the whole training set, so the held-out images are
  CIFAR-10 test images that the results table does not code, the last ones of the seeded permutation whose first
  1,000 the table codes (``irec.data.load_images("cifar10", limit=1000)``; the ``paper`` profile codes all 10,000).

- :func:`heldout_images`: a seeded subset of the held-out set, each image centre-cropped to a square (deterministic);
- :func:`negative_elbo_bpd`: the honest -ELBO (analytic KL per level, no free bits, plus one posterior sample's
  -log p(x|z), :meth:`irec.models.rvae.RVAE.negative_elbo`) in bits per subpixel over a set of images, summed in
  float64, with the posterior sample drawn under a fixed torch seed, so the same model and images give the same
  number;
- :func:`real_bpd`: the real rate, 8 x bytes of each image's file (the lossless codec at its default setting, the
  exact model a shipped file is coded with) over the subpixels, every file decoded and checked;
- :func:`compare`: the figures of a candidate and a shipped model, and whether the candidate is better.

``python -m irec.training.heldout RUN/model.pt --against lossless-cifar10`` prints the comparison (``--help``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

from irec.data import centre_crop, held_back_indices, load_cifar10, load_images, subset_indices

HELDOUT_DATASET = ("bsds500", "val")  # the held-out photos: BSDS500 val, never in the photos presets' crops
DEFAULT_IMAGES = 16  # held-out images evaluated by default (a seeded subset of the 100)
DEFAULT_SIDE = 128  # side of the centre crop of each BSDS500 image (even; 2x the photos preset's training crops)
CLIC_SIDE = 256  # side of the CLIC tiles: Kodak's tile size (irec.codecs.tiles)
CIFAR_SIDE = 32  # CIFAR-10 images are taken whole
CIFAR_MAX_IMAGES = 5000  # at most the last half of the permutation, so the table's first 1,000 are never among them
# names of the figures irec ship records, per held-out set
FIGURE_PREFIX = {"bsds500": "bsds500_val", "cifar10": "cifar10_heldout", "clic": "clic_valid_tiles"}
DATASETS = tuple(FIGURE_PREFIX)  # the held-out sets (module docstring): photos, or CIFAR-10 test images
DEFAULT_SEED = 0  # seeds both the image subset and the posterior sample
DEFAULT_BATCH = 8  # images per forward pass


def heldout_images(n: int | None = DEFAULT_IMAGES, side: int | None = None, seed: int = DEFAULT_SEED,
                   dataset: str = "bsds500") -> np.ndarray:
    """The held-out images as a uint8 (N, side, side, 3) array.

    ``bsds500``: ``n`` images of BSDS500 val (None: all 100), chosen as ``irec.data.load_images`` chooses a seeded
    subset (sorted indices of ``default_rng(seed).permutation``), each centre-cropped to ``side`` x ``side`` (None:
    DEFAULT_SIDE; BSDS500 images are 481x321 or 321x481, so ``side`` <= 320). ``cifar10``: the CIFAR-10 test images
    at the sorted indices of the last ``n`` (None: CIFAR_MAX_IMAGES) of the same permutation, whole (``side`` None
    or 32), so none is among the ``limit`` <= 5,000 that ``load_images("cifar10", limit=limit, seed=seed)`` takes.
    ``clic``: ``n`` (None: all) of the ``side`` x ``side`` tiles (None: CLIC_SIDE) of the ``clic_sample`` images, cut
    from the top left in raster order, a seeded subset in that order."""
    if dataset == "cifar10":
        return _cifar_heldout(CIFAR_MAX_IMAGES if n is None else n, CIFAR_SIDE if side is None else side, seed)
    if dataset == "clic":
        return _clic_tiles(n, _even_side(CLIC_SIDE if side is None else side, "tile"), seed)
    if dataset != "bsds500":
        raise ValueError(f"the held-out set must be one of {DATASETS}, got {dataset!r}")
    side = _even_side(DEFAULT_SIDE if side is None else side, "crop")
    if n is not None and n < 1:
        raise ValueError(f"the number of held-out images must be at least 1, got {n}")
    dataset, split = HELDOUT_DATASET
    named = load_images(dataset, split=split, limit=n, seed=seed)
    small = [name for name, image in named if min(image.shape[:2]) < side]
    if small:
        raise ValueError(f"held-out images {small[:3]} are smaller than the {side}x{side} crop; choose a smaller side")
    return np.stack([centre_crop(image, side) for _, image in named])


def _cifar_heldout(n: int, side: int, seed: int) -> np.ndarray:
    if side != CIFAR_SIDE:
        raise ValueError(f"CIFAR-10 held-out images are taken whole ({CIFAR_SIDE}x{CIFAR_SIDE}), not cropped to {side}")
    if not 1 <= n <= CIFAR_MAX_IMAGES:
        raise ValueError(f"the number of CIFAR-10 held-out images must be between 1 and {CIFAR_MAX_IMAGES}, got {n}")
    images, _ = load_cifar10("test")
    return images[held_back_indices(len(images), n, seed)]


def _even_side(side: int, what: str) -> int:
    if side < 2 or side % 2:
        raise ValueError(f"the held-out {what} side must be even and at least 2 (the RVAE needs even sizes), "
                         f"got {side}")
    return side


def _clic_tiles(n: int | None, side: int, seed: int) -> np.ndarray:
    tiles = [image[y:y + side, x:x + side] for _, image in load_images("clic_sample")
             for y in range(0, image.shape[0] - side + 1, side) for x in range(0, image.shape[1] - side + 1, side)]
    if n is not None and not 1 <= n <= len(tiles):
        raise ValueError(f"the number of CLIC held-out tiles of {side} px must be between 1 and {len(tiles)}, got {n}")
    return np.stack([tiles[i] for i in subset_indices(len(tiles), n, seed)])


def _float_model(model: nn.Module) -> nn.Module:
    """The float RVAE to evaluate: an exact (shipped, int16) model's float twin of the same weights, which is what
    fine-tuning starts from (irec.training.runs); a float model as it is."""
    return model.float_model() if hasattr(model, "float_model") else model


def negative_elbo_bpd(model: nn.Module, images: np.ndarray | torch.Tensor, batch: int = DEFAULT_BATCH,
                      seed: int = DEFAULT_SEED) -> float:
    """The -ELBO of ``images`` (uint8, (N, H, W, 3) array or (N, 3, H, W) tensor) under ``model`` in bits per
    subpixel: the sum over all images of :meth:`RVAE.negative_elbo` (nats, analytic KL, one posterior sample),
    accumulated in float64, divided by the number of subpixels and ln 2. The posterior samples are drawn under
    ``torch.manual_seed(seed)`` (torch's global generator is restored afterwards), so the figure is a function of
    the model, the images, ``batch`` and ``seed``. An exact model is evaluated by its float twin."""
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))) if isinstance(images, np.ndarray) \
        else images
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"images must be a non-empty uint8 batch of RGB images, got {x.dtype} {tuple(x.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    model = _float_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(x), batch):
                terms = model.negative_elbo(x[start:start + batch].to(device))
                total += (terms.nll.double() + terms.kl.double().sum(dim=1)).sum().item()
    finally:
        model.train(was_training)
    return total / (x[0].numel() * len(x) * math.log(2.0))


def real_bpd(model: nn.Module, fingerprint: str, images: np.ndarray) -> float:
    """The real rate of ``images`` (uint8, (N, H, W, 3)) in bits per subpixel: the sum of 8 x len(file) over all
    images, each coded by :class:`irec.codecs.lossless.LosslessCodec` at its default setting (a float model is
    quantized to the exact model first, as ``irec ship`` quantizes it), divided by the number of subpixels. Every
    file is decoded and compared with its image; a file that does not decode to its pixels raises RuntimeError."""
    from irec.codecs.lossless import LosslessCodec

    codec = LosslessCodec(model, fingerprint)
    bits = 0
    for i, image in enumerate(images):
        data = codec.compress(image)
        if not np.array_equal(codec.decompress(data), image):
            raise RuntimeError(f"held-out image {i} did not decode to its pixels: the model or the codec is broken")
        bits += 8 * len(data)
    return bits / images.size


MEASURES = ("real", "elbo")  # what decides "better": real files (bpd) or the -ELBO


def compare(candidate: str | os.PathLike, shipped_name: str, n: int | None = DEFAULT_IMAGES,
            side: int | None = None, seed: int = DEFAULT_SEED, batch: int = DEFAULT_BATCH,
            measure: str = "real", dataset: str = "bsds500") -> dict:
    """The held-out figures (bits per subpixel) of ``candidate`` (a ``model.pt`` path or a model name) and of the
    shipped model ``shipped_name`` on the same :func:`heldout_images`: the -ELBO with the same posterior seed, and,
    with ``measure="real"``, the real files (:func:`real_bpd`), which then decide.

    Returns ``candidate_bpd``, ``shipped_bpd`` (the deciding measure), ``better`` (candidate strictly lower),
    ``difference_bpd`` (candidate - shipped), the -ELBOs (``candidate_elbo_bpd``, ``shipped_elbo_bpd``), both
    fingerprints, the evaluation settings and ``figures``, the candidate's figures as ``irec ship --figures``
    records them (named by FIGURE_PREFIX of ``dataset``, the held-out set of :func:`heldout_images`)."""
    from irec.zoo import resolve_model

    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    images = heldout_images(n, side, seed, dataset)
    side = images.shape[1]
    cand_model, cand_fingerprint, _ = resolve_model(candidate)
    ship_model, ship_fingerprint, _ = resolve_model(shipped_name)
    cand_elbo = negative_elbo_bpd(cand_model, images, batch, seed)
    shipped_elbo = negative_elbo_bpd(ship_model, images, batch, seed)
    if measure == "real":
        cand, shipped = real_bpd(cand_model, cand_fingerprint, images), real_bpd(ship_model, ship_fingerprint, images)
    else:
        cand, shipped = cand_elbo, shipped_elbo
    images_label = "all" if n is None else str(n)
    how = "the -ELBO of the float weights"
    if measure == "real":
        how += "; real files of the exact model at the codec's default setting"
    measured_by = (f"python -m irec.training.heldout {candidate} --against {shipped_name} --dataset {dataset} "
                   f"--images {images_label} --side {side} --seed {seed} --batch {batch} --measure {measure} ({how})")
    prefix = FIGURE_PREFIX[dataset]
    figures = {f"{prefix}_negative_elbo_bpd": round(cand_elbo, 4)}
    if measure == "real":
        figures[f"{prefix}_bpd"] = round(cand, 4)
    return {
        "candidate": str(candidate), "shipped": shipped_name, "measure": measure,
        "candidate_bpd": cand, "shipped_bpd": shipped, "difference_bpd": cand - shipped, "better": cand < shipped,
        "candidate_elbo_bpd": cand_elbo, "shipped_elbo_bpd": shipped_elbo,
        "candidate_fingerprint": cand_fingerprint, "shipped_fingerprint": ship_fingerprint,
        "images": len(images), "side": side, "seed": seed, "batch": batch, "dataset": dataset,
        "figures": {**figures, f"{prefix}_images": len(images), f"{prefix}_side": side, "measured_by": measured_by},
    }


def main(argv: list[str] | None = None) -> int:
    """Print the held-out comparison of a candidate against a shipped model; exit 0 when the candidate is better,
    3 when it is not (2: bad arguments)."""
    parser = argparse.ArgumentParser(
        prog="python -m irec.training.heldout",
        description=(
            "Compare a trained lossless model with a shipped one on held-out images: centre crops of a seeded "
            "subset of BSDS500 val, which the lossless photos presets never train on (Kodak, the test set, is not "
            "looked at), with --dataset clic tiles of the two CLIC validation images (full-resolution chroma, as "
            "Kodak's), or with --dataset cifar10 CIFAR-10 test images that the results table does not code: the "
            "real files in bits per subpixel (the lossless codec at its default setting, each "
            "file decoded and checked; --measure real, the default, which decides) and the -ELBO (analytic KL + one "
            "posterior sample under a fixed seed, float64 sums, the float weights; --measure elbo to decide by it). "
            "Prints the figures and a JSON line; exits 0 when the candidate is better (strictly lower), 3 when it is "
            "not. A better candidate is shipped by hand: irec ship RUN NAME --preset PRESET --figures '<figures JSON>'."
        ),
    )
    parser.add_argument("candidate", help="the trained model: a run's model.pt, or a model name")
    parser.add_argument("--against", default="lossless-cifar10", metavar="NAME",
                        help="the shipped (or cached) model to beat (default: lossless-cifar10)")
    parser.add_argument("--dataset", choices=DATASETS, default="bsds500", help=(
        "the held-out set: bsds500 (val, for the photo models; default), clic (tiles of the two CLIC validation "
        "images of clic_sample, for the photo models) or cifar10 (test images the table does not "
        f"code, the last of its seeded permutation, at most {CIFAR_MAX_IMAGES}; for the CIFAR-10 models)"))
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                        help=f"held-out images, a seeded subset of the set (default {DEFAULT_IMAGES})")
    parser.add_argument("--side", type=int, help=(
        f"bsds500: side of each image's centre crop, even, at most 320 (default {DEFAULT_SIDE}); clic: of the tiles "
        f"(default {CLIC_SIDE}); cifar10: 32"))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seeds the image subset and the posterior sample (default 0)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="images per forward pass")
    parser.add_argument("--measure", choices=MEASURES, default="real", help=(
        "what decides: real files (default; about 4 s per 128-px crop and model on one core) or the -ELBO"))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = compare(args.candidate, args.against, args.images, args.side, args.seed, args.batch, args.measure,
                     args.dataset)
    verdict = "better" if result["better"] else "not better"
    crops = {"bsds500": f"{result['images']} BSDS500 val crops of {result['side']}x{result['side']}",
             "clic": f"{result['images']} CLIC validation tiles of {result['side']}x{result['side']}",
             "cifar10": f"{result['images']} held-out CIFAR-10 test images"}[args.dataset]
    print(f"held-out -ELBO on {crops}: candidate {result['candidate_elbo_bpd']:.4f} bpd, {result['shipped']} "
          f"{result['shipped_elbo_bpd']:.4f} bpd ({result['candidate_elbo_bpd'] - result['shipped_elbo_bpd']:+.4f})")
    what = "real files" if args.measure == "real" else "-ELBO"
    print(f"held-out {what} on {crops}: candidate {result['candidate_bpd']:.4f} bpd, {result['shipped']} "
          f"{result['shipped_bpd']:.4f} bpd ({result['difference_bpd']:+.4f}): the candidate is {verdict}")
    print(json.dumps(result))
    return 0 if result["better"] else 3


if __name__ == "__main__":
    sys.exit(main())
