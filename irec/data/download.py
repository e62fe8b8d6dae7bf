"""Finding, downloading and verifying dataset files in the data folders.

The paper evaluates on CIFAR-10, ImageNet32 and Kodak and trains its lossy model on CLIC 2018 professional
(Flamich et al. 2020, Section 4). Each dataset lives in its official file format under ``$IREC_DATA/<dataset>/``
(:func:`irec.paths.data_root`), or, when that folder is read-only, under ``$IREC_CACHE/data/<dataset>/``.
A missing file is downloaded from its official address (urllib, a tqdm progress bar, a temporary file that is
verified and then moved into place with os.replace); with ``IREC_OFFLINE=1``, or when the download fails, a
:class:`DatasetMissingError` names the address and the folder to fill.

Verification: a published md5 or sha256 and the exact size where one exists. Where none is published
(CLIC 2018), the size stated on the official page is checked loosely and the sha256 is recorded next to the
file (``<file>.sha256``, sha256sum format) the first time it is seen, then checked on every later load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from irec import __version__
from irec.fileio import atomic_write
from irec.paths import cache_root, data_root

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DatasetMissingError(FileNotFoundError):
    """A dataset that is neither in the data folders nor downloadable now; the message says what to fetch where."""


class ChecksumError(ValueError):
    """A dataset file whose size or hash differs from the expected one."""


@dataclass(frozen=True)
class RemoteFile:
    """One official dataset file and what a genuine copy looks like."""

    url: str  # official download address
    filename: str  # the official file name, kept under <data folder>/<dataset>/
    md5: str | None = None  # published md5 of the whole file, checked on every load
    sha256: str | None = None  # published sha256 of the whole file, checked on every load
    size: int | None = None  # exact size in bytes, where published
    approx_size: int | None = None  # size stated on the official page, where no exact size is published
    size_tolerance: float = 0.1  # relative tolerance on approx_size
    record_sha256: bool = False  # no published hash: write <filename>.sha256 when first seen, check it later


def offline() -> bool:
    """True when ``IREC_OFFLINE`` is set to 1/true/yes: no download is attempted."""
    return os.environ.get("IREC_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest (``md5``, ``sha256``, ...) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def search_folders(dataset: str) -> list[Path]:
    """Where a dataset's files are looked for, in order: ``$IREC_DATA/<dataset>``, ``$IREC_CACHE/data/<dataset>``."""
    folders = [data_root() / dataset, cache_root() / "data" / dataset]
    return list(dict.fromkeys(folders))


def locate(dataset: str, relative: str) -> Path | None:
    """The first existing ``<folder>/<relative>`` over :func:`search_folders`, else None."""
    for folder in search_folders(dataset):
        if (folder / relative).exists():
            return folder / relative
    return None


