"""Train the paper's models on their data, and ship a trained model into ``models/`` with its manifest entry.

Paper, section 4 (experimental set-up) and docs/irec-method.md section 5: the lossless RVAE trains on
CIFAR-10 train (here: the 20,000-image subset of the prepared data folder, docs/data.md, when the official archive is
absent), the lossy
two-level VAE on random crops of natural photos (CLIC 2018 professional train; offline, the BSDS500 + Sun-Hays 80
stand-in, the latter 2x area-downsampled against its JPEG blocking as README-training-data.md suggests). The lossless
``photos`` preset fine-tunes the CIFAR-10 RVAE on crops of the same photos without BSDS500 val, which
:mod:`irec.training.heldout` keeps for deciding whether a run is better than the shipped model. Kodak is the test set
only and is never trained on. :func:`train_model` runs unchanged under ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Dataset

from irec import paths, provenance
from irec.checkpoint import load_model, read_model_info, save_model
from irec.data import ImageArrayDataset, RandomCropDataset, load_cifar10, load_images
from irec.fileio import atomic_write
from irec.models.quantize import as_exact, model_kind
from irec.training.loop import TrainResult, train

log = logging.getLogger(__name__)

KINDS = ("lossless", "lossy")
CROPS_PER_EPOCH = 100_000  # length of one pass over the random-crop dataset (crops are drawn afresh per index)
# The BSDS500 splits the lossless photos presets train on: val is held out (irec.training.heldout evaluates on it).
PHOTOS_BSDS_SPLITS = ("train", "test")


def _seeded(build_model, seed: int):
    """The model ``build_model()`` makes with torch's generator seeded by ``seed`` (the run's ``TrainConfig.seed``), so
    a run's initial weights, like its data order and noise, are a function of its settings; the global generator's
    state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model()


class PhotoCrops(ConcatDataset):
    """Random crops of natural photos (a ConcatDataset of :class:`irec.data.RandomCropDataset`) that names its
    photos: ``sources`` lists ``dataset/split/name`` (``dataset/name`` for a folder without splits) of every photo a
    crop can come from, so what a run trained on, and that Kodak and the held-out images are not in it, can be
    checked."""

    def __init__(self, parts: list[Dataset], sources: tuple[str, ...]):
        super().__init__(parts)
        self.sources = sources  # every photo the crops are drawn from


