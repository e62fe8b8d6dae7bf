"""The datasets of the paper and their official sources, checksums and folders; which of them are present here.

Flamich et al. 2020, Section 4: lossless results on CIFAR-10 (Krizhevsky 2009), ImageNet32 (the 32x32
downsampled ImageNet of van den Oord et al. 2016, as in TFDS ``downsampled_imagenet/32x32``) and Kodak;
lossy training on CLIC 2018 professional and evaluation on Kodak. ``bsds500`` and ``sun_hays80`` are the
natural-photo stand-ins for CLIC train that the prepared data folder provides (docs/data.md), and
``clic_sample`` holds 2 of the 41 CLIC professional validation images.
"""

from __future__ import annotations

from dataclasses import dataclass

from irec.data.download import RemoteFile, locate, search_folders, writable_folder

_MiB, _GiB = 1 << 20, 1 << 30

CIFAR10_TARBALL = RemoteFile(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",  # published on https://www.cs.toronto.edu/~kriz/cifar.html
)
# The prepared data folder's CIFAR-10 (docs/data.md): uint8 NHWC arrays under the key "images".
CIFAR10_NPZ = {"test": "cifar10_test.npz", "train": "cifar10_train_subset20k.npz"}

# Size and sha256 from TFDS's registry (tensorflow/datasets, tensorflow_datasets/url_checksums/
# downsampled_imagenet.txt), i.e. the exact files the paper's TFDS pipeline accepted.
IMAGENET32_TARS = {
    "valid": RemoteFile(
        url="http://image-net.org/small/valid_32x32.tar",
        filename="valid_32x32.tar",
        size=161474560,
        sha256="862e559462b24cf736212a19f6b0d47b55c2dc8ebdaa95ccecfe71260124c8f7",
    ),
    "train": RemoteFile(
        url="http://image-net.org/small/train_32x32.tar",
        filename="train_32x32.tar",
        size=4113018880,
        sha256="244a323d48f8d72f65ad8b54658c01fed68d2d7bdc77ccb43da58c11e94224e5",
    ),
}

# No checksum or exact size is published for the CLIC 2018 archives: the challenge page states "1.9GB" and
# "129MB"; the size is checked within 10 % and the sha256 is recorded when the file is first seen.
CLIC_ZIPS = {
    "valid": RemoteFile(
        url="https://data.vision.ee.ethz.ch/cvl/clic/professional_valid.zip",
        filename="professional_valid.zip",
        approx_size=129 * _MiB,
        record_sha256=True,
    ),
    "train": RemoteFile(
        url="https://data.vision.ee.ethz.ch/cvl/clic/professional_train.zip",
        filename="professional_train.zip",
        approx_size=int(1.9 * _GiB),
        record_sha256=True,
    ),
}

KODAK_PAGE = "http://r0k.us/graphics/kodak/"
KODAK_BASE_URL = "http://r0k.us/graphics/kodak/kodak/"
# sha256 of the decoded pixels (pixel_sha256: C-order bytes of the (H, W, 3) uint8 array), computed from the
# prepared data folder's kodak/ (pixel-identical to r0k.us; PNG bytes differ between copies, so file hashes are
# useless).
KODAK_PIXEL_SHA256 = {
    "kodim01": "a00210743353594464ac67e680a41710f484444ca5f9dfddeb570de25c428273",  # 512x768
    "kodim02": "ae5a495df4ec40e0941265440ccf98973915b4190ab803e37a23ca93dd43a07e",  # 512x768
    "kodim03": "234e61f585503f2a44400f5561131e8a512ef2c15328cd83d5cdbf10e2616cf2",  # 512x768
    "kodim04": "e88e788fca00e6c723bb66ff45edb8cb56091ee284dcb73e3909834f2c96eeb6",  # 768x512
    "kodim05": "ed3d1ee770909d3b27903b52ce19ee59a9bf24621a7bf1fb57b90677da880cb6",  # 512x768
    "kodim06": "7f45158999fa297d1cfbd292b3e2f3f5b27770701c3473155c211c3f512cc97f",  # 512x768
    "kodim07": "4e3664bf6fe865b49f15f7b554efa7dbecaf73ae0e8699f2e307bf07849f1264",  # 512x768
    "kodim08": "889c3740e4ed54ca53d11ae735a44d15fa24fe312b3bd1609a80618a4092c208",  # 512x768
    "kodim09": "f8453140e63a42301a6dbebb849a3cc40d34e4e59580eb1f372f7f5460df0dbe",  # 768x512
    "kodim10": "fabe11b5c4f028394e093a5b5907e5fabc8072da0d5334fb3a38547a7e1be842",  # 768x512
    "kodim11": "ab4dd9bf8431e717d33892b3ba03c63bfea3c7fa72c2610010de7df3c194c075",  # 512x768
    "kodim12": "f412db2168e599949aac26bd3264f111b23a684f30a21cfd320e9e95bc69bbae",  # 512x768
    "kodim13": "875703d56fb9396f478b5d7d3b18e2b77c17147a685c6dc2567e1c574aaf01e3",  # 512x768
    "kodim14": "2bd5029ee75ac1697542e5b05624e8afe186e3250abd7513d6a806b52084c2f0",  # 512x768
    "kodim15": "b5353e7511277009922ecbdebfc6418fec53aa1b2a08d44fc957a7540825697b",  # 512x768
    "kodim16": "ed21745fd32fce95cc2c6af7fc52b1b15e590c7a14ab18ab34bd65ecaf955ac7",  # 512x768
    "kodim17": "566bc866664e9b06dc86e2654051b454844efe17322dbf7e24156d8243f1943e",  # 768x512
    "kodim18": "3475af71066f3ca8206eb12cfc989ebe9c6e44820a96604e88ae018606e1f7bd",  # 768x512
    "kodim19": "7956408ef24222d37ac53f579bd24d5b2c3557b16c657e8b71c1b6ae9f18de1b",  # 768x512
    "kodim20": "666ce8f2db5566a123bb081e70618f6f4c4253df960f3b41bb9dcc3dd134f3cf",  # 512x768
    "kodim21": "2d6902daf7c4486b7c8c04d834091841a2b38c8f0c81cd7a963a6510b34a2a6a",  # 512x768
    "kodim22": "f430842120c108b67725ada96b8b7b2a914f6a0915eacd5595064c6c1a5d70a0",  # 512x768
    "kodim23": "81992a83592267e69125666f3e3e04c1819529b4c4c1e55fde0a6a741bac4219",  # 512x768
    "kodim24": "e3e3ccc3e795b82a3da66934409dfe98ce0f5aadc6d7767543c506453599bb98",  # 512x768
}