def _is_writable(folder: Path) -> bool:
    """Writable by us *and* not marked read-only (root ignores permission bits, so check them too)."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def writable_folder(dataset: str, *, create: bool = False) -> Path:
    """Where downloads go: ``$IREC_DATA/<dataset>`` if writable, else ``$IREC_CACHE/data/<dataset>``.

    A folder (or, when it does not exist yet, its parent) whose permission bits forbid writing counts as
    read-only even for root, so a read-only data folder is never written to. ``create`` makes the folder.
    """
    preferred = data_root() / dataset
    usable = _is_writable(preferred) if preferred.exists() else _is_writable(preferred.parent)
    folder = preferred if usable else cache_root() / "data" / dataset
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def sidecar_path(path: Path) -> Path:
    """``<file>.sha256``, the hash recorded when a file without a published one was first seen.

    It sits next to the file; when that folder is read-only, in ``$IREC_CACHE/data/<folder name>/``.
    """
    beside = path.with_name(path.name + ".sha256")
    if beside.exists() or _is_writable(path.parent):
        return beside
    return cache_root() / "data" / path.parent.name / beside.name


def _check_size(path: Path, remote: RemoteFile) -> None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ChecksumError(f"{path}: {size} bytes, expected exactly {remote.size} (from {remote.url})")
    if remote.approx_size is not None:
        low, high = remote.approx_size * (1 - remote.size_tolerance), remote.approx_size * (1 + remote.size_tolerance)
        if not low <= size <= high:
            raise ChecksumError(
                f"{path}: {size} bytes, but {remote.url} is stated to be about {remote.approx_size} bytes; "
                "the file is truncated or is not the official archive"
            )


def _check_hash(path: Path, algorithm: str, expected: str, source: str) -> None:
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: {algorithm} {actual} does not match the expected {expected} ({source}). "
            "The file is corrupt, truncated or not the official one: delete it and download it again"
        )


def verify_file(path: Path, remote: RemoteFile) -> None:
    """Check size and hashes of a dataset file; record or check its ``.sha256`` sidecar where none is published."""
    _check_size(path, remote)
    if remote.md5:
        _check_hash(path, "md5", remote.md5, f"published for {remote.url}")
    if remote.sha256:
        _check_hash(path, "sha256", remote.sha256, f"published for {remote.url}")
    if not remote.record_sha256:
        return
    sidecar = sidecar_path(path)
    if sidecar.exists():
        recorded = sidecar.read_text().split()
        if not recorded:
            raise ChecksumError(f"{sidecar} is empty; delete it to record the hash of {path.name} again")
        _check_hash(path, "sha256", recorded[0], f"recorded in {sidecar} when the file was first seen")
        return
    digest = file_digest(path, "sha256")
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(sidecar, f"{digest}  {path.name}\n")
        log.info("recorded sha256 %s of %s in %s", digest, path, sidecar)
    except OSError as err:
        log.warning("%s: no published checksum and cannot record one (%s); sha256 is %s", path, err, digest)


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def http_get(url: str, out: BinaryIO, *, desc: str = "", timeout: float = 60.0) -> int:
    """Stream ``url`` into the open binary file ``out`` with a tqdm progress bar; return the number of bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": f"irec/{__version__} (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        written = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or url) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written != total:
        raise OSError(f"download of {url} stopped after {written} of {total} bytes")
    return written


def missing_error(dataset: str, urls: str, folder: Path, reason: str, hint: str = "") -> DatasetMissingError:
    """The error for a dataset that is absent and not downloadable: it names the address(es) and the folder."""
    looked = ", ".join(str(f) for f in search_folders(dataset))
    message = (
        f"dataset {dataset!r} not found (looked in {looked}) and not downloaded ({reason}). "
        f"Download {urls} and put it in {folder}/"
    )
    return DatasetMissingError(message + (f". {hint}" if hint else ""))


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first (for :func:`_remove_empty`)."""
    created = []
    missing = folder
    while not missing.exists() and missing.parent != missing:
        created.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove these folders, deepest first, as long as they are empty (someone else may have filled one)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def fetch(remote: RemoteFile, dataset: str, *, check: Callable[[Path], None] | None = None, hint: str = "") -> Path:
    """Download ``remote`` into :func:`writable_folder` (temporary file, verified, os.replace) and return its path.

    ``check`` is an extra verification of the downloaded file (e.g. decoded-pixel hashes). Raises
    :class:`DatasetMissingError` when offline or when the download fails, :class:`ChecksumError` when the
    downloaded file is not the expected one (the partial file, and the folders made for it, are removed
    either way).
    """
    folder = writable_folder(dataset)
    if offline():
        raise missing_error(dataset, remote.url, folder, "IREC_OFFLINE is set", hint)
    created = _make_folders(folder)
    target = folder / remote.filename
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except BaseException:
        _remove_empty(created)
        raise
    tmp = Path(tmp_name)
    try:
        log.warning("downloading %s to %s", remote.url, target)
        try:
            with os.fdopen(fd, "wb") as out:
                http_get(remote.url, out, desc=remote.filename)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise missing_error(dataset, remote.url, folder, f"download failed: {err}", hint) from err
        _check_size(tmp, remote)
        if remote.md5:
            _check_hash(tmp, "md5", remote.md5, f"published for {remote.url}")
        if remote.sha256:
            _check_hash(tmp, "sha256", remote.sha256, f"published for {remote.url}")
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_empty(created)  # a failed download leaves no empty dataset folder behind
        raise
    if remote.record_sha256:
        sidecar_path(target).unlink(missing_ok=True)  # a new file: record its hash afresh
        verify_file(target, remote)
    return target


def ensure_file(dataset: str, remote: RemoteFile, *, hint: str = "") -> Path:
    """The verified local copy of ``remote`` (found in :func:`search_folders`, else downloaded by :func:`fetch`)."""
    found = locate(dataset, remote.filename)
    if found is not None:
        verify_file(found, remote)
        return found
    return fetch(remote, dataset, hint=hint)
