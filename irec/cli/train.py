"""``irec train`` and ``irec ship``: train the paper's models (resumably), and ship a trained one into models/.

Paper, section 4; presets in :mod:`irec.settings` (``paper``, ``cpu``, ``smoke``; for the lossless model also
``photos``, which fine-tunes a model given with ``--init-from``, e.g. ``lossless-cifar10``, on crops of natural
photos for Kodak: tools/cpu_train.sh runs it in the background and compares it with the shipped model).
Training resumes from ``RUN_DIR/checkpoint.pt`` when it exists, so an interrupted command loses nothing: run it
again. For several processes: ``torchrun --nproc_per_node=2 -m irec train ...``.
"""

from __future__ import annotations

import argparse
import json

from irec.settings import LOSSLESS_PRESETS, LOSSY_PRESETS
from irec.training.runs import KINDS, ship, train_model


def preset_names() -> list[str]:
    """Every preset name of either kind, read from the presets dicts when the parser is built; the kind's own lookup
    (irec.settings.lossless_preset / lossy_preset) refuses a name of the other kind with the list of its own."""
    return sorted(set(LOSSLESS_PRESETS) | set(LOSSY_PRESETS))


def _train(args: argparse.Namespace) -> int:
    result = train_model(
        args.kind, args.preset, args.run_dir, beta=args.beta, distortion=args.distortion, limit=args.limit,
        n_steps=args.steps, init_from=args.init_from, max_seconds=args.max_seconds, num_threads=args.threads,
        crop_size=args.crop_size, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        kl_weight=args.kl_weight,
    )
    state = "finished" if result.finished else "stopped early (run the same command again to resume)"
    print(f"{state} at step {result.step}; model: {result.model_path}; fingerprint {result.fingerprint}")
    return 0


def _ship(args: argparse.Namespace) -> int:
    figures = json.loads(args.figures) if args.figures else None
    entry = ship(args.run_dir, args.name, args.preset, figures)
    print(json.dumps(entry, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a lossless (RVAE) or lossy (two-level VAE) model, resumably",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, help="lossless: the bidirectional ResNet VAE; lossy: the two-level VAE")
    p.add_argument("run_dir", help="folder for checkpoint.pt, model.pt (EMA weights), config.json and TensorBoard logs")
    p.add_argument("--preset", default="cpu", choices=preset_names(), help=(
        "model and training settings (irec.settings; lossless only: photos, which fine-tunes a model given with "
        "--init-from on natural-photo crops)"))
    p.add_argument("--beta", type=float, default=0.01, help="lossy: the rate-distortion weight beta (the lambda of the paper's plots)")
    p.add_argument("--distortion", default="mse", choices=("mse", "ms_ssim"), help="lossy: the distortion measure")
    p.add_argument("--init-from", metavar="MODEL", help=(
        "fine-tune this model (a run's model.pt or a shipped name) with the preset's fine-tuning settings "
        "instead of training from scratch: lossy (the cpu preset fine-tunes every rate from one base model), or "
        "lossless with a photos preset (--preset photos --init-from lossless-cifar10)"))
    p.add_argument("--steps", type=int, help="override the preset's number of steps")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--lr", type=float, help=(
        "override the preset's learning rate (a run keeps the rate it started with: resuming with another refuses)"))
    p.add_argument("--crop-size", type=int, help=(
        "side of the training crops instead of the preset's: lossy, a multiple of 64 (the cpu preset's 128 leaves "
        "z2 a 2x2 grid, and its models code z2 at 10x the rate on whole Kodak images: 256 fixes that); lossless "
        "photos presets, even"))
    p.add_argument("--kl-weight", type=float, help=(
        "lossless: weight of the KL in the loss instead of the preset's (RVAEConfig.kl_weight; 1 trains the ELBO; a "
        "run resumes only with the weight it started with)"))
    p.add_argument("--max-seconds", type=float, help="stop (resumably) after this many seconds")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--seed", type=int, help=(
        "override the preset's seed, which sets the initial weights, the data order and the noise (a run is a "
        "function of its settings)"))
    p.add_argument("--limit", type=int, help=(
        "lossy and lossless photos presets: a seeded subset of this many photos per source (smoke runs)"))
    p.set_defaults(func=_train)

    s = subparsers.add_parser("ship", help="copy a trained run's model.pt into models/ and add it to the manifest")
    s.add_argument("run_dir", help="a run folder written by 'irec train'")
    s.add_argument("name", help="the model's name, e.g. lossless-cifar10 or lossy-mse-0.01")
    s.add_argument("--preset", required=True, help="the preset it was trained with (recorded in the manifest)")
    s.add_argument("--figures", help='measured figures as JSON, e.g. \'{"cifar10_bpd": 4.6}\' (with their command)')
    s.set_defaults(func=_ship)
