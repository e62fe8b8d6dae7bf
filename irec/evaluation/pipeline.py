"""The suite's model steps: which model each profile uses, and coding a dataset with it into tidy rows.

Notebooks 01/02 (train) and 04/05 (compress) call only these functions. Paper, section 4: the lossless RVAE is
evaluated on CIFAR-10 test (and Kodak), the lossy models on Kodak. Per profile:

- ``smoke``: a tiny model is trained for a few steps into ``results/runs/<kind>-smoke`` (git-ignored), so the
  whole pipeline (training, real files, decoding, table, plots) runs in CI in minutes; its numbers mean nothing;
- ``cpu`` / ``paper``: the shipped model of the profile (``models/manifest.json``) unless ``--train`` asks to
  train it (hours on a CPU; resumable). Without either, the step says so and later steps report "not run yet".

Kodak lossless is coded with the model for natural photos (``lossless-photos``, trained on BSDS500 and Sun-Hays 80
crops, never on Kodak; the paper's was trained on ImageNet32, which has no offline copy), large images as
independent tiles (:mod:`irec.codecs.tiles`). It is part of the ``paper`` profile; the ``cpu`` profile leaves it
out of the main job (about 40 minutes more on 2 cores) and codes it on request (notebook 04's ``kodak``, or
``python -m irec.evaluation.pipeline lossless --dataset kodak``); the table reads its rows either way.

``python -m irec.evaluation.pipeline {lossless,lossy}`` runs step 04 or 05 from the command line; started by
torchrun, it shards the images across ranks and machines (:mod:`irec.evaluation.shards`, docs/multi-machine.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from irec import zoo
from irec.evaluation import shards
from irec.evaluation.kept_rows import keep_rows, other_models_rows, other_settings_rows, resumable_rows
from irec.evaluation.results import results_path
from irec.paths import RESULTS

if TYPE_CHECKING:
    from irec.coder import CoderParams

log = logging.getLogger(__name__)

# Shipped model names per kind: lossless-cifar10; lossy-mse-<beta> and lossy-msssim-<beta>.
LOSSLESS_NAME = "lossless-cifar10"
LOSSLESS_PHOTO_NAME = "lossless-photos"  # the lossless model for natural photos, which codes Kodak
SMOKE_STEPS = 20  # training steps of the smoke models
# Images coded per profile: (CIFAR-10 test images, Kodak images) for the lossless models (Kodak with the photo
# model); Kodak images for lossy. KODAK_IMAGES: the lossless Kodak images coded on request in any profile.
LOSSLESS_IMAGES = {"smoke": (4, 0), "cpu": (1000, 0), "paper": (10000, 24)}
KODAK_IMAGES = 24
LOSSY_IMAGES = {"smoke": 2, "cpu": 24, "paper": 24}
# The lossy rate points (distortion, beta) each profile trains: the paper's five MSE rates and four MS-SSIM rates
# for cpu and paper alike (the cpu profile's are shipped; how each was trained: docs/models.md).
LOSSY_RATES = {
    "smoke": (("mse", 0.003), ("mse", 0.03)),
    "cpu": (("mse", 0.001), ("mse", 0.003), ("mse", 0.01), ("mse", 0.03), ("mse", 0.05),
            ("ms_ssim", 0.003), ("ms_ssim", 0.01), ("ms_ssim", 0.03), ("ms_ssim", 0.08)),
    "paper": (("mse", 0.001), ("mse", 0.003), ("mse", 0.01), ("mse", 0.03), ("mse", 0.05),
              ("ms_ssim", 0.003), ("ms_ssim", 0.01), ("ms_ssim", 0.03), ("ms_ssim", 0.08)),
}


@dataclass(frozen=True)
class ModelChoice:
    """The model a step uses, or why there is none."""

    kind: str  # "lossless" or "lossy"
    name: str  # shipped name, or the run folder's name
    path: str | None  # checkpoint path; None when no model is available
    status: str  # one sentence for the notebook


def _run_dir(kind: str, profile: str, suffix: str = "") -> Path:
    return RESULTS / "runs" / f"{kind}{suffix}-{profile}"


def _train(kind: str, profile: str, beta: float, distortion: str, suffix: str, init_from: Path | None = None
           ) -> tuple[ModelChoice, bool]:
    """Train (or resume) one model of the profile's preset; (its choice, whether it finished)."""
    from irec.training.runs import train_model

    run = _run_dir(kind, profile, suffix)
    smoke = profile == "smoke"
    result = train_model(kind, profile, run, beta=beta, distortion=distortion, limit=3 if smoke else None,
                         init_from=init_from, n_steps=SMOKE_STEPS if smoke else None)
    state = "trained" if result.finished else "partly trained (re-run to resume)"
    choice = ModelChoice(kind, run.name, str(result.model_path), f"{state} to step {result.step} in {run}")
    return choice, result.finished


