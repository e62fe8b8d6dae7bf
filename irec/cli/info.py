"""The ``irec info`` command: the shipped and cached models, one model's registry entry, or an .irec file's header.

Paper, section 3 (what a file holds: the model, the image size, the coder's N, block sizes and seed); a tiled
lossless file (:mod:`irec.codecs.tiles`) shows its tile size and count too. The tables are laid out by
:mod:`irec.cli.report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from irec import zoo
from irec.cli import report
from irec.cli.codec import RAW, _read_file, _text
from irec.codecs.container import PIN_DETERMINISTIC, PIN_EXACT, PIN_ONE_THREAD, unpack
from irec.codecs.tiles import is_tiled
from irec.codecs.tiles import unpack as unpack_tiles
from irec.coder.latent_codec import read_coder_params

PIN_NAMES = {PIN_ONE_THREAD: "one-thread", PIN_DETERMINISTIC: "deterministic", PIN_EXACT: "exact-integer-networks"}


def describe_file(data: bytes) -> dict:
    """The header of an irec file: kind, model fingerprint, image size, coder N / block size / seed, bytes; for a
    tiled file also its tile size and count (the coder setting and pinning from its first tile)."""
    if is_tiled(data):
        tiled, tiles = unpack_tiles(data)
        first = describe_file(tiles[0])
        first.update(height=tiled.height, width=tiled.width, bytes=len(data),
                     bpd=8 * len(data) / (3 * tiled.height * tiled.width))
        return {"kind": tiled.kind, "fingerprint": tiled.fingerprint.hex(), "height": tiled.height,
                "width": tiled.width, "tile_size": tiled.tile_size, "tiles": tiled.n_tiles,
                **{k: v for k, v in first.items() if k not in ("kind", "fingerprint", "height", "width")}}
    header, r = unpack(data)
    params, _, block_sizes = read_coder_params(r)
    return {
        "kind": header.kind, "fingerprint": header.fingerprint.hex(), "height": header.height, "width": header.width,
        "n_candidates": params.n_candidates, "seed": params.seed, "sampler": params.sampler,
        "block_size": block_sizes[0] if len(set(block_sizes)) == 1 else [str(n) for n in block_sizes],
        "levels": len(block_sizes), "pinned": [name for flag, name in PIN_NAMES.items() if header.pinned & flag],
        "bytes": len(data), "bpd": 8 * len(data) / (3 * header.height * header.width),
    }


def _info(args: argparse.Namespace) -> int:
    if args.file and not Path(args.file).is_file():
        entry = next((m for m in zoo.list_models() if m["name"] == args.file), None)
        if entry is None:
            raise FileNotFoundError(f"no such file or model: {args.file} (irec info lists the models)")
        print(report.model_entry(entry))
        return 0
    if args.file:
        for key, value in describe_file(_read_file(args.file)).items():
            shown = ", ".join(value) if isinstance(value, list) else value
            shown = f"{shown:.4f}" if isinstance(shown, float) else shown
            print(f"{key:>13}: {shown}")
        return 0
    models = zoo.list_models()
    if not models:
        print("no shipped or cached models (place saved models in $IREC_CACHE/models, or train one)")
        return 0
    print(report.models_table(models))
    return 0


def register(subparsers) -> None:
    """Add the info command."""
    p = subparsers.add_parser("info", help="list the shipped and cached models, or describe a model or an .irec file",
                              formatter_class=RAW, description=_text(
        "Without an argument: a table of the shipped and cached models, one line each: name, kind, source "
        "(shipped in models/ or cached in $IREC_CACHE/models), the first 8 hex digits of the weights' fingerprint "
        "(the one an .irec file's header holds), training steps (base+fine-tuning) and the key measured figures "
        "(lossless: CIFAR-10 test bpd and -ELBO; lossy: Kodak bpp and PSNR).",
        "With a model's name: its whole registry entry (models/manifest.json for a shipped model), figures and how "
        "they were measured included. With an .irec file: its header (kind, model fingerprint, image size, coder "
        "setting, bytes and bpd; for a tiled file, its tile size and count too)."))
    p.add_argument("file", nargs="?", default=None, help="an .irec file or a model's name (omit to list the models)")
    p.set_defaults(func=_info)