def photo_crops(crop: int, seed: int, limit: int | None = None, bsds_splits: tuple[str, ...] | None = None,
                bsds_downsample: int = 1) -> tuple[PhotoCrops, str]:
    """Random ``crop`` x ``crop`` training crops of the natural photos of the prepared data folder, and their
    description: BSDS500 (``bsds_splits``, None: all 500 images) and Sun-Hays 80, 2x area-downsampled against its JPEG
    blocking (README-training-data.md), without those smaller than ``crop`` after the downsample; where BSDS500 is
    absent, CLIC 2018 professional train (the paper's lossy training set, Section 4). The lossy VAE (paper Section 4,
    method note Section 5) and the lossless ``photos`` presets train on these; Kodak is never among them.

    ``seed`` seeds the crops (BSDS500 or CLIC with ``seed``, Sun-Hays with ``seed + 1``); ``limit``: a seeded subset
    of that many photos per source (per BSDS500 split when ``bsds_splits`` is given), for smoke runs.
    ``bsds_downsample``: area-downsample BSDS500 by this factor too (2: its JPEG 4:2:0 chroma becomes full-resolution
    chroma, as Kodak's; 1: as stored)."""
    parts: list[Dataset] = []
    sources: list[str] = []
    if (paths.data_root() / "bsds500").is_dir():
        if bsds_splits is None:
            bsds = load_images("bsds500", limit=limit)
            sources += [f"bsds500/{name}" for name, _ in bsds]
            data = "bsds500 (train, val, test)"
        else:
            bsds = []
            for split in bsds_splits:
                named = load_images("bsds500", split=split, limit=limit)
                bsds += named
                sources += [f"bsds500/{split}/{name}" for name, _ in named]
            data = f"bsds500 ({', '.join(bsds_splits)})"
        parts.append(RandomCropDataset([image for _, image in bsds], crop, CROPS_PER_EPOCH, seed=seed,
                                       downsample=bsds_downsample))
        if bsds_downsample != 1:
            data += f", {bsds_downsample}x area-downsampled"
        sun = load_images("sun_hays80", limit=limit)
        kept = [(name, image) for name, image in sun if min(image.shape[:2]) // 2 >= crop]  # one is 213 px after 2x
        parts.append(RandomCropDataset([image for _, image in kept], crop, CROPS_PER_EPOCH // 5, seed=seed + 1,
                                       downsample=2))
        sources += [f"sun_hays80/{name}" for name, _ in kept]
        data += " + sun_hays80 (2x area-downsampled)"
        if len(kept) < len(sun):
            data += f", without the {len(sun) - len(kept)} smaller than {crop} px after the downsample"
            log.info("training data: %s", data)
    else:
        clic = load_images("clic", split="train", limit=limit)
        parts.append(RandomCropDataset([image for _, image in clic], crop, CROPS_PER_EPOCH, seed=seed))
        sources += [f"clic/train/{name}" for name, _ in clic]
        data = "CLIC 2018 professional train"
    return PhotoCrops(parts, tuple(sources)), data + f"; {crop}x{crop} crops"


def _lossless(preset_name: str, limit: int | None = None, finetune: bool = False, crop_size: int | None = None,
              seed: int | None = None, kl_weight: float | None = None):
    from irec.models.rvae import RVAE
    from irec.settings import lossless_preset

    p = lossless_preset(preset_name)
    if kl_weight is not None:
        p = dataclasses.replace(p, model=dataclasses.replace(p.model, kl_weight=kl_weight))
    if not p.photos:
        if finetune and not p.fine_tunes:
            raise ValueError(
                f"the lossless {preset_name} preset trains from scratch on CIFAR-10 and has no fine-tuning settings; "
                f"fine-tune with --preset cpu-rate (CIFAR-10) or a preset that trains on photos (--preset photos)"
            )
        if crop_size is not None:
            raise ValueError(
                f"the lossless {preset_name} preset trains on whole 32x32 images; crop_size is for the lossy model "
                "and the lossless photos presets"
            )
        images, _ = load_cifar10("train")
        model = _seeded(lambda: RVAE(p.model), p.train.seed if seed is None else seed)
        return model, p.train, ImageArrayDataset(images), p.dataset
    crop = p.crop_size if crop_size is None else crop_size
    if crop < 2 or crop % 2:
        raise ValueError(f"the lossless crop size must be even and at least 2 (the RVAE's latents are at 1/2), "
                         f"got {crop}")
    dataset, data = photo_crops(crop, p.train.seed, limit, bsds_splits=PHOTOS_BSDS_SPLITS,
                                bsds_downsample=p.bsds_downsample)
    model = _seeded(lambda: RVAE(p.model), p.train.seed if seed is None else seed)
    return model, p.train, dataset, data + "; bsds500/val held out, no Kodak"


def _lossy(preset_name: str, beta: float, distortion: str, limit: int | None, finetune: bool = False,
           crop_size: int | None = None, seed: int | None = None):
    from irec.models.vae2 import DOWNSAMPLING, TwoLevelVAE
    from irec.settings import lossy_preset

    p = lossy_preset(preset_name)
    crop = p.crop_size if crop_size is None else crop_size
    if crop < DOWNSAMPLING or crop % DOWNSAMPLING:
        raise ValueError(f"the lossy crop size must be a positive multiple of {DOWNSAMPLING}, got {crop}")
    if finetune and p.finetune is None:
        raise ValueError(f"the lossy {preset_name} preset has no fine-tuning settings; train every rate from scratch")
    dataset, data = photo_crops(crop, p.train.seed, limit)
    config = p.finetune if finetune else p.train
    model = _seeded(lambda: TwoLevelVAE(p.config(beta, distortion)), config.seed if seed is None else seed)
    return model, config, dataset, data


def build(kind: str, preset_name: str, beta: float = 0.01, distortion: str = "mse", limit: int | None = None,
          finetune: bool = False, crop_size: int | None = None, seed: int | None = None,
          kl_weight: float | None = None):
    """(model, TrainConfig, dataset, data description) for a kind of model and a preset.

    ``limit``: train on a seeded subset of that many photos per source (smoke runs; the lossy model and the lossless
    photos presets); the lossless CIFAR-10 presets always take their whole training set. ``finetune``: the preset's
    fine-tuning settings (lossy; a lossless photos preset's own settings are its fine-tuning settings, the CIFAR-10
    ones have none). ``crop_size``: the side of the training crops instead of the preset's (lossy: a multiple of 64;
    lossless photos presets: even). ``seed``: seeds the initial weights (None: the preset's ``TrainConfig.seed``).
    ``kl_weight``: the lossless model's ``RVAEConfig.kl_weight`` instead of the preset's (a run resumes only with the
    weight it started with: the model configuration must match).

    The lossless ``photos`` preset (paper Section 4.1 codes Kodak with the RVAE; method note Section 5) returns
    :func:`photo_crops` of BSDS500 train + test and Sun-Hays 80: BSDS500 val is held out, Kodak never trained on."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "lossless":
        return _lossless(preset_name, limit, finetune, crop_size, seed, kl_weight)
    if kl_weight is not None:
        raise ValueError("kl_weight is a setting of the lossless model; the lossy model weighs its rate by beta")
    return _lossy(preset_name, beta, distortion, limit, finetune, crop_size, seed)


def _start_from(model, init_from: str | Path, run_dir: Path) -> str:
    """Load the weights of ``init_from`` (a saved model or a shipped name) into ``model``, record where they came
    from in ``run_dir/init.json`` (path, fingerprint, steps); returns a description."""
    from irec.zoo import resolve_model

    source, fingerprint, info = resolve_model(init_from)
    if hasattr(source, "float_model"):  # an exact (shipped) model: train its float twin's weights
        source = source.float_model()
    if type(source) is not type(model):
        raise ValueError(f"cannot fine-tune a {type(model).__name__} from {init_from} (a {type(source).__name__})")
    try:
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    except RuntimeError as error:  # shapes differ: another preset
        raise ValueError(f"{init_from} has another architecture than this preset's model: {error}") from None
    # a conditioned p(x|z) may start from an independent one: its channel coefficients keep their zero start
    missing = [key for key in missing if not key.startswith("x_coeff.")]
    if missing or unexpected:
        raise ValueError(f"{init_from} has another architecture than this preset's model: missing {missing}, "
                         f"unexpected {unexpected}")
    steps = (read_model_info(info["path"]).get("extra") or {}).get("step") if info.get("path") else None
    where = Path(info.get("path", init_from)).resolve()
    where = where.relative_to(paths.REPO) if where.is_relative_to(paths.REPO) else where
    (run_dir / "init.json").write_text(json.dumps(
        {"path": str(where), "fingerprint": fingerprint, "steps": steps}, indent=1) + "\n")
    return f"fine-tuned from {where} (fingerprint {fingerprint[:16]})"


def train_model(kind: str, preset_name: str, run_dir: str | Path, *, beta: float = 0.01, distortion: str = "mse",
                limit: int | None = None, init_from: str | Path | None = None, crop_size: int | None = None,
                kl_weight: float | None = None, **overrides) -> TrainResult:
    """Train (or resume) one model into ``run_dir``; ``overrides`` replace TrainConfig fields (e.g. n_steps).

    ``init_from``: fine-tune the weights of that model (a ``model.pt`` path or a shipped name, e.g.
    ``lossless-cifar10`` for the lossless ``photos`` preset) with the preset's fine-tuning settings instead of
    training from scratch; a resumed run continues from its own checkpoint. ``kl_weight``: as :func:`build`'s."""
    model, config, dataset, data = build(kind, preset_name, beta, distortion, limit, finetune=init_from is not None,
                                         crop_size=crop_size, seed=overrides.get("seed"), kl_weight=kl_weight)
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "checkpoint.pt").is_file() and (run_dir / "data.txt").is_file():
        data = (run_dir / "data.txt").read_text().strip()  # resuming: the run started from what it recorded then
    else:
        if init_from is not None:
            data += "; " + _start_from(model, init_from, run_dir)
        (run_dir / "data.txt").write_text(data + "\n")
    log.info("training %s/%s on %s into %s (%d steps)", kind, preset_name, data, run_dir, config.n_steps)
    return train(model, None, dataset, config, run_dir)


