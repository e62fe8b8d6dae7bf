"""The ``irec compress`` and ``irec decompress`` commands: real iREC files from the command line.

Paper, section 3 (what a file holds) and docs/irec-method.md section 4 (real files, real decoders; the
real rate reported beside the ideal one). The codec class comes from :data:`irec.codecs.CODECS` by the model's or
the file's kind and is imported only when needed, so each codec works without the other.

``irec compress`` / ``irec decompress`` take one input and one output file, or several inputs or a folder of them
and an output folder (one file per input, same stem: ``.irec`` for compress, ``.png`` for decompress), coded by
``--workers`` processes (:mod:`irec.evaluation.parallel`; default one per available core), each loading the model
once; the files are the same whatever the count. What they print (the same report for both kinds, the model
table) is laid out by :mod:`irec.cli.report`; ``-q`` prints nothing on success.

An image larger than a lossless codec's tile size (``irec compress --tile-size``) is coded as a tiled file
(:mod:`irec.codecs.tiles`); for one such image, ``--workers`` above 1 codes its tiles in that many processes.
``irec decompress --salvage`` writes what the intact tiles of a damaged tiled file give (the damaged ones filled
with zeros), names the lost tiles on stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from irec import zoo
from irec.codecs import make_codec
from irec.codecs.container import CorruptStreamError, WrongModelError
from irec.codecs.tiles import check_tile_size, describe_box, is_tiled, peek
from irec.codecs.encoding import Encoding
from irec.data import read_image, write_png
from irec.data.datasets import IMAGE_SUFFIXES
from irec.cli import report
from irec.fileio import atomic_write
from irec.metrics import ms_ssim, ms_ssim_unavailable_reason, psnr

log = logging.getLogger(__name__)

# Coder options of `irec compress`: (flag, CoderParams field, type, help)
CODER_OPTIONS = (
    ("--n-beams", "n_beams", int, "B, beams kept by the search"),
    ("--extra-samples", "extra_samples", float, "1+eps: N = floor(exp(extra_samples * kl_per_step)) candidates"),
    ("--kl-per-step", "kl_per_step", float, "Omega, nats of KL per auxiliary step"),
    ("--block-size", "block_size", int, "latent dimensions per block (the most, with --steps-per-block)"),
    ("--steps-per-block", "steps_per_block", float, "adaptive blocks: about this many steps K_b each; 0: fixed"),
    ("--seed", "seed", int, "seed of the shared randomness (recorded in the file)"),
    ("--ignore-kl-below", "ignore_kl_below", float,
     "leave dimensions whose KL is below this many nats out of the search's scores (encoder only; 0: score all)"),
)


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def _read_file(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p.read_bytes()


# ------------------------------------------------------------------------------------------------------ commands
def _pairs(inputs: list[str], output: str, suffix: str, wanted: tuple[str, ...]) -> list[tuple[Path, Path]] | None:
    """(input, output) file pairs when coding several files: several inputs, or a folder (its files with a suffix in
    ``wanted``, recursively), into the folder ``output`` with ``suffix``; None for one input file and one output."""
    if len(inputs) == 1 and not Path(inputs[0]).is_dir():
        return None
    files: list[Path] = []
    for name in map(Path, inputs):
        if name.is_dir():
            files += [p for p in sorted(name.rglob("*"), key=lambda p: p.relative_to(name).as_posix())
                      if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")]
        elif name.is_file():
            files.append(name)
        else:
            raise FileNotFoundError(f"no such file or folder: {name}")
    if not files:
        raise ValueError(f"no input files ({', '.join(wanted)}) in {', '.join(inputs)}")
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise ValueError(f"several inputs share the name(s) {twice[:5]}; each output file is named by its input's stem")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; several inputs go into an output folder")
    out.mkdir(parents=True, exist_ok=True)
    return [(p, out / f"{p.stem}{suffix}") for p in files]


def _compress(args: argparse.Namespace) -> int:
    overrides = {field: getattr(args, field) for _, field, _, _ in CODER_OPTIONS if getattr(args, field) is not None}
    if args.tile_size is not None:
        check_tile_size(args.tile_size)
    pairs = _pairs(args.input, args.output, ".irec", IMAGE_SUFFIXES)
    build = functools.partial(_codec_only, args.model, overrides, args.refine_steps, args.tile_size)
    if pairs is None:
        codec, info = make_codec(args.model, overrides, refine_steps=args.refine_steps)
        codec = _with_tile_size(codec, args.tile_size, info["name"])
        tiled = "tile_map" in inspect.signature(codec.encode).parameters
        tile_map = _tile_pool(build, codec, args.workers, args.quiet) if args.workers > 1 and tiled else None
        done = _compress_one(codec, (Path(args.input[0]), Path(args.output), args.verify, info["name"]), tile_map)
        if not args.quiet:
            print(done.report())
        log.info("model %s (%s), coder %s", info["name"], info["source"], codec.params)
        return 0
    local = [build()] if args.workers == 1 else None
    jobs = [(0, (src, dst, args.verify, None)) for src, dst in pairs]
    return _run_all(_compress_one, jobs, [build], args, local, "irec compress")


def _codec_only(model: str, overrides: dict, refine_steps: int | None, tile_size: int | None = None):
    """A worker's codec for ``irec compress`` (module-level, so that it pickles)."""
    codec, info = make_codec(model, overrides, refine_steps=refine_steps)
    return _with_tile_size(codec, tile_size, info["name"])


