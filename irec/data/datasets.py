"""Loaders for the paper's datasets as named uint8 RGB images.

Flamich et al. 2020, Section 4: lossless iREC is evaluated on CIFAR-10, ImageNet32 and Kodak, lossy iREC is
trained on CLIC 2018 professional and evaluated on Kodak. Each loader reads the official file format
(verified as :mod:`irec.data.download` describes) or, for CIFAR-10 and the image folders, the prepared data
folder (docs/data.md), and downloads what is missing when it can. The sources and checksums are in
:mod:`irec.data.registry`.
"""

from __future__ import annotations

import logging
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from irec.data.download import (
    RemoteFile, ensure_file, fetch, locate, missing_error, search_folders, verify_file, writable_folder,
)
from irec.data.images import ImageFormatError, decode_image, pixel_sha256, read_image
from irec.data.registry import (
    CIFAR10_NPZ, CIFAR10_TARBALL, CLIC_ZIPS, IMAGENET32_TARS, KODAK_PAGE, KODAK_PIXEL_SHA256, REGISTRY, kodak_remote,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pnm")
NamedImages = list[tuple[str, np.ndarray]]


def subset_indices(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a seeded subset: ``sorted(default_rng(seed).permutation(n)[:limit])``, or all when limit is None."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(_seeded_order(n, seed)[:limit])


def held_back_indices(n: int, count: int, seed: int = 0) -> np.ndarray:
    """Indices of the last ``count`` of the permutation that :func:`subset_indices` takes its first ``limit`` from,
    sorted: none of them is in ``subset_indices(n, limit, seed)`` while ``limit + count <= n``."""
    if not 1 <= count <= n:
        raise ValueError(f"count must be between 1 and {n}, got {count}")
    return np.sort(_seeded_order(n, seed)[n - count:])


def _seeded_order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _check_split(dataset: str, split: str | None) -> str:
    splits = REGISTRY[dataset].splits
    split = split or splits[0]
    if split not in splits:
        raise ValueError(f"{dataset} has the splits {', '.join(splits)}; got {split!r}")
    return split


def _read_cifar_tarball(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The batches of an official cifar-10-python.tar.gz (verified beforehand: its pickles are trusted)."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for name in names:
            try:
                member = tar.extractfile(f"cifar-10-batches-py/{name}")
            except KeyError:
                member = None
            if member is None:
                raise ValueError(f"{path}: no cifar-10-batches-py/{name} inside; not a cifar-10-python tarball")
            batch = pickle.load(member, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)  # (N, 3072): 1024 R, then G, then B, row-major
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def _read_cifar_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"].astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"{path}: 'images' is {images.dtype} {images.shape}, expected uint8 (N, 32, 32, 3)")
    if len(labels) != len(images):
        raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def load_cifar10(split: str = "test", *, source: RemoteFile = CIFAR10_TARBALL) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as (uint8 (N, 32, 32, 3) RGB images, int64 labels 0..9).

    Order of preference: the official tarball under ``<data>/cifar10/`` (md5 checked: ``source.md5``, which
    tests replace); the prepared npz of the data folder (docs/data.md; ``cifar10_test.npz``, complete but sorted
    by class; ``cifar10_train_subset20k.npz``, a 20,000-image subset of train, with a logged warning); else a download
    of the tarball, or :class:`DatasetMissingError` naming the URL and the folder.
    """
    split = _check_split("cifar10", split)
    tarball = locate("cifar10", source.filename)
    if tarball is None:
        npz = locate("cifar10", CIFAR10_NPZ[split])
        if npz is not None:
            if split == "train":
                log.warning("CIFAR-10 train from %s: a 20,000-image subset of the 50,000 training images", npz)
            return _read_cifar_npz(npz)
        tarball = ensure_file("cifar10", source, hint=f"Or put the prepared {CIFAR10_NPZ[split]} there")
    else:
        verify_file(tarball, source)
    return _read_cifar_tarball(tarball, split)


def _decode_members(archive: Path, members: list[str], read, expand_gray: bool) -> NamedImages:
    out = []
    for member in members:
        image = decode_image(read(member), name=f"{archive}:{member}", expand_gray=expand_gray)
        out.append((Path(member).stem, image))
    return out


def _is_image_member(name: str) -> bool:
    return name.lower().endswith(".png") and "__MACOSX" not in name and not Path(name).name.startswith(".")


def read_tar_images(path: Path, limit: int | None = None, seed: int = 0, *, expand_gray: bool = False) -> NamedImages:
    """The PNG members of a tar archive (sorted by member name; a seeded subset with ``limit``), decoded."""
    with tarfile.open(path, "r:*") as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile() and _is_image_member(m.name))
        if not members:
            raise ValueError(f"{path}: no PNG files inside")
        chosen = [members[i] for i in subset_indices(len(members), limit, seed)]
        return _decode_members(path, chosen, lambda m: tar.extractfile(m).read(), expand_gray)


def read_zip_images(path: Path, limit: int | None = None, seed: int = 0, *, expand_gray: bool = False) -> NamedImages:
    """The PNG members of a zip archive (sorted by member name; a seeded subset with ``limit``), decoded."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a zip archive ({err})") from err
    with archive:
        members = sorted(n for n in archive.namelist() if not n.endswith("/") and _is_image_member(n))
        if not members:
            raise ValueError(f"{path}: no PNG files inside")
        chosen = [members[i] for i in subset_indices(len(members), limit, seed)]
        return _decode_members(path, chosen, archive.read, expand_gray)


def load_imagenet32(
    split: str = "valid", limit: int | None = None, seed: int = 0, *, source: RemoteFile | None = None
) -> NamedImages:
    """ImageNet32 (van den Oord et al. 2016) from the official ``valid_32x32.tar`` / ``train_32x32.tar``.

    The tar's size and sha256 must match TFDS's registry (``source`` overrides them, for tests). Names are
    the PNG file stems; ``limit`` takes the seeded subset of :func:`subset_indices` before decoding.
    A grayscale PNG is expanded to R = G = B (lossless), as TFDS's 3-channel decoding did for the paper.
    """
    split = _check_split("imagenet32", split)
    path = ensure_file("imagenet32", source or IMAGENET32_TARS[split])
    images = read_tar_images(path, limit, seed, expand_gray=True)
    odd = [name for name, image in images if image.shape != (32, 32, 3)]
    if odd:
        raise ValueError(f"{path}: {len(odd)} images are not 32x32 RGB (first: {odd[0]}); not ImageNet32")
    return images


def load_clic(
    split: str = "valid", limit: int | None = None, seed: int = 0, *, source: RemoteFile | None = None
) -> NamedImages:
    """CLIC 2018 professional from ``professional_valid.zip`` / ``professional_train.zip`` (PNG members).

    No checksum is published: the size is checked loosely and the sha256 is recorded next to the zip when it
    is first seen, then checked on every load (``source`` overrides the expectations, for tests). Names are
    the PNG file stems; a grayscale PNG is expanded to R = G = B (lossless); transparency is an error.
    """
    split = _check_split("clic", split)
    path = ensure_file(
        "clic", source or CLIC_ZIPS[split], hint="For a smoke test, load_images('clic_sample') needs no download"
    )
    return read_zip_images(path, limit, seed, expand_gray=True)


def load_kodak(limit: int | None = None, seed: int = 0) -> NamedImages:
    """The 24 Kodak images, each checked against its pinned decoded-pixel sha256 (missing ones are downloaded)."""
    stems = sorted(KODAK_PIXEL_SHA256)
    out = []
    for i in subset_indices(len(stems), limit, seed):
        stem = stems[i]
        path = locate("kodak", f"{stem}.png")
        if path is None:
            path = fetch(
                kodak_remote(stem), "kodak", check=lambda p, s=stem: _check_kodak(read_image(p), s, p),
                hint=f"All 24 (kodim01.png .. kodim24.png) are linked from {KODAK_PAGE}",
            )
        image = read_image(path)
        _check_kodak(image, stem, path)
        out.append((stem, image))
    return out


def _check_kodak(image: np.ndarray, stem: str, path: Path) -> None:
    actual = pixel_sha256(image)
    if actual != KODAK_PIXEL_SHA256[stem]:
        raise ImageFormatError(
            f"{path}: decoded pixels have sha256 {actual}, not the pinned {KODAK_PIXEL_SHA256[stem]} of {stem}; "
            f"this is not the original Kodak image (replace it with {kodak_remote(stem).url})"
        )


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, hidden files skipped), sorted by relative path."""
    files = [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def load_folder(folder: str | Path, limit: int | None = None, seed: int = 0) -> NamedImages:
    """Every image under ``folder`` (recursive, sorted by relative path), read by :func:`read_image`.

    Names are the file stems; two files with the same stem in different subfolders are an error.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at {folder}")
    files = image_files(folder)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"{folder}: several files share the name(s) {twice[:5]}; images are named by file stem")
    return [(files[i].stem, read_image(files[i])) for i in subset_indices(len(files), limit, seed)]