def lossless_model(profile: str, train: bool) -> ModelChoice:
    """The lossless model of a profile (see the module docstring)."""
    if profile == "smoke" or train:
        return _train("lossless", profile, 0.0, "mse", "")[0]
    return _shipped("lossless", [LOSSLESS_NAME], profile)[0]


def lossless_photo_model(profile: str) -> ModelChoice:
    """The lossless model that codes Kodak: the shipped photo model (the smoke profile's tiny model in smoke)."""
    if profile == "smoke":
        return lossless_model(profile, False)
    choice = _shipped("lossless", [LOSSLESS_PHOTO_NAME], profile)[0]
    if choice.path is None:  # trained by its own script, not by the suite's --train
        choice = ModelChoice("lossless", LOSSLESS_PHOTO_NAME, None, (
            f"no shipped lossless model '{LOSSLESS_PHOTO_NAME}' for Kodak yet: train it with tools/cpu_train.sh "
            "(or tools/gpu_train_lossless.sh) and ship it (docs/models.md), or code Kodak with another model: "
            "python -m irec.evaluation.pipeline lossless --dataset kodak --model lossless-cifar10"))
    return choice


def lossy_name(distortion: str, beta: float) -> str:
    """The shipped name of a lossy rate point: lossy-mse-<beta> or lossy-msssim-<beta>."""
    return f"lossy-{distortion.replace('_', '')}-{beta:g}"


def lossy_models(profile: str, train: bool, betas: tuple[float, ...] = (), distortion: str = "mse") -> list[ModelChoice]:
    """The lossy models of a profile, one per rate: ``betas`` of ``distortion``, or by default LOSSY_RATES when
    training and the shipped models otherwise.

    When the profile's preset has a ``base_beta`` (cpu), training first trains that base model into
    ``results/runs/lossy-base-<profile>`` and then fine-tunes every rate point from it."""
    if profile == "smoke" or train:
        from irec.settings import lossy_preset

        rates = tuple((distortion, b) for b in betas) or LOSSY_RATES[profile]
        base_beta = lossy_preset(profile).base_beta
        init_from = None
        if base_beta is not None:
            base, finished = _train("lossy", profile, base_beta, "mse", "-base")
            if not finished:
                return [base]  # fine-tuning starts when the base model is finished (re-run to resume)
            init_from = Path(base.path)
        return [_train("lossy", profile, beta, dist, f"-{dist}-{beta:g}", init_from)[0] for dist, beta in rates]
    shipped = [m["name"] for m in zoo.list_models() if m.get("kind") == "lossy" and m.get("source") == "shipped"]
    return _shipped("lossy", shipped or [lossy_name("mse", 0.01)], profile)


def _shipped(kind: str, names: list[str], profile: str) -> list[ModelChoice]:
    choices = []
    for name in names:
        try:
            _, _, info = zoo.resolve_model(name)
            choices.append(ModelChoice(kind, name, str(info.get("path", name)), f"shipped model {name}"))
        except zoo.ModelNotFoundError:
            choices.append(ModelChoice(kind, name, None, (
                f"no shipped {kind} model '{name}' yet for the {profile} profile: train it with "
                f"./run_all.sh --profile {profile} --train (hours on a CPU), or wait for the committed checkpoint")))
    return choices


def _coder_setting(name: str) -> CoderParams:
    """The coder setting named ``name`` in ``irec.settings.CODER_SETTINGS``; a ValueError naming the choices."""
    from irec.settings import CODER_SETTINGS

    if name not in CODER_SETTINGS:
        raise ValueError(f"unknown coder setting {name!r}; choose one of {', '.join(CODER_SETTINGS)}")
    return CODER_SETTINGS[name]