def ship(run_dir: str | Path, name: str, preset: str, figures: dict | None = None) -> dict:
    """Quantize a finished run's ``model.pt`` into ``models/<name>.pt`` (exact, irec.models.exact) and record it in
    ``models/manifest.json``; the float weights stay in the run folder as the training state."""
    run_dir = Path(run_dir)
    source = run_dir / "model.pt"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist: the run has not finished (train it to the end first)")
    info = read_model_info(source)
    extra = info.get("extra") or {}
    kind = model_kind(info.get("model_class", ""))
    model_config = info.get("config", {})
    entry = {
        "name": name, "file": f"{name}.pt", "kind": kind,
        **_save_exact(source, paths.SHIPPED_MODELS / f"{name}.pt", kind, info),
        "preset": preset, "beta": model_config.get("beta"), "kl_weight": model_config.get("kl_weight"),
        "steps": extra.get("step"), "weights": extra.get("weights"),
        "finetuned_from": json.loads(origin.read_text()) if (origin := run_dir / "init.json").is_file() else None,
        "data": (run_dir / "data.txt").read_text().strip() if (run_dir / "data.txt").is_file() else "",
        "git_commit": provenance.git_commit(), "figures": figures or {},
    }
    manifest = json.loads(_manifest_path().read_text())
    manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]
    _write_manifest(manifest)
    return entry