def _with_tile_size(codec, tile_size: int | None, name: str):
    """``codec`` with ``--tile-size`` (None: as it is); a ValueError for a codec without tiles (lossy)."""
    if tile_size is None:
        return codec
    if "tile_size" not in inspect.signature(type(codec)).parameters:
        raise ValueError(f"--tile-size applies to lossless models; {name} is a {codec.kind} model")
    return type(codec)(codec.model, codec.fingerprint, codec.params, tile_size=tile_size)


def _decoder_only(model: str, kind: str):
    """A worker's codec for ``irec decompress`` of one tiled file (module-level, so that it pickles)."""
    return make_codec(model, kind=kind)[0]


def _tile_pool(build, codec, workers: int, quiet: bool):
    """A ``tile_map`` coding one image's tiles in ``workers`` processes (irec.evaluation.parallel.TilePool), with a
    progress bar on a terminal unless quiet."""
    from irec.evaluation.parallel import TilePool

    return TilePool(build, codec, workers, progress=sys.stderr.isatty() and not quiet)


def _compress_one(codec, item: tuple[Path, Path, bool, str | None], tile_map=None) -> report.Compressed:
    """Code one image file into ``output`` (verified first unless told not to); what its report shows."""
    source, output, verify, model = item
    image = read_image(source)
    encoding = codec.encode(image, tile_map=tile_map) if tile_map is not None else codec.encode(image)
    if verify:
        _verify(codec, encoding, tile_map)
    _write_atomic(output, encoding.data)
    kind = peek(encoding.data).kind
    quality, notes = {}, ()
    if kind == "lossy":
        quality["psnr_db"] = psnr(image, encoding.image)
        if ms_ssim_unavailable_reason(image.shape) is None:
            quality["ms_ssim"] = ms_ssim(image, encoding.image)
        if encoding.details.get("low_rate"):
            p = encoding.params
            notes = (f"the low-rate setting (Omega {p.kl_per_step:g}, B {p.n_beams}, N {p.n_candidates})",)
    elbo = encoding.details.get("negative_elbo_bpd")
    return report.Compressed(
        output=str(output), source=str(source), kind=kind, height=encoding.image.shape[0],
        width=encoding.image.shape[1], n_bytes=encoding.n_bytes, bits=dict(encoding.bits),
        ideal_bits=dict(encoding.ideal_bits), seconds=encoding.encode_seconds, verified=verify, model=model,
        negative_elbo_bpd=None if elbo is None else float(elbo), notes=notes, **quality)


class _Failed(str):
    """The line of a file that could not be coded (one bad file does not stop a folder)."""


def _run_all(task, jobs: list, builders: list, args: argparse.Namespace, local, desc: str) -> int:
    """Run the jobs of several files (irec.evaluation.parallel), printing each one's line in order (unless
    ``--quiet``) and a summary; 1 if any failed (each failure is printed, the other files are still coded)."""
    from irec.evaluation.parallel import imap_ordered

    start, done, failed = time.perf_counter(), [], 0
    progress, damaged = sys.stderr.isatty() and not args.quiet, 0
    for result in imap_ordered(_guarded, [(i, (task, item)) for i, item in jobs], builders, workers=args.workers,
                               local=local, desc=desc, unit="file", progress=progress):
        if isinstance(result, _Failed):
            failed += 1
            print(result)
            continue
        done.append(result)
        if not args.quiet:
            print(result.line())
        if getattr(result, "damaged", ()):
            damaged += 1
            print(result.damage_report(), file=sys.stderr)
    seconds = time.perf_counter() - start
    if not args.quiet:
        if task is _compress_one:
            print(report.compress_summary(done, len(jobs), seconds))
        else:
            print(report.decompress_summary(done, len(jobs), args.output, seconds))
    if failed:
        print(f"{failed} of {len(jobs)} file(s) failed", file=sys.stderr)
    return 1 if failed or damaged else 0