def kodak_remote(stem: str) -> RemoteFile:
    """The official address of one Kodak PNG (verified by decoded-pixel hash, not by file hash)."""
    return RemoteFile(url=f"{KODAK_BASE_URL}{stem}.png", filename=f"{stem}.png")


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset that :func:`irec.data.load_images` knows by name."""

    name: str  # the name load_images() takes; also the folder under $IREC_DATA
    title: str  # what it is, with its reference
    splits: tuple[str, ...]  # accepted split names, the default first; () when the dataset has no splits
    urls: tuple[str, ...]  # official sources
    checksum: str  # how downloaded or found files are verified
    note: str  # caveats: what is missing here, which stand-in to use


REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "cifar10", "CIFAR-10 (Krizhevsky 2009)", ("test", "train"), (CIFAR10_TARBALL.url,),
            "md5 of the tarball (published)",
            "the prepared data folder's npz is read when the tarball is absent; its train split is a 20k subset",
        ),
        DatasetInfo(
            "imagenet32", "ImageNet 32x32 (van den Oord et al. 2016)", ("valid", "train"),
            tuple(r.url for r in IMAGENET32_TARS.values()), "size and sha256 from the TFDS registry",
            "image-net.org/small is offline; place a genuine valid_32x32.tar in the folder",
        ),
        DatasetInfo(
            "kodak", "Kodak Lossless True Color Image Suite (24 images)", (), (KODAK_PAGE,),
            "sha256 of the decoded pixels of each image (pinned)", "PNG bytes differ between copies; pixels do not",
        ),
        DatasetInfo(
            "clic", "CLIC 2018 professional", ("valid", "train"), tuple(r.url for r in CLIC_ZIPS.values()),
            "approximate size; sha256 recorded at first download (no published checksum)",
            "not in the prepared data folder; use clic_sample (2 valid images) or bsds500 + sun_hays80 for training",
        ),
        DatasetInfo(
            "clic_sample", "2 images of CLIC 2018 professional validation", (), (CLIC_ZIPS["valid"].url,),
            "SHA256SUMS in the folder", "enough for a smoke test of the lossy pipeline, not for training",
        ),
        DatasetInfo(
            "bsds500", "BSDS500 (Martin et al. 2001; Arbelaez et al. 2011), 500 JPEGs", ("train", "val", "test"),
            ("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",),
            "SHA256SUMS in the folder", "JPEG (q about 94): a stand-in for CLIC train; no split = all 500 images",
        ),
        DatasetInfo(
            "sun_hays80", "Sun-Hays 80 (Sun & Hays, ICCP 2012), 80 colour JPEGs", (),
            ("https://github.com/majedelhelou/denoising_datasets (CSun_Hays80/)",),
            "SHA256SUMS in the folder", "JPEG (q about 75): a 2x area downsample removes most blocking",
        ),
    )
}


def _present(name: str) -> tuple[bool, str | None, str]:
    """(present, path, note) for one dataset, from file presence alone (no hashing)."""
    if name == "cifar10":
        if (tar := locate(name, CIFAR10_TARBALL.filename)) is not None:
            return True, str(tar), "official tarball: test and train splits"
        if (npz := locate(name, CIFAR10_NPZ["test"])) is not None:
            train = locate(name, CIFAR10_NPZ["train"])
            return True, str(npz.parent), "prepared npz: test" + (", train (20k subset)" if train else " only")
        return False, None, ""
    if name in ("imagenet32", "clic"):
        files = IMAGENET32_TARS if name == "imagenet32" else CLIC_ZIPS
        found = {split: locate(name, r.filename) for split, r in files.items()}
        splits = [s for s, p in found.items() if p is not None]
        if splits:
            return True, str(found[splits[0]].parent), "splits present: " + ", ".join(splits)
        return False, None, ""
    if name == "kodak":
        found = [p for stem in KODAK_PIXEL_SHA256 if (p := locate(name, f"{stem}.png")) is not None]
        folder = str(found[0].parent) if found else None
        return len(found) == len(KODAK_PIXEL_SHA256), folder, f"{len(found)} of {len(KODAK_PIXEL_SHA256)} images"
    for folder in search_folders(name):
        if folder.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in folder.rglob("*")):
            return True, str(folder), ""
    return False, None, ""


def dataset_status() -> list[dict]:
    """One row per registered dataset: name, present, path (where found, else where to put it), url, note."""
    rows = []
    for info in REGISTRY.values():
        present, path, found_note = _present(info.name)
        rows.append({
            "name": info.name,
            "present": present,
            "path": path or str(writable_folder(info.name)),
            "url": " ".join(info.urls),
            "note": "; ".join(n for n in (found_note, info.note) if n),
        })
    return rows
