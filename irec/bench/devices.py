"""``python -m irec.bench devices``: do files written on one machine decode exactly on another, and how far does
the synthesis network move on a GPU?

The decoders' networks compute in exact integer arithmetic (:mod:`irec.models.exact`), so a file must decode to
exactly the encoder's pixels on any machine; this benchmark checks it (results in docs/cross-device.md). iREC
paper, sections 3 and 4, and docs/irec-method.md section 4 (real files, exact decoders). Two halves, run on two
machines::

    python -m irec.bench devices write --model lossy-mse-0.01 --dataset kodak --images 4 --out DIR
    python -m irec.bench devices check DIR

``matrix`` does both on this one machine: it writes the files with the default kernels, then checks them in a fresh
process under each of :data:`VARIATIONS`, which make PyTorch and oneDNN run the kernels another CPU would
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``) or split reductions over another number of threads::

    python -m irec.bench devices matrix --model lossless-cifar10 --dataset cifar10 --split test --images 4

``write`` encodes the images into ``DIR/<model>/<image>.irec``, keeps each source image beside its file as a PNG,
and records in ``DIR/manifest.csv`` the sha256 of every file and of its decoded pixels, with the machine, torch
and numpy that wrote it. ``check`` (another machine, or at least another process) decodes every file of the
manifest and compares the pixels' sha256 (``decode_exact``), encodes the source images again and compares the
files' sha256 (``same_bytes``: the two encoders agree), and, where CUDA is available, runs the lossy model's
exact synthesis network on the decoded z1 on the GPU and reports whether that image is the file's (CPU)
reconstruction (``gpu_exact``). The rows go to ``results/bench/devices.csv``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from irec import metrics, provenance
from irec.codecs import make_codec
from irec.codecs.lossy import synthesized_image
from irec.data import load_images, pixel_sha256, read_image, write_png
from irec.paths import RESULTS
from irec.evaluation.results import read_rows, write_rows
from irec.timing import measure

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
# What another machine would compute, reproduced on this one: each variation checks the files in a fresh process
# with these environment variables (on top of one thread for numba and OpenMP unless it sets them).
VARIATIONS: dict[str, dict[str, str]] = {
    "native": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},  # PyTorch's portable kernels (an older CPU's)
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},  # oneDNN's float32 convolutions for an older CPU
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads-1": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
    "threads-2": {"OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"},
}
DECODED = "-decoded"  # suffix of the folder holding the writer's decoded images, beside the model's folder


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``: what the pinned codecs run on."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The fields that say which machine and libraries produced a file or a check."""
    return {"cpu": cpu_name(), "device": provenance.device_description(), "torch": torch.__version__,
            "numpy": np.__version__}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _codec(model: str):
    """(codec with its default settings, weights fingerprint hex, registry info) for a model name or path."""
    codec, info = make_codec(model)
    return codec, codec.fingerprint, info


def write(model: str, images: list[tuple[str, np.ndarray]], out: Path, progress: bool = True) -> list[dict]:
    """Encode ``images`` with ``model`` into ``out/<model>/``; append their manifest rows to ``out/manifest.csv``."""
    codec, fingerprint, info = _codec(model)
    folder = out / info["name"]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for stem, image in tqdm(images, desc=f"write {info['name']}", disable=not progress):
        encoding = codec.encode(image)
        data = encoding.data
        with measure() as decoder:
            decoded = codec.decompress(data)
        (folder / f"{stem}.irec").write_bytes(data)
        write_png(folder / f"{stem}.png", image)
        write_png(out / f"{info['name']}{DECODED}" / f"{stem}.png", decoded)  # what a checker's decode should give
        rows.append({
            "model": info["name"],
            "model_ref": str(Path(info["path"]).resolve()) if info["source"] == "path" else model,
            "fingerprint": fingerprint, "image": stem, "bytes": len(data),
            "file_sha256": _sha256(data), "pixels_sha256": pixel_sha256(decoded),
            "encode_s": encoding.encode_seconds, "decode_s": decoder.seconds, **machine(),
            "git_commit": provenance.git_commit(),
        })
    write_rows(out / MANIFEST, rows)
    return rows