def _guarded(state, job: tuple):
    """``task(state, item)``, or a FAILED line naming the file and the error (one bad file does not stop a folder)."""
    task, item = job
    try:
        return task(state, item)
    except (VerificationError, CorruptStreamError, WrongModelError, ValueError, OSError) as err:
        return _Failed(f"FAILED {item[0]}: {err}")


class VerificationError(ValueError):
    """The file just written does not decode to what the encoder meant; it is not kept."""


def _verify(codec, encoding: Encoding, tile_map=None) -> None:
    """Decode the file as ``irec decompress`` would and require exactly the encoder's image (lossless: the input)."""
    try:
        decoded = codec.decompress(encoding.data, tile_map=tile_map) if tile_map else codec.decompress(encoding.data)
    except (CorruptStreamError, WrongModelError) as err:
        raise VerificationError(f"the file does not decode ({err}); nothing was written") from err
    if decoded.shape != encoding.image.shape or not np.array_equal(decoded, encoding.image):
        raise VerificationError("the file decodes to other pixels than the encoder's; nothing was written")


def _decompress(args: argparse.Namespace) -> int:
    pairs = _pairs(args.input, args.output, ".png", (".irec",))
    if pairs is None:
        decoders = _Decoders(args.model, args.workers, args.quiet)
        done = _decompress_one(decoders, (Path(args.input[0]), Path(args.output), args.salvage))
        if not args.quiet:
            print(done.line())
        if done.damaged:
            print(done.damage_report(), file=sys.stderr)
            return 1
        return 0
    build = functools.partial(_Decoders, args.model)
    jobs = [(0, (*pair, args.salvage)) for pair in pairs]
    return _run_all(_decompress_one, jobs, [build], args, None, "irec decompress")


class _Decoders:
    """The codecs that decode files, one per model, made when a file first needs it (``model``: the one to use;
    None: found by each file's fingerprint, ordinary or tiled). ``workers`` above 1: a tiled file's tiles are
    decoded in that many processes (for one file; a folder's files are shared among the workers instead)."""

    def __init__(self, model: str | None, workers: int = 1, quiet: bool = True) -> None:
        self.model, self.codecs, self.workers, self.quiet = model, {}, workers, quiet

    def codec(self, data: bytes):
        header = peek(data)
        ref = self.model or str(zoo.find_by_fingerprint(header.fingerprint))
        if (ref, header.kind) not in self.codecs:
            self.codecs[ref, header.kind] = make_codec(ref, kind=header.kind)
        return self.codecs[ref, header.kind]

    def tile_map(self, data: bytes, codec):
        """A process pool's ``tile_map`` for a tiled file when ``workers`` > 1, else None (this process)."""
        if self.workers <= 1 or not is_tiled(data):
            return None
        header = peek(data)
        ref = self.model or str(zoo.find_by_fingerprint(header.fingerprint))
        return _tile_pool(functools.partial(_decoder_only, ref, header.kind), codec, self.workers, self.quiet)


def _decompress_one(decoders: _Decoders, item: tuple[Path, Path, bool]) -> report.Decompressed:
    """Decode one .irec file into the PNG ``output`` (``salvage``: a tiled file's damaged tiles filled with zeros
    rather than an error); what its line shows."""
    source, output, salvage = item
    data = _read_file(source)
    codec, info = decoders.codec(data)
    tile_map = decoders.tile_map(data, codec)
    options = {"tile_map": tile_map} if tile_map is not None else {}
    start = time.perf_counter()
    damaged = []
    if salvage and hasattr(codec, "decompress_salvaging"):
        image, damaged = codec.decompress_salvaging(data, **options)
    else:
        image = codec.decompress(data, **options)
    seconds = time.perf_counter() - start
    write_png(output, image)
    boxes = peek(data).boxes if is_tiled(data) else [(0, image.shape[0], 0, image.shape[1])]
    return report.Decompressed(output=str(output), source=str(source), height=image.shape[0], width=image.shape[1],
                               model=info["name"], seconds=seconds, tiles=len(boxes),
                               damaged=tuple(f"tile {boxes.index(box)} ({describe_box(box)})" for box in damaged))


