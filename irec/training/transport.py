"""Pack a training run into a few files small enough to bring back from a lent GPU, and unpack it to resume.

A lent GPU machine (docs/gpu-runs.md) brings back at most 8 files of at most 16 MiB each. A run's resumable state
is its ``checkpoint.pt`` (:func:`irec.checkpoint.save_training_state`: step, weights, EMA, optimizer moments,
learning-rate schedule, configs); the loop needs no saved RNG state, since its data order, augmentation and
model noise are functions of (seed, step, rank) (:mod:`irec.training.loop`). :func:`pack_run` cuts that file's
bytes into parts of less than ``max_bytes`` and writes a JSON index with the SHA-256 of every part and of the
whole, plus the run's small text files (``config.json``, ``data.txt``, ``init.json``: where its data and initial
weights came from, which ``irec ship`` records). :func:`unpack_run` checks every hash, loads the rebuilt checkpoint
with ``weights_only=True`` and writes ``run_dir/checkpoint.pt`` atomically, so the next :func:`train` on that
folder continues at the packed step exactly as an uninterrupted run would.

Sizes: the ``cpu`` lossless preset (the RVAE of the paper's section 4.1 at 8 layers, 64 hidden; 1.6M parameters)
packs into two parts of 16 MiB; the ``paper`` preset (24 layers, 160 hidden; 29.5M parameters, 112 MiB of float32
weights) has a checkpoint of about 450 MiB (weights, EMA and Adamax's two moments), which needs 29 parts: more
than one lease brings back, and more than the 64 MiB a lease carries there, so :func:`pack_run` refuses it under
the default ``max_files``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import torch

from irec import checkpoint
from irec.fileio import atomic_write

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "INDEX_NAME", "TransportError", "pack_run", "read_index",
           "unpack_run"]

DEFAULT_MAX_BYTES = 16 * 2**20  # the largest file a lease brings back
DEFAULT_MAX_FILES = 7  # of the 8 a lease brings back: the 8th is the logs' tarball
INDEX_NAME = "run-index.json"  # the index pack_run writes beside its parts
PACK_FORMAT = "irec-packed-run-v1"  # the index's "format" field
_PART_PREFIX = "run-checkpoint.part"  # parts are run-checkpoint.part00, .part01, ...
_TEXT_FILES = ("config.json", "data.txt", "init.json")  # small files of a run folder kept in the index


class TransportError(ValueError):
    """A run cannot be packed within the limits, or a packed run is incomplete, corrupt or of another kind."""


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_run(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int | None = DEFAULT_MAX_FILES,
) -> list[Path]:
    """Write ``run_dir``'s resumable state into ``out_dir`` as an index and parts, every file under ``max_bytes``.

    Returns the written files, the index first. Raises :class:`TransportError` when the checkpoint is missing or
    unreadable, or when it needs more than ``max_files`` files (index included; None: no limit).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if max_bytes < 2:
        raise TransportError(f"max_bytes must be at least 2, got {max_bytes}")
    try:
        saved = checkpoint.load(ckpt_path)  # weights_only=True; a clear error when missing or corrupt
    except checkpoint.CheckpointError as err:
        raise TransportError(f"cannot pack {run_dir}: {err}") from err
    if not isinstance(saved, dict) or saved.get("format") != checkpoint.TRAINING_FORMAT:
        raise TransportError(f"{ckpt_path} is not an irec training checkpoint")
    data = ckpt_path.read_bytes()
    part_size = max_bytes - 1  # every part strictly under max_bytes
    n_parts = max(1, math.ceil(len(data) / part_size))
    if max_files is not None and n_parts + 1 > max_files:
        raise TransportError(
            f"{ckpt_path} has {len(data):,} bytes: {n_parts} parts under {max_bytes:,} bytes plus the index are "
            f"{n_parts + 1} files, more than max_files={max_files}; it cannot travel in one lease's files"
        )
    view = memoryview(data)
    parts = [view[k * part_size:(k + 1) * part_size] for k in range(n_parts)]
    names = [f"{_PART_PREFIX}{k:02d}" for k in range(n_parts)]
    index = {
        "format": PACK_FORMAT,
        "step": int(saved["step"]),
        "train_config": saved.get("config"),
        "model_config": saved.get("model_config"),
        "metrics": saved.get("metrics"),
        "checkpoint": {
            "bytes": len(data),
            "sha256": _sha256(view),
            "parts": [{"file": n, "bytes": len(p), "sha256": _sha256(p)} for n, p in zip(names, parts)],
        },
        "files": {name: (run_dir / name).read_text() for name in _TEXT_FILES if (run_dir / name).is_file()},
    }
    text = json.dumps(index, indent=1, default=str) + "\n"
    if len(text.encode()) >= max_bytes:
        raise TransportError(f"the index of {run_dir} takes {len(text.encode()):,} bytes, not under {max_bytes:,}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, part in zip(names, parts):
        with atomic_write(out_dir / name) as handle:
            handle.write(part)
        written.append(out_dir / name)
    with atomic_write(out_dir / INDEX_NAME, "w") as handle:  # last: an index means its parts are complete
        handle.write(text)
    return [out_dir / INDEX_NAME, *written]


def read_index(in_dir: str | os.PathLike) -> dict:
    """The index :func:`pack_run` wrote into ``in_dir`` (step, train and model configs, parts and their hashes)."""
    path = Path(in_dir) / INDEX_NAME
    if not path.is_file():
        raise TransportError(f"no packed run in {in_dir}: {path} is missing (pack_run writes it)")
    try:
        index = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TransportError(f"{path} is not a packed run's index: {err}") from err
    if not isinstance(index, dict) or index.get("format") != PACK_FORMAT:
        raise TransportError(f"{path} is not a packed run's index (expected format {PACK_FORMAT!r})")
    return index


def unpack_run(in_dir: str | os.PathLike, run_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Rebuild ``run_dir/checkpoint.pt`` (and the run's small text files) from what :func:`pack_run` wrote.

    Checks every part's size and SHA-256 and the whole's, and that the result loads with ``weights_only=True`` as a
    training checkpoint, before anything is written. Refuses to replace a different ``checkpoint.pt`` unless
    ``overwrite``. Returns the checkpoint's path; training on ``run_dir`` then resumes at the packed step.
    """
    in_dir, run_dir = Path(in_dir), Path(run_dir)
    index = read_index(in_dir)
    buffer = bytearray()
    for part in index["checkpoint"]["parts"]:
        path = in_dir / part["file"]
        if not path.is_file():
            raise TransportError(f"{path} is missing: a packed run needs every part its index lists")
        data = path.read_bytes()
        if len(data) != part["bytes"] or _sha256(data) != part["sha256"]:
            raise TransportError(
                f"{path} is corrupt: {len(data):,} bytes with SHA-256 {_sha256(data)[:16]}..., the index says "
                f"{part['bytes']:,} bytes and {part['sha256'][:16]}...; bring it back again"
            )
        buffer += data
    if _sha256(buffer) != index["checkpoint"]["sha256"]:
        raise TransportError(f"the parts in {in_dir} do not make up the packed checkpoint (its SHA-256 differs)")
    try:
        saved = torch.load(io.BytesIO(buffer), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise TransportError(f"the checkpoint rebuilt from {in_dir} does not load: {err}") from err
    if not isinstance(saved, dict) or saved.get("format") != checkpoint.TRAINING_FORMAT:
        raise TransportError(f"the checkpoint rebuilt from {in_dir} is not an irec training checkpoint")
    target = run_dir / "checkpoint.pt"
    if target.is_file() and not overwrite and target.read_bytes() != bytes(buffer):
        raise TransportError(f"{target} exists and differs from the packed run; unpack into a new run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as handle:
        handle.write(buffer)
    for name, text in index.get("files", {}).items():
        if name in _TEXT_FILES and not (run_dir / name).is_file():
            with atomic_write(run_dir / name, "w") as handle:
                handle.write(text)
    return target