def gpu_difference(network, z1: torch.Tensor, size: tuple[int, int], original: np.ndarray,
                   reference: np.ndarray) -> dict[str, float]:
    """A lossy file's decoded ``z1`` synthesized by ``network`` (a CUDA copy of the exact model) against the CPU
    image ``reference``: the exact synthesis must give the same pixels on the GPU."""
    with torch.no_grad():
        image, _ = synthesized_image(network.synthesis(z1.cuda()), size)
    return {"gpu_exact": bool(np.array_equal(image, reference)), "gpu_changed_values": float(np.mean(image != reference)),
            "gpu_psnr_change_db": metrics.psnr(original, image) - metrics.psnr(original, reference)}


def check(folder: Path, progress: bool = True, variation: str = "") -> list[dict]:
    """Decode and re-encode every file of ``folder/manifest.csv`` here; one row per file (``variation``: the name
    of the kernel variation this process runs under, recorded in the rows)."""
    manifest = read_rows(folder / MANIFEST)
    here, rows, codecs = machine(), [], {}
    for entry in tqdm(list(manifest.itertuples(index=False)), desc="check", disable=not progress):
        if entry.model not in codecs:  # each model loaded once, with its CUDA copy for a lossy one
            codec, fingerprint, info = _codec(entry.model_ref)
            gpu = info["kind"] == "lossy" and torch.cuda.is_available()
            codecs[entry.model] = codec, fingerprint, info, copy.deepcopy(codec.model).cuda().eval() if gpu else None
        codec, fingerprint, info, network = codecs[entry.model]
        if fingerprint != entry.fingerprint:
            raise ValueError(f"{entry.model} here has fingerprint {fingerprint[:16]}..., the files were "
                             f"written with {entry.fingerprint[:16]}...: check with the same model")
        data = (folder / entry.model / f"{entry.image}.irec").read_bytes()
        if _sha256(data) != entry.file_sha256:
            raise ValueError(f"{folder / entry.model / entry.image}.irec is not the file the manifest lists")
        original = read_image(folder / entry.model / f"{entry.image}.png")
        with measure() as decoder:
            try:  # with a GPU, the lossy decode keeps its z1 for the GPU synthesis below
                latents = codec.decode_latents(data) if network is not None else None
                decoded = codec.reconstruct(*latents)[0] if latents is not None else codec.decompress(data)
                error = ""
            except ValueError as err:  # CorruptStreamError and the like: this machine reads the file differently
                decoded, error = None, f"{type(err).__name__}: {err}"
        again = codec.encode(original)
        row = {
            "model": entry.model, "fingerprint": entry.fingerprint, "image": entry.image, "variation": variation,
            "checked_cpu_capability": torch.backends.cpu.get_cpu_capability(), "written_on": entry.cpu,
            "written_with": entry.torch,
            "decode_exact": decoded is not None and pixel_sha256(decoded) == entry.pixels_sha256,
            "decode_error": error, "same_bytes": _sha256(again.data) == entry.file_sha256,
            "lossless_exact": bool(np.array_equal(decoded, original)) if info["kind"] == "lossless" else None,
            "encode_s": again.encode_seconds, "decode_s": decoder.seconds,
            **{f"checked_{k}": v for k, v in here.items()},
        }
        writers = folder / f"{entry.model}{DECODED}" / f"{entry.image}.png"
        if decoded is not None and not row["decode_exact"] and writers.is_file():  # how far from the writer's image
            theirs = read_image(writers)
            if theirs.shape == decoded.shape:
                row["changed_values"] = float(np.mean(theirs != decoded))
                row["max_uint8_diff"] = int(np.max(np.abs(theirs.astype(int) - decoded.astype(int))))
                row["psnr_change_db"] = metrics.psnr(original, decoded) - metrics.psnr(original, theirs)
        if decoded is not None and network is not None:
            row.update(gpu_difference(network, *latents, original, decoded))
        rows.append({**row, **provenance.stamp()})
    return rows


def matrix(folder: Path, out: Path, variations: list[str]) -> pd.DataFrame:
    """Check the files of ``folder`` in a fresh process under each variation; their rows are appended to ``out``."""
    rows = []
    for name in variations:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", **VARIATIONS[name]}
        part = folder / f"check-{name}.csv"
        part.unlink(missing_ok=True)
        command = [sys.executable, "-m", "irec.bench", "devices", "check", str(folder), "--out", str(part),
                   "--variation", name, "--no-progress"]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if not part.is_file():
            raise RuntimeError(f"the check under {name} wrote no rows: {done.stderr.strip()[-2000:]}")
        rows.append(read_rows(part))
        log.info("%s: %s", name, "; ".join(summary(rows[-1])))
    table = pd.concat(rows, ignore_index=True)
    write_rows(out, table.to_dict("records"))
    return table