def compress_lossless(choice: ModelChoice, profile: str, seed: int = 0, resume: bool = True,
                      workers: int | None = 0, datasets: tuple[str, ...] | None = None,
                      kodak: ModelChoice | None = None, coder: str = "irec-lossless",
                      refine_steps: int = 0) -> pd.DataFrame | None:
    """Code CIFAR-10 test images with ``choice`` and Kodak with ``kodak``, real files; rows to
    results/lossless/<dataset>.csv. Returns None when nothing could be coded (no model).

    ``datasets``: which of "cifar10" and "kodak" (None: the profile's, LOSSLESS_IMAGES); Kodak takes all
    :data:`KODAK_IMAGES` images and ``kodak`` None: :func:`lossless_photo_model`.
    Rows are written image by image, in the images' order; ``resume``: keep the rows an interrupted run of the same
    commit wrote with this model and coder setting, and code only the other images; ``workers``: processes coding
    images (:mod:`irec.evaluation.parallel`; 0: one per available core; 1: in this process), the same rows
    whatever the count. Under torchrun with several ranks (:mod:`irec.evaluation.shards`), each rank codes its share
    into its shard file (resuming from it), rank 0 merges the shards into the results file, and each rank returns
    its own rows. ``coder``: the search's setting, a name in ``irec.settings.CODER_SETTINGS`` (default: the codec's);
    ``refine_steps``: the encoder's refinement of the posteriors (:mod:`irec.codecs.refine`; 0: none, as the paper).
    On one machine the rows of the model's other settings stay in the results file (the table gives each encoder
    setting a row of its own)."""
    params = _coder_setting(coder)
    n_cifar, n_kodak = LOSSLESS_IMAGES[profile]
    if datasets is None:
        datasets = ("cifar10", "kodak") if n_kodak else ("cifar10",)
    if "kodak" in datasets and kodak is None:
        kodak = lossless_photo_model(profile)
    plan = [(choice, "cifar10", n_cifar)] if "cifar10" in datasets else []
    plan += [(kodak, "kodak", n_kodak or KODAK_IMAGES)] if "kodak" in datasets else []
    for c, _, _ in plan:
        if c.path is None:
            log.warning("%s", c.status)
    plan = [job for job in plan if job[0].path is not None]
    if not plan:
        return None
    frames = []
    with shards.process_group() as place:
        for c, dataset, count in plan:
            frames.append(_code_lossless(c, dataset, count, profile, seed, resume, workers, place,
                                         params, refine_steps))
    return pd.concat(frames, ignore_index=True)


def _code_lossless(choice: ModelChoice, dataset: str, count: int, profile: str, seed: int, resume: bool,
                   workers: int | None, place, params: CoderParams, refine_steps: int) -> pd.DataFrame:
    """:func:`compress_lossless` of one dataset with one model (this rank's share of the images)."""
    from irec.codecs.lossless import LosslessCodec
    from irec.data import load_images
    from irec.evaluation.baselines import dataset_split
    from irec.evaluation.lossless import evaluate_images, setting_label

    model, fingerprint, _ = zoo.resolve_model(choice.path)
    codec = LosslessCodec(model, fingerprint, params,
                          refinement=replace(LosslessCodec.default_refinement, steps=refine_steps))
    setting = setting_label(codec.params, codec.refinement)
    final_out = results_path("lossless", dataset, profile)
    every = load_images(dataset, limit=count, seed=seed)
    out, images = shards.shard_path(final_out, place), shards.share(every, place)
    others = other_settings_rows(out, fingerprint, setting) if place.world == 1 else pd.DataFrame()
    old = resumable_rows(out, resume)
    done = pd.DataFrame()
    if old is not None and "fingerprint" in old:
        same = ((old["fingerprint"].astype(str) == fingerprint) & (old["setting"] == setting)
                & old["image"].astype(str).isin([name for name, _ in images]))
        done = old[same].drop_duplicates("image", keep="last")
    keep_rows(out, [others, done])
    if len(done):
        log.info("%s: %d of %d images kept from an interrupted run", out.name, len(done), len(images))
    rows = done.to_dict("records")
    skip = set(done["image"].astype(str)) if len(done) else set()
    todo = [(n, i) for n, i in images if n not in skip]
    rows += evaluate_images(codec, todo, dataset=dataset, split=dataset_split(dataset, None), out=out,
                            model=choice.name, workers=workers, source=choice.path)
    shards.finish(final_out, place, [name for name, _ in every])
    return pd.DataFrame(rows)


