"""irec.data loaders against the shared data and against tiny fixtures written in the official formats."""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import irec.data.download as download
from irec.data import (
    REGISTRY, ChecksumError, DatasetMissingError, ImageArrayDataset, ImageFormatError, RandomCropDataset,
    dataset_status, held_back_indices, load_cifar10, load_clic, load_images, load_imagenet32, load_kodak, read_image,
    subset_indices, write_png,
)
from irec.data.download import sidecar_path
from irec.data.registry import CIFAR10_TARBALL, CLIC_ZIPS, IMAGENET32_TARS, KODAK_PIXEL_SHA256


@pytest.fixture
def data_root(tmp_path, monkeypatch, private_cache) -> Path:
    """An empty, writable $IREC_DATA with a private cache, offline."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("IREC_DATA", str(root))
    monkeypatch.setenv("IREC_OFFLINE", "1")
    return root


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _imagenet32_source(tar: Path):
    """The registry's ImageNet32 validation tar, with the size and sha256 of the fixture ``tar``."""
    return replace(IMAGENET32_TARS["valid"], size=tar.stat().st_size, sha256=download.file_digest(tar, "sha256"))


def make_cifar_tarball(path: Path, rng: np.random.Generator, per_batch: int = 3) -> dict[str, np.ndarray]:
    """A tiny cifar-10-python.tar.gz: data_batch_1..5 and test_batch pickles in the official layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            nhwc = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
            batch = {
                b"batch_label": name.encode(),
                b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                b"data": nhwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072),  # R plane, G plane, B plane
                b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
            }
            data = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            images[name] = (nhwc, np.asarray(batch[b"labels"]))
    return images


def make_png_tar(path: Path, images: dict[str, np.ndarray], folder: str = "valid_32x32") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, image in images.items():
            data = _png_bytes(image)
            info = tarfile.TarInfo(f"{folder}/{name}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def make_png_zip(path: Path, images: dict[str, np.ndarray], folder: str = "valid") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, image in images.items():
            archive.writestr(f"{folder}/{name}.png", _png_bytes(image))
        archive.writestr("__MACOSX/._junk.png", b"resource fork, not an image")


# ----- the shared data (../shared/data) -----

def test_kodak_loads_all_24_images_from_the_shared_data_with_verified_pixels(shared_data, monkeypatch):
    monkeypatch.setenv("IREC_OFFLINE", "1")
    images = load_images("kodak")
    assert [name for name, _ in images] == [f"kodim{i:02d}" for i in range(1, 25)]
    portrait = {"kodim04", "kodim09", "kodim10", "kodim17", "kodim18", "kodim19"}
    for name, image in images:
        assert image.dtype == np.uint8
        assert image.shape == ((768, 512, 3) if name in portrait else (512, 768, 3))


def test_cifar10_test_npz_loads_as_uint8_nhwc_with_labels(shared_data, monkeypatch):
    monkeypatch.setenv("IREC_OFFLINE", "1")
    images, labels = load_cifar10("test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    np.testing.assert_allclose(images.reshape(-1, 3).mean(0) / 255, [0.494214, 0.485131, 0.450409], atol=1e-5)


def test_cifar10_train_from_the_npz_warns_that_it_is_a_20k_subset(shared_data, monkeypatch, caplog):
    monkeypatch.setenv("IREC_OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="irec.data.datasets"):
        images, labels = load_cifar10("train")
    assert images.shape == (20000, 32, 32, 3) and len(labels) == 20000
    assert "20,000-image subset" in caplog.text


def test_a_limit_takes_the_sorted_seeded_permutation_subset(shared_data):
    subset = load_images("cifar10", limit=5, seed=3)
    expected = np.sort(np.random.default_rng(3).permutation(10000)[:5])
    assert [name for name, _ in subset] == [f"cifar10-test-{i}" for i in expected]
    full, _ = load_cifar10("test")
    for (_, image), i in zip(subset, expected):
        np.testing.assert_array_equal(image, full[i])
    assert [n for n, _ in load_images("cifar10", limit=5, seed=3)] == [n for n, _ in subset]
    assert [n for n, _ in load_images("cifar10", limit=5, seed=4)] != [n for n, _ in subset]


def test_image_folders_of_the_shared_data_load_by_name_and_split(shared_data):
    val = load_images("bsds500", "val", limit=3)
    assert len(val) == 3 and all((shared_data / "bsds500" / "val" / f"{n}.jpg").exists() for n, _ in val)
    assert all(image.dtype == np.uint8 and image.shape[2] == 3 for _, image in val)
    assert len(load_images("sun_hays80", limit=2)) == 2
    assert [n for n, _ in load_images(str(shared_data / "clic_sample"))] == [
        "alberto-montalesi-176097", "jacob-aguilar-friend-343"]
    with pytest.raises(ValueError, match="splits train, val, test"):
        load_images("bsds500", "holdout")


def test_dataset_status_lists_every_dataset_and_what_is_present(shared_data):
    rows = {row["name"]: row for row in dataset_status()}
    assert set(rows) == set(REGISTRY)
    assert all({"name", "present", "path", "url", "note"} <= set(row) for row in rows.values())
    assert rows["kodak"]["present"] and rows["cifar10"]["present"] and rows["bsds500"]["present"]
    assert not rows["imagenet32"]["present"] and "valid_32x32.tar" in rows["imagenet32"]["url"]


def test_an_unknown_dataset_name_raises_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*kodak"):
        load_images("mnist")


# ----- official formats, written as tiny fixtures -----

def test_the_cifar10_tarball_is_read_in_the_official_channel_order(data_root, rng):
    tarball = data_root / "cifar10" / "cifar-10-python.tar.gz"
    truth = make_cifar_tarball(tarball, rng)
    source = replace(CIFAR10_TARBALL, md5=_md5(tarball))
    test_images, test_labels = load_cifar10("test", source=source)
    np.testing.assert_array_equal(test_images, truth["test_batch"][0])
    np.testing.assert_array_equal(test_labels, truth["test_batch"][1])
    train_images, _ = load_cifar10("train", source=source)
    assert train_images.shape == (15, 32, 32, 3)
    np.testing.assert_array_equal(train_images[3:6], truth["data_batch_2"][0])


def test_the_cifar10_tarball_is_preferred_over_the_prepared_npz(data_root, rng):
    tarball = data_root / "cifar10" / "cifar-10-python.tar.gz"
    truth = make_cifar_tarball(tarball, rng)
    np.savez(data_root / "cifar10" / "cifar10_test.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=[0, 1])
    images, _ = load_cifar10("test", source=replace(CIFAR10_TARBALL, md5=_md5(tarball)))
    np.testing.assert_array_equal(images, truth["test_batch"][0])


def test_a_cifar10_tarball_with_the_wrong_md5_raises_a_clear_error(data_root, rng):
    make_cifar_tarball(data_root / "cifar10" / "cifar-10-python.tar.gz", rng)
    with pytest.raises(ChecksumError, match="md5 .* does not match the expected c58f30108f718f92721af3b95e74349a"):
        load_cifar10("test")  # the default expects the official md5


def test_a_missing_cifar10_is_downloaded_when_online(data_root, rng, tmp_path, monkeypatch):
    fixture = tmp_path / "served" / "cifar-10-python.tar.gz"
    truth = make_cifar_tarball(fixture, rng)
    served = []

    def fake_http_get(url, out, *, desc="", timeout=60.0):
        served.append(url)
        out.write(fixture.read_bytes())
        return fixture.stat().st_size

    monkeypatch.delenv("IREC_OFFLINE")
    monkeypatch.setattr(download, "http_get", fake_http_get)
    images, _ = load_cifar10("test", source=replace(CIFAR10_TARBALL, md5=_md5(fixture)))
    assert served == [CIFAR10_TARBALL.url]
    assert (data_root / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == fixture.read_bytes()
    np.testing.assert_array_equal(images, truth["test_batch"][0])


def test_imagenet32_valid_loads_from_a_tar_of_pngs(data_root, rng):
    truth = {f"{i:05d}": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in (3, 1, 2)}
    tar = data_root / "imagenet32" / "valid_32x32.tar"
    make_png_tar(tar, truth)
    source = _imagenet32_source(tar)
    images = load_imagenet32("valid", source=source)
    assert [name for name, _ in images] == ["00001", "00002", "00003"]
    for name, image in images:
        np.testing.assert_array_equal(image, truth[name])
    assert [n for n, _ in load_imagenet32("valid", limit=2, seed=0, source=source)] == [
        ["00001", "00002", "00003"][i] for i in np.sort(np.random.default_rng(0).permutation(3)[:2])]


def test_an_imagenet32_tar_that_is_not_the_official_file_raises_a_clear_error(data_root, rng):
    make_png_tar(data_root / "imagenet32" / "valid_32x32.tar", {"0": rng.integers(0, 256, (32, 32, 3), np.uint8)})
    with pytest.raises(ChecksumError, match="expected exactly 161474560"):
        load_images("imagenet32")


def test_imagenet32_images_that_are_not_32x32_are_refused(data_root, rng):
    tar = data_root / "imagenet32" / "valid_32x32.tar"
    make_png_tar(tar, {"big": rng.integers(0, 256, (64, 64, 3), np.uint8)})
    source = _imagenet32_source(tar)
    with pytest.raises(ValueError, match="not 32x32 RGB"):
        load_imagenet32(source=source)


def test_clic_loads_from_a_zip_and_records_then_checks_its_sha256(data_root, rng):
    truth = {name: rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for name in ("b-photo", "a-photo")}
    archive = data_root / "clic" / "professional_valid.zip"
    gray = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    make_png_zip(archive, {**truth, "c-gray": gray})
    source = replace(CLIC_ZIPS["valid"], approx_size=archive.stat().st_size)
    images = load_clic("valid", source=source)
    assert [name for name, _ in images] == ["a-photo", "b-photo", "c-gray"]  # the __MACOSX entry is skipped
    np.testing.assert_array_equal(images[0][1], truth["a-photo"])
    np.testing.assert_array_equal(images[2][1], np.repeat(gray[..., None], 3, axis=2))  # lossless expansion
    recorded = sidecar_path(archive).read_text().split()
    assert recorded == [download.file_digest(archive, "sha256"), "professional_valid.zip"]
    load_clic("valid", source=source)  # the recorded hash matches
    data = bytearray(archive.read_bytes())
    data[-30] ^= 0xFF  # same size, different bytes
    archive.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="recorded in .*professional_valid.zip.sha256"):
        load_clic("valid", source=source)


def test_a_clic_zip_far_from_the_stated_size_raises_a_clear_error(data_root, rng):
    make_png_zip(data_root / "clic" / "professional_valid.zip", {"x": rng.integers(0, 256, (8, 8, 3), np.uint8)})
    with pytest.raises(ChecksumError, match="stated to be about"):
        load_images("clic", "valid")


# ----- missing data -----

@pytest.mark.parametrize("dataset, split, url", [
    ("imagenet32", None, "http://image-net.org/small/valid_32x32.tar"),
    ("clic", "train", "https://data.vision.ee.ethz.ch/cvl/clic/professional_train.zip"),
    ("cifar10", "test", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    ("kodak", None, "http://r0k.us/graphics/kodak/kodak/kodim"),
    ("sun_hays80", None, "CSun_Hays80"),
])
def test_a_missing_dataset_offline_raises_an_error_naming_the_url_and_the_folder(data_root, dataset, split, url):
    with pytest.raises(DatasetMissingError) as info:
        load_images(dataset, split)
    message = str(info.value)
    assert url in message
    assert str(data_root / dataset) in message
    assert isinstance(info.value, FileNotFoundError)


def test_a_kodak_copy_with_changed_pixels_is_rejected(data_root, shared_data):
    (data_root / "kodak").mkdir()
    for stem in KODAK_PIXEL_SHA256:
        (data_root / "kodak" / f"{stem}.png").symlink_to(shared_data / "kodak" / f"{stem}.png")
    image = read_image(shared_data / "kodak" / "kodim07.png")
    image[100, 200, 1] ^= 1
    (data_root / "kodak" / "kodim07.png").unlink()
    write_png(data_root / "kodak" / "kodim07.png", image)
    with pytest.raises(ImageFormatError, match="kodim07.png: decoded pixels have sha256"):
        load_kodak()


def test_a_missing_kodak_image_is_downloaded_and_accepted_by_its_pixels(data_root, shared_data, monkeypatch):
    (data_root / "kodak").mkdir()
    for stem in list(KODAK_PIXEL_SHA256)[1:]:
        (data_root / "kodak" / f"{stem}.png").symlink_to(shared_data / "kodak" / f"{stem}.png")
    reencoded = io.BytesIO()
    Image.open(shared_data / "kodak" / "kodim01.png").save(reencoded, format="PNG", compress_level=1)
    assert reencoded.getvalue() != (shared_data / "kodak" / "kodim01.png").read_bytes()

    def fake_http_get(url, out, *, desc="", timeout=60.0):
        assert url == "http://r0k.us/graphics/kodak/kodak/kodim01.png"
        return out.write(reencoded.getvalue())

    monkeypatch.delenv("IREC_OFFLINE")
    monkeypatch.setattr(download, "http_get", fake_http_get)
    images = load_kodak()
    assert len(images) == 24 and (data_root / "kodak" / "kodim01.png").is_file()


# ----- torch datasets -----

def test_the_array_dataset_yields_uint8_chw_tensors(rng):
    images = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    dataset = ImageArrayDataset(images)
    assert len(dataset) == 4
    item = dataset[2]
    assert item.dtype == torch.uint8 and item.shape == (3, 5, 6)
    np.testing.assert_array_equal(item.numpy().transpose(1, 2, 0), images[2])
    with pytest.raises(ValueError, match="uint8 \\(N, H, W, 3\\)"):
        ImageArrayDataset(images.astype(np.float32))


def test_random_crops_are_reproducible_patches_of_the_images_some_flipped(rng):
    images = [rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8), rng.integers(0, 256, (16, 16, 3), np.uint8)]
    dataset = RandomCropDataset(images, crop=8, length=50, seed=7)
    again = RandomCropDataset(images, crop=8, length=50, seed=7)
    flips = 0
    for i in range(len(dataset)):
        patch = dataset[i].numpy().transpose(1, 2, 0)
        assert patch.shape == (8, 8, 3) and torch.equal(dataset[i], again[i])
        found = {
            flip for image in images for flip in (False, True)
            for y in range(image.shape[0] - 7) for x in range(image.shape[1] - 7)
            if np.array_equal(image[y:y + 8, x:x + 8][:, ::-1] if flip else image[y:y + 8, x:x + 8], patch)
        }
        assert found, f"crop {i} is not a patch of any image"
        flips += found == {True}
    assert 5 < flips < 45
    other = RandomCropDataset(images, crop=8, length=50, seed=8)
    assert any(not torch.equal(dataset[i], other[i]) for i in range(10))


def test_random_crops_can_come_from_area_downsampled_images(rng):
    image = np.repeat(np.repeat(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), 2, axis=0), 2, axis=1)
    dataset = RandomCropDataset([image], crop=6, length=3, seed=0, downsample=2, flip=False)
    np.testing.assert_array_equal(dataset[0].numpy().transpose(1, 2, 0), image[::2, ::2])
    with pytest.raises(ValueError, match="smaller than the 8x8 crop"):
        RandomCropDataset([image], crop=8, length=3, downsample=2)


def test_held_back_indices_are_the_end_of_the_seeded_order_and_never_in_the_subset_taken_from_its_start():
    held = held_back_indices(100, 30, seed=4)
    assert len(held) == 30 and list(held) == sorted(set(held)) and np.array_equal(held, held_back_indices(100, 30, 4))
    assert not set(held) & set(subset_indices(100, 70, seed=4))
    assert set(held) | set(subset_indices(100, 70, seed=4)) == set(range(100))
    with pytest.raises(ValueError, match="between 1 and 100"):
        held_back_indices(100, 0)
