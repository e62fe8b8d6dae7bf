"""The ``irec compress``, ``irec decompress`` and ``irec info`` commands: real iREC files from the command line.

Paper, section 3 (what a file holds) and docs/irec-method.md section 4 (real files, real decoders; the
real rate reported beside the ideal one). The codec class comes from :data:`irec.codecs.CODECS` by the model's or
the file's kind and is imported only when needed, so each codec works without the other.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from irec import zoo
from irec.codecs import codec_class, make_codec
from irec.codecs.container import (
    FINGERPRINT_BYTES,
    PIN_DETERMINISTIC,
    PIN_FLOAT32,
    PIN_ONE_THREAD,
    CorruptStreamError,
    WrongModelError,
    peek_header,
    unpack,
)
from irec.codecs.encoding import Encoding
from irec.coder.latent_codec import read_coder_params
from irec.data import read_image, write_png
from irec.fileio import atomic_write

log = logging.getLogger(__name__)

# Coder options of `irec compress`: (flag, CoderParams field, type, help)
CODER_OPTIONS = (
    ("--n-beams", "n_beams", int, "B, beams kept by the search"),
    ("--extra-samples", "extra_samples", float, "1+eps: N = floor(exp(extra_samples * kl_per_step)) candidates"),
    ("--kl-per-step", "kl_per_step", float, "Omega, nats of KL per auxiliary step"),
    ("--block-size", "block_size", int, "latent dimensions per block (the most, with --steps-per-block)"),
    ("--steps-per-block", "steps_per_block", float, "adaptive blocks: about this many steps K_b each; 0: fixed"),
    ("--seed", "seed", int, "seed of the shared randomness (recorded in the file)"),
)
PIN_NAMES = {PIN_ONE_THREAD: "one-thread", PIN_DETERMINISTIC: "deterministic", PIN_FLOAT32: "float32-cpu-batch1"}


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def _read_file(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p.read_bytes()


# ------------------------------------------------------------------------------------------------------ commands
def _compress(args: argparse.Namespace) -> int:
    image = read_image(args.input)
    overrides = {field: getattr(args, field) for _, field, _, _ in CODER_OPTIONS if getattr(args, field) is not None}
    codec, info = make_codec(args.model, overrides, refine_steps=args.refine_steps)
    encoding = codec.encode(image)
    if args.verify:
        _verify(codec, encoding)
    _write_atomic(Path(args.output), encoding.data)
    print(f"{args.output}: {describe_encoding(encoding)}" + ("" if args.verify else " (not verified: --no-verify)"))
    log.info("model %s (%s), coder %s", info["name"], info["source"], encoding.params)
    return 0


class VerificationError(ValueError):
    """The file just written does not decode to what the encoder meant; it is not kept."""


def _verify(codec, encoding: Encoding) -> None:
    """Decode the file as ``irec decompress`` would and require exactly the encoder's image (lossless: the input)."""
    try:
        decoded = codec.decompress(encoding.data)
    except (CorruptStreamError, WrongModelError) as err:
        raise VerificationError(f"the file does not decode ({err}); nothing was written") from err
    if decoded.shape != encoding.image.shape or not np.array_equal(decoded, encoding.image):
        raise VerificationError("the file decodes to other pixels than the encoder's; nothing was written")


def describe_encoding(encoding: Encoding) -> str:
    """What a file cost, the same for both kinds: the real rate and its bits per part, the ideal rate and its bits
    per part (labelled ideal), the codec's scalar extras (e.g. the lossless -ELBO) and the encode time."""
    real = ", ".join(f"{part} {bits:,.1f}" for part, bits in encoding.bits.items())
    ideal = ", ".join(f"{part} {bits:,.1f}" for part, bits in encoding.ideal_bits.items())
    extras = "".join(f"; {key} {value:.4f}" if isinstance(value, float) else f"; {key} {value}"
                     for key, value in encoding.details.items() if isinstance(value, (bool, int, float)))
    return (f"{encoding.n_bytes} bytes, real {encoding.bpd:.4f} bpd ({encoding.bpp:.4f} bpp) = bits {real}; "
            f"ideal {encoding.ideal_bpd:.4f} bpd ({encoding.ideal_bpp:.4f} bpp) = bits {ideal} (KL of each latent "
            f"level, -log2 p(x|z) of any pixels){extras}; encoded in {encoding.encode_seconds:.2f} s")