def summary(rows: pd.DataFrame) -> list[str]:
    """One line per model: exact decodes and equal bytes out of the files, and the GPU synthesis's difference."""
    lines = []
    for model, group in rows.groupby("model", sort=False):
        n = len(group)
        line = (f"{model}: written on {group['written_on'].iloc[0]} (torch {group['written_with'].iloc[0]}), "
                f"checked on {group['checked_cpu'].iloc[0]} (torch {group['checked_torch'].iloc[0]}): "
                f"decoded exactly {int(group['decode_exact'].sum())}/{n} (anchor: {n}/{n}), "
                f"same bytes re-encoded {int(group['same_bytes'].sum())}/{n}")
        if "changed_values" in group and group["changed_values"].notna().any():
            line += (f"; the decodes that differ change {100 * group['changed_values'].mean():.3f}% of the uint8 "
                     f"values (at most by {int(group['max_uint8_diff'].max())}), PSNR change "
                     f"{group['psnr_change_db'].mean():+.4f} dB")
        errors = group["decode_error"].astype(object).fillna("").astype(str)
        if (errors != "").any():
            line += f"; {int((errors != '').sum())} failed to decode, e.g. {errors[errors != ''].iloc[0]}"
        if "gpu_exact" in group and group["gpu_exact"].notna().any():
            gpu = group["gpu_exact"].dropna()
            line += (f"; exact synthesis on the GPU gives the CPU's image {int(gpu.sum())}/{len(gpu)} "
                     f"(uint8 values changed {100 * group['gpu_changed_values'].mean():.3f}%)")
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irec.bench devices", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    w = sub.add_parser("write", help="encode images into a folder of files with a manifest")
    w.add_argument("--model", required=True, nargs="+", metavar="NAME_OR_PATH", help="shipped model names or paths")
    w.add_argument("--dataset", default="kodak", help="dataset name or image folder (default kodak)")
    w.add_argument("--split", help="the dataset's split, e.g. test for cifar10")
    w.add_argument("--images", type=int, default=4, help="a seeded subset of this many images")
    w.add_argument("--out", type=Path, required=True, help="folder for the files and manifest.csv")
    c = sub.add_parser("check", help="decode and re-encode a folder written by 'write', here")
    c.add_argument("folder", type=Path, help="a folder written by 'write' (on another machine)")
    c.add_argument("--out", type=Path, default=RESULTS / "bench" / "devices.csv", help="CSV to append the rows to")
    c.add_argument("--variation", default="", help="a name for the kernels this process runs under (recorded)")
    m = sub.add_parser("matrix", help="write files, then check them here in fresh processes under other kernels")
    m.add_argument("--model", required=True, nargs="+", metavar="NAME_OR_PATH", help="shipped model names or paths")
    m.add_argument("--dataset", default="kodak", help="dataset name or image folder (default kodak)")
    m.add_argument("--split", help="the dataset's split, e.g. test for cifar10")
    m.add_argument("--images", type=int, default=4, help="a seeded subset of this many images")
    m.add_argument("--folder", type=Path, help="folder for the files (default: a temporary one)")
    m.add_argument("--variations", nargs="+", default=list(VARIATIONS), choices=list(VARIATIONS),
                   help="which kernel variations to check under (default: all)")
    m.add_argument("--out", type=Path, default=RESULTS / "bench" / "devices-matrix.csv", help="CSV for the rows")
    for p in (w, c, m):
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.step in ("write", "matrix"):
        images = load_images(args.dataset, split=args.split, limit=args.images)
        folder = args.out if args.step == "write" else args.folder or Path(tempfile.mkdtemp(prefix="irec-devices-"))
        for model in args.model:
            rows = write(model, images, folder, progress=not args.no_progress)
            log.info("%s: %d files in %s, written on %s", model, len(rows), folder, cpu_name())
        if args.step == "write":
            return 0
        table = matrix(folder, args.out, args.variations)
        log.info("rows appended to %s", args.out)
        return 0 if table["decode_exact"].all() else 1
    rows = check(args.folder, progress=not args.no_progress, variation=args.variation)
    write_rows(args.out, rows)
    for line in summary(pd.DataFrame(rows)):
        log.info("%s", line)
    log.info("rows appended to %s", args.out)
    return 0 if all(r["decode_exact"] for r in rows) else 1