def compress_lossy(choices: list[ModelChoice], profile: str, final: str | None = None, coder: str = "irec-lossy",
                   refine_steps: int | None = None, low_rate: bool = True, resume: bool = True,
                   workers: int | None = 0) -> pd.DataFrame | None:
    """Code Kodak with every available lossy model; rows to results/lossy/kodak[-smoke].csv, image by image (model
    by model, each in the images' order).

    ``final``: how the coded sample is chosen (None: ``irec.settings.LOSSY_FINAL``); ``coder``: a name in
    ``irec.settings.CODER_SETTINGS`` ("irec-lossy": the codec's default, "paper-lossy": the paper's); ``refine_steps``:
    the encoder's refinement steps of q(z1)'s mean (:mod:`irec.codecs.refine`; 0: off, as the paper; None: the
    codec's default); ``low_rate``: code low-rate images with ``irec.settings.LOSSY_LOW_RATE`` (False:
    ``LOSSY_DEFAULT`` for every image); ``resume``: keep the rows an interrupted run of the same commit wrote with the
    same model and settings (:func:`irec.evaluation.lossy.rows_coded_like`), and code only the others; ``workers``:
    processes coding images, one pool for every model (:mod:`irec.evaluation.parallel`; 0: one per available core; 1:
    in this process), the same rows whatever the count. On one machine the rows of models not in ``choices`` stay in
    the results file, whatever their commit. Under torchrun with several ranks (:mod:`irec.evaluation.shards`), each
    rank codes its share of the images with every model into its shard file (resuming from it), rank 0 merges the
    shards into the results file (which then holds only these models' rows), and each rank returns its own rows."""
    available = [c for c in choices if c.path is not None]
    for c in choices:
        if c.path is None:
            log.warning("%s", c.status)
    if not available:
        return None
    from irec.codecs.lossy import LossyCodec
    from irec.settings import LOSSY_FINAL, with_steps
    from irec.data import load_images
    from irec.evaluation.lossy import evaluate_models, rows_coded_like

    place = shards.place()
    final_out = results_path("lossy", "kodak", profile)
    every = load_images("kodak", limit=LOSSY_IMAGES[profile], seed=0)
    out, images = shards.shard_path(final_out, place), shards.share(every, place)
    names = [name for name, _ in images]
    refinement = with_steps(refine_steps)
    params = None if coder == "irec-lossy" and low_rate else _coder_setting(coder)  # None: the default pair
    final = LOSSY_FINAL if final is None else final
    others = other_models_rows(out, [c.name for c in available]) if place.world == 1 else pd.DataFrame()
    old = resumable_rows(out, resume)
    codecs, done = [], []
    for choice in available:
        model, fingerprint, _ = zoo.resolve_model(choice.path)
        codec = LossyCodec(model, fingerprint, params, final=final, refinement=refinement)
        kept = pd.DataFrame() if old is None else rows_coded_like(old[old["model"] == choice.name], codec, names)
        codecs.append((choice, codec))
        done.append(kept)
    keep_rows(out, [others, *done])
    runs = []
    for (choice, codec), kept in zip(codecs, done):
        skip = set(kept["image"].astype(str)) if len(kept) else set()
        if len(kept):
            log.info("%s: %d of %d images kept from an interrupted run", choice.name, len(kept), len(images))
        todo = [(name, image) for name, image in images if name not in skip]
        if todo:
            runs.append((codec, choice.path, choice.name, todo))
    with shards.process_group() as place:
        coded = evaluate_models(runs, dataset="kodak", out=out, workers=workers) if runs else pd.DataFrame()
        shards.finish(final_out, place, [name for name, _ in every], [choice.name for choice, _ in codecs])
    frames = []
    for (choice, _), kept in zip(codecs, done):
        mine = coded[coded["model"] == choice.name] if len(coded) else coded
        frames += [f for f in (kept, mine) if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()  # none: a rank beyond the images


def _choices(kind: str, profile: str, models: list[str]) -> list[ModelChoice]:
    """The models named on the command line (shipped names or saved files), else the profile's."""
    if models:
        return [ModelChoice(kind, Path(m).stem if m.endswith(".pt") else m, m, f"model {m}") for m in models]
    if profile == "smoke" and shards.place().world > 1:
        raise SystemExit("the smoke profile trains its model in each process: train it once (./run_all.sh --profile "
                         "smoke), then pass it with --model results/runs/<run>/model.pt")
    return [lossless_model(profile, False)] if kind == "lossless" else lossy_models(profile, False)


def main(argv: list[str] | None = None) -> int:
    """``python -m irec.evaluation.pipeline``: step 04 or 05 from the command line, on one machine or, under
    torchrun, sharded across machines (docs/multi-machine.md)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m irec.evaluation.pipeline",
        description="Code the images of step 04 (lossless) or 05 (lossy) with real files into results/<kind>/. "
        "Alone it codes every image, as the notebook does. Started by torchrun (torchrun --nnodes N "
        "--nproc_per_node 1 ... -m irec.evaluation.pipeline ...), each rank codes its share of the images (image i "
        "goes to rank i % N) into results/<kind>/shards/<name>.rank<R>-of-<N>.csv, and rank 0 merges the shards "
        "into the results file when all are done. An interrupted run resumes: rerun the same command. See "
        "docs/multi-machine.md.")
    parser.add_argument("kind", choices=("lossless", "lossy"), help="step 04 (lossless) or 05 (lossy)")
    parser.add_argument("--profile", default="cpu", choices=tuple(LOSSY_IMAGES), help="run profile (default cpu)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME_OR_PATH",
                        help="model to code with (repeat for several lossy models); default: the profile's")
    parser.add_argument("--dataset", choices=("cifar10", "kodak"), help=(
        "lossless: code only this dataset (kodak: all 24 images with the photo model, lossless-photos, or --model; "
        "default: the profile's, CIFAR-10 test, and Kodak in the paper profile)"))
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes per rank (default 0: one per available core; 1: the rank itself)")
    parser.add_argument("--coder", default=None, metavar="NAME", help=(
        "lossless: the search's setting, a name in irec.settings.CODER_SETTINGS (default irec-lossless, the codec's)"))
    parser.add_argument("--refine-steps", type=int, default=0, metavar="N", help=(
        "lossless: the encoder refines every level's posterior with N Adam steps before coding it (irec.codecs.refine;"
        " default 0: none, as the paper). The model's rows of other settings stay, and the table gives each setting "
        "a row of its own"))
    parser.add_argument("--no-resume", action="store_true", help="code every image again (default: resume)")
    parser.add_argument("--merge", type=int, default=None, metavar="N",
                        help="only merge the shards of an N-rank run already in results/<kind>/shards/ (one "
                        "process, no coding; fails naming any rank whose shard is missing or incomplete)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.kind != "lossless" and (args.dataset is not None or args.refine_steps or args.coder):
        parser.error("--dataset, --coder and --refine-steps are for the lossless step (the lossy step codes Kodak)")
    if args.refine_steps < 0:
        parser.error(f"--refine-steps must be 0 or more, got {args.refine_steps}")
    kodak_only = args.dataset == "kodak"
    choices = (_choices(args.kind, args.profile, args.model) if not kodak_only or args.model
               else [lossless_photo_model(args.profile)])
    if args.merge is not None:
        from irec.data import load_images

        available = [c.name for c in choices if c.path is not None]
        counts = list(zip(("cifar10", "kodak"), LOSSLESS_IMAGES[args.profile])) if args.kind == "lossless" else [
            ("kodak", LOSSY_IMAGES[args.profile])]
        if args.dataset is not None:
            counts = [(args.dataset, dict(counts).get(args.dataset) or KODAK_IMAGES)]
        for dataset, count in counts:
            if count:
                names = [name for name, _ in load_images(dataset, limit=count, seed=0)]
                shards.merge(results_path(args.kind, dataset, args.profile), args.merge, names,
                             available if args.kind == "lossy" else None)
        return 0
    resume, workers = not args.no_resume, args.workers
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > 1:  # several ranks on this machine: each takes its share of the cores (numba's, torch's, the pool's)
        import numba
        import torch

        from irec.evaluation.parallel import available_cores

        share = max(1, available_cores() // local)
        numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))
        torch.set_num_threads(share)
        workers = workers or share
    if args.kind == "lossless":
        datasets = (args.dataset,) if args.dataset else None
        rows = compress_lossless(choices[0], args.profile, resume=resume, workers=workers, datasets=datasets,
                                 kodak=choices[0] if kodak_only else None, coder=args.coder or "irec-lossless",
                                 refine_steps=args.refine_steps)
    else:
        rows = compress_lossy(choices, args.profile, resume=resume, workers=workers)
    return 0 if rows is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