def _decompress(args: argparse.Namespace) -> int:
    data = _read_file(args.input)
    header = peek_header(data)
    model_ref = args.model or str(zoo.find_by_fingerprint(header.fingerprint))
    codec, info = make_codec(model_ref, kind=header.kind)
    write_png(args.output, codec.decompress(data))
    log.info("decoded %s with model %s into %s", args.input, info["name"], args.output)
    return 0


def describe_file(data: bytes) -> dict:
    """The header of an irec file: kind, model fingerprint, image size, coder N / block size / seed, bytes."""
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
    if args.file:
        for key, value in describe_file(_read_file(args.file)).items():
            shown = ", ".join(value) if isinstance(value, list) else value
            shown = f"{shown:.4f}" if isinstance(shown, float) else shown
            print(f"{key:>13}: {shown}")
        return 0
    models = zoo.list_models()
    if not models:
        print("no shipped or cached models (place saved models in $IREC_CACHE/models, or train one)")
    for m in models:
        base = (m.get("finetuned_from") or {}).get("steps")
        steps = f"{base} + {m.get('steps')} fine-tuning" if base else m.get("steps")
        trained = f"preset {m['preset']}, {steps} steps" if m.get("preset") and m.get("steps") else ""
        figures = ", ".join(f"{k}={v}" for k, v in (m.get("figures") or {}).items())
        print(f"{m['name']:<24} {m['source']:<8} {m['kind']:<9} {str(m.get('fingerprint', ''))[:2 * FINGERPRINT_BYTES]}"
              f"  {trained}  {figures}".rstrip())
    return 0


def register(subparsers) -> None:
    """Add the compress, decompress and info commands."""
    p = subparsers.add_parser("compress", help="code an 8-bit RGB image into an .irec file", description=(
        "Code an 8-bit RGB image into an .irec file with a model's codec. The coder options change the codec's default "
        "setting; the lossy codec's default codes low-rate images with Omega = 7 and larger blocks "
        "(irec.settings.LOSSY_LOW_RATE), and any coder option codes every image with that one setting."))
    p.add_argument("input", help="8-bit RGB image (PNG or any format Pillow reads)")
    p.add_argument("output", help="the .irec file to write")
    p.add_argument("--model", required=True, help="shipped or cached model name, or a saved model path")
    for flag, field, typ, text in CODER_OPTIONS:
        old = ("--kl-per-block",) if field == "kl_per_step" else ()  # the deprecated name, still accepted
        p.add_argument(flag, *old, dest=field, type=typ, default=None, help=f"{text} (default: the codec's)")
    p.add_argument("--refine-steps", type=int, default=None, help=(
        "lossy models: gradient steps refining q(z1)'s mean before coding it (irec.codecs.refine; 0: code the "
        "model's own posterior, as the paper; default: the codec's)"))
    p.add_argument("--no-verify", dest="verify", action="store_false", help=(
        "skip decoding the file before writing it (by default a file that does not decode to exactly the encoder's "
        "image is refused and nothing is written)"))
    p.set_defaults(func=_compress)

    p = subparsers.add_parser("decompress", help="decode an .irec file into a PNG")
    p.add_argument("input", help="the .irec file")
    p.add_argument("output", help="the PNG to write")
    p.add_argument("--model", default=None, help="model name or path (default: found by the file's fingerprint)")
    p.set_defaults(func=_decompress)

    p = subparsers.add_parser("info", help="list the shipped and cached models, or describe an .irec file")
    p.add_argument("file", nargs="?", default=None, help="an .irec file (omit to list the models)")
    p.set_defaults(func=_info)