def quantize_shipped(name: str) -> dict:
    """Replace the float shipped model ``name`` by its exact form (irec.models.quantize) and update its manifest
    entry: file sha256, fingerprint, ``weights_format`` and ``quantized_from`` (the float weights' fingerprint, whose
    file stays in git history). Its figures are the float model's until the reference run measures them again."""
    manifest = json.loads(_manifest_path().read_text())
    entry = next((m for m in manifest["models"] if m["name"] == name), None)
    if entry is None:
        raise ValueError(f"no shipped model named {name!r}")
    target = paths.SHIPPED_MODELS / entry["file"]
    if entry.get("weights_format", "").startswith("exact"):
        return entry  # already exact
    entry.update(_save_exact(target, target, entry["kind"], read_model_info(target)))
    _write_manifest(manifest)
    return entry


def _save_exact(source: Path, target: Path, kind: str, info: dict) -> dict:
    """Quantize the saved float model ``source`` (``info``: its read_model_info) into ``target``
    (irec.models.quantize, its ``extra`` kept, with ``quantized_from``); the manifest fields of the written file."""
    model, float_fingerprint = load_model(source)
    exact = as_exact(model, kind)
    fingerprint = save_model(exact, target, extra={**(info.get("extra") or {}), "quantized_from": float_fingerprint})
    return {"sha256": hashlib.sha256(target.read_bytes()).hexdigest(), "fingerprint": fingerprint,
            "weights_format": f"exact, int{exact.config.weight_bits}", "quantized_from": float_fingerprint}


def _manifest_path() -> Path:
    return paths.SHIPPED_MODELS / "manifest.json"


def _write_manifest(manifest: dict) -> None:
    with atomic_write(_manifest_path(), "w") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