def _load_named_folder(dataset: str, split: str | None, limit: int | None, seed: int) -> NamedImages:
    info = REGISTRY[dataset]
    if split is not None and split not in info.splits:
        raise ValueError(f"{dataset} has the splits {', '.join(info.splits) or '(none)'}; got {split!r}")
    found = locate(dataset, split) if split else next((f for f in search_folders(dataset) if f.is_dir()), None)
    if found is None or not found.is_dir():
        raise missing_error(
            dataset, " ".join(info.urls), writable_folder(dataset) / (split or ""),
            "image folders are not downloaded automatically",
        )
    return load_folder(found, limit, seed)


def load_images(dataset: str, split: str | None = None, limit: int | None = None, seed: int = 0) -> NamedImages:
    """Named (H, W, 3) uint8 RGB images of a dataset: a list of (name, image).

    ``dataset``: 'kodak', 'cifar10' (split 'test' by default, or 'train'), 'imagenet32' ('valid' or 'train'),
    'clic' ('valid' by default, or 'train'), 'clic_sample', 'bsds500' (split 'train'/'val'/'test', or all 500),
    'sun_hays80', or the path of an image folder. ``limit`` takes a seeded subset: the indices
    ``sorted(numpy.random.default_rng(seed).permutation(n)[:limit])`` of the dataset's order (file or member
    name order; array order for CIFAR-10), so the same (limit, seed) always gives the same images.
    Names: the file stem, or ``'<dataset>-<split>-<index>'`` (index into the loaded array) for CIFAR-10.
    """
    if dataset == "cifar10":
        split = _check_split("cifar10", split)
        images, _ = load_cifar10(split)
        return [(f"cifar10-{split}-{i}", images[i]) for i in subset_indices(len(images), limit, seed)]
    if dataset == "imagenet32":
        return load_imagenet32(split or "valid", limit, seed)
    if dataset == "clic":
        return load_clic(split or "valid", limit, seed)
    if dataset == "kodak":
        if split is not None:
            raise ValueError(f"kodak has no splits; got {split!r}")
        return load_kodak(limit, seed)
    if dataset in REGISTRY:
        return _load_named_folder(dataset, split, limit, seed)
    if Path(dataset).expanduser().is_dir():
        if split is not None:
            raise ValueError(f"an image folder has no splits; got split={split!r} for {dataset}")
        return load_folder(dataset, limit, seed)
    raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(REGISTRY)} or the path of an image folder")
