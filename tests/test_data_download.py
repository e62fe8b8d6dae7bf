"""irec.data.download: temporary file, verification, os.replace; read-only folders; offline errors.

Nothing here touches the network: downloads read fixture files through ``file://`` URLs (the real urllib +
tqdm code path) or through a monkeypatched ``http_get``.
"""

from __future__ import annotations

import hashlib
import stat
import urllib.error
from pathlib import Path

import pytest

import irec.data.download as download
from irec.data.download import (
    ChecksumError, DatasetMissingError, RemoteFile, ensure_file, fetch, sidecar_path, verify_file, writable_folder,
)


@pytest.fixture
def roots(tmp_path, monkeypatch, private_cache) -> tuple[Path, Path]:
    """(data root, cache root), both empty; online unless a test says otherwise."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("IREC_DATA", str(data))
    monkeypatch.delenv("IREC_OFFLINE", raising=False)
    return data, private_cache


@pytest.fixture
def served(tmp_path) -> Path:
    """A file to be 'downloaded'."""
    path = tmp_path / "server" / "archive.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 300)
    return path


def _remote(served: Path, **expect) -> RemoteFile:
    return RemoteFile(url=served.as_uri(), filename="archive.bin", **expect)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_download_is_verified_and_moved_into_the_dataset_folder(roots, served):
    data, _ = roots
    path = fetch(_remote(served, size=served.stat().st_size, sha256=_sha256(served)), "toy")
    assert path == data / "toy" / "archive.bin"
    assert path.read_bytes() == served.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["archive.bin"]  # no partial file left


def test_a_download_with_the_wrong_checksum_is_deleted_and_raises_a_clear_error(roots, served):
    data, _ = roots
    with pytest.raises(ChecksumError, match="md5 .* does not match the expected 0123"):
        fetch(_remote(served, md5="0123" * 8), "toy")
    assert list(data.iterdir()) == []  # neither the partial file nor an empty dataset folder is left


def test_a_download_of_the_wrong_size_is_deleted_and_raises_a_clear_error(roots, served):
    data, _ = roots
    with pytest.raises(ChecksumError, match="expected exactly 12 "):
        fetch(_remote(served, size=12), "toy")
    assert list(data.iterdir()) == []  # neither the partial file nor an empty dataset folder is left


def test_an_extra_check_can_reject_a_download(roots, served):
    def refuse(path: Path) -> None:
        raise ChecksumError(f"{path.name} refused")

    with pytest.raises(ChecksumError, match="refused"):
        fetch(_remote(served), "toy", check=refuse)
    assert not (roots[0] / "toy" / "archive.bin").exists()


def test_a_read_only_data_folder_is_never_written_to(roots, served):
    data, cache = roots
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only (root ignores it: the loader must not)
    try:
        assert writable_folder("toy") == cache / "data" / "toy"
        path = fetch(_remote(served, sha256=_sha256(served)), "toy")
        assert path == cache / "data" / "toy" / "archive.bin"
        assert list(data.iterdir()) == []
        assert ensure_file("toy", _remote(served, sha256=_sha256(served))) == path  # found in the cache next time
    finally:
        data.chmod(stat.S_IRWXU)


def test_offline_mode_raises_without_trying_the_network(roots, served, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setenv("IREC_OFFLINE", "1")
    monkeypatch.setattr(download, "http_get", no_network)
    with pytest.raises(DatasetMissingError, match="IREC_OFFLINE is set") as info:
        ensure_file("toy", _remote(served))
    assert served.as_uri() in str(info.value) and str(roots[0] / "toy") in str(info.value)


def test_a_failed_download_raises_a_missing_dataset_error_naming_url_and_folder(roots, monkeypatch):
    def unreachable(url, out, *, desc="", timeout=60.0):
        out.write(b"partial")
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download, "http_get", unreachable)
    remote = RemoteFile(url="https://example.invalid/set.zip", filename="set.zip")
    with pytest.raises(DatasetMissingError, match="download failed") as info:
        ensure_file("toy", remote, hint="Or use the sample")
    message = str(info.value)
    assert "https://example.invalid/set.zip" in message and str(roots[0] / "toy") in message
    assert message.endswith("Or use the sample")
    assert list(roots[0].iterdir()) == []  # the partial file is gone, and so is the folder made for it


def test_a_failed_download_into_the_cache_leaves_no_empty_folders_there_either(roots, monkeypatch):
    data, cache = roots
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only: the download goes to <cache>/data/toy/

    def unreachable(url, out, *, desc="", timeout=60.0):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download, "http_get", unreachable)
    try:
        with pytest.raises(DatasetMissingError, match=str(cache / "data" / "toy")):
            fetch(RemoteFile(url="https://example.invalid/set.zip", filename="set.zip"), "toy")
    finally:
        data.chmod(stat.S_IRWXU)
    assert not (cache / "data").exists() and list(data.iterdir()) == []


def test_a_failed_download_keeps_a_dataset_folder_that_was_there_before(roots, served, monkeypatch):
    folder = roots[0] / "toy"
    folder.mkdir()
    (folder / "other.bin").write_bytes(b"kept")
    with pytest.raises(ChecksumError):
        fetch(_remote(served, size=12), "toy")
    assert sorted(p.name for p in folder.iterdir()) == ["other.bin"]
    (folder / "other.bin").unlink()
    with pytest.raises(ChecksumError):
        fetch(_remote(served, size=12), "toy")
    assert folder.is_dir()  # it was not made by the download: an empty folder the user made stays


def test_a_failed_kodak_download_names_the_file_and_the_page_that_lists_all_24(roots, monkeypatch):
    from irec.data.datasets import load_kodak
    from irec.data.registry import KODAK_PAGE, kodak_remote

    def unreachable(url, out, *, desc="", timeout=60.0):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download, "http_get", unreachable)
    with pytest.raises(DatasetMissingError) as info:
        load_kodak()
    message = str(info.value)
    assert kodak_remote("kodim01").url in message and KODAK_PAGE in message and "kodim24.png" in message
    assert list(roots[0].iterdir()) == []


def test_a_file_without_a_published_hash_gets_one_recorded_and_checked(roots, served):
    folder = roots[0] / "toy"
    folder.mkdir()
    local = folder / "archive.bin"
    local.write_bytes(served.read_bytes())
    remote = _remote(served, approx_size=local.stat().st_size, record_sha256=True)
    verify_file(local, remote)
    assert sidecar_path(local).read_text() == f"{_sha256(local)}  archive.bin\n"
    verify_file(local, remote)
    local.write_bytes(b"\xff" + served.read_bytes()[1:])  # same size, one byte changed
    with pytest.raises(ChecksumError, match="recorded in"):
        verify_file(local, remote)


def test_a_sidecar_for_a_file_in_a_read_only_folder_goes_to_the_cache(roots, served):
    data, cache = roots
    folder = data / "toy"
    folder.mkdir()
    (folder / "archive.bin").write_bytes(served.read_bytes())
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        verify_file(folder / "archive.bin", _remote(served, record_sha256=True))
        assert sorted(p.name for p in folder.iterdir()) == ["archive.bin"]
        assert (cache / "data" / "toy" / "archive.bin.sha256").is_file()
    finally:
        folder.chmod(stat.S_IRWXU)


def test_the_stated_size_is_checked_within_its_tolerance(roots, served):
    size = served.stat().st_size
    verify_file(served, _remote(served, approx_size=int(size * 1.05), size_tolerance=0.1))
    with pytest.raises(ChecksumError, match="stated to be about"):
        verify_file(served, _remote(served, approx_size=size * 2, size_tolerance=0.1))