def _text(*paragraphs: str) -> str:
    """A --help description: paragraphs filled to 100 columns (shown as written: RawDescriptionHelpFormatter)."""
    return "\n\n".join(textwrap.fill(p, 100) for p in paragraphs)


RAW = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    """Add the compress and decompress commands."""
    p = subparsers.add_parser("compress", help="code an 8-bit RGB image into an .irec file", formatter_class=RAW,
                              description=_text(
        "Code an 8-bit RGB image into an .irec file with a model's codec. The coder options change the codec's "
        "default setting; the lossy codec's default codes low-rate images with Omega = 7 and larger blocks "
        "(irec.settings.LOSSY_LOW_RATE), and any coder option codes every image with that one setting.",
        "Output, the same for both kinds: the file and its size; the real rate from the file's length beside the "
        "ideal rate (KL of the latents, and -log2 p(x|z) of the pixels for lossless), in bits per dimension (bpd) "
        "for lossless and bits per pixel (bpp) for lossy; the real and ideal bits of each part of the file (header, "
        "the latent levels, lossless pixels, the coder's tail; many latent levels are summed into 'latents'); the "
        "-ELBO (lossless) or PSNR and, for images over 160 pixels a side, MS-SSIM (lossy); the encode time and "
        "whether the file was verified. For several files: one line each, then the files, total bytes, mean rate "
        "and elapsed time."))
    p.add_argument("input", nargs="+", help=(
        "8-bit RGB image (PNG or any format Pillow reads); or several, or a folder of them (recursively)"))
    p.add_argument("output", help="the .irec file to write; for several inputs, the folder to write <stem>.irec into")
    p.add_argument("--model", required=True, help="shipped or cached model name (irec info lists them), or a saved "
                   "model path")
    for flag, field, typ, text in CODER_OPTIONS:
        old = ("--kl-per-block",) if field == "kl_per_step" else ()  # the deprecated name, still accepted
        p.add_argument(flag, *old, dest=field, type=typ, default=None, help=f"{text} (default: the codec's)")
    p.add_argument("--refine-steps", type=int, default=None, help=(
        "the encoder's refinement of the posterior before coding it (irec.codecs.refine; 0: code the model's own "
        "posterior, as the paper; default: the codec's): lossy models, gradient steps on q(z1)'s mean (default 6); "
        "lossless models, Adam steps on every level's posterior (default 0; 30 code photos in about 0.9%% fewer bits "
        "for 2.1 times the encode time). Files decode the same way either way"))
    p.add_argument("--tile-size", type=int, default=None, help=(
        "lossless models: an image larger than this many pixels on either side is coded as independent tiles of "
        "at most this size, in a tiled file (even, >= 2; default: the codec's, 256); each tile decodes on its own, "
        "so a damaged byte loses one tile, and --workers above 1 codes one image's tiles in parallel"))
    p.add_argument("--no-verify", dest="verify", action="store_false", help=(
        "skip decoding the file before writing it (by default a file that does not decode to exactly the encoder's "
        "image is refused and nothing is written)"))
    _workers_option(p)
    _quiet_option(p, "the report (errors and failed files are still shown)")
    p.set_defaults(func=_compress)

    p = subparsers.add_parser("decompress", help="decode an .irec file into a PNG", formatter_class=RAW,
                              description=_text(
        "Decode an .irec file into a PNG with the model that wrote it, found by the fingerprint in the file's header "
        "among the shipped and cached models (or the one --model names).",
        "Output: the PNG written, the image's size, the file and model it came from and the decode time (the "
        "model's loading not included). For several files: one line each, then a summary."))
    p.add_argument("input", nargs="+", help="the .irec file; or several, or a folder of them (recursively)")
    p.add_argument("output", help="the PNG to write; for several inputs, the folder to write <stem>.png into")
    p.add_argument("--model", default=None, help="model name or path (default: found by the file's fingerprint)")
    p.add_argument("--salvage", action="store_true", help=(
        "a tiled file with damaged tiles: write the image anyway, the damaged tiles filled with zeros, name them on "
        "stderr and exit with 1 (without it a damaged file is an error and nothing is written)"))
    _workers_option(p)
    _quiet_option(p, "what was written (errors and failed files are still shown)")
    p.set_defaults(func=_decompress)


def _quiet_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=f"print nothing on success: no {what}")


def _workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=0, help=(
        "for several files: worker processes, each loading the model once (default 0: one per available core; 1: "
        "this process); for one image in tiles, above 1: its tiles are coded by that many processes (0 and 1: in "
        "this process); the files are the same whatever the count"))
