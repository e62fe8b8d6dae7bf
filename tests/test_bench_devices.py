"""``python -m irec.bench devices`` (irec.bench.devices): files written in one process, checked in another."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from irec.bench.devices import MANIFEST, main
from irec.data.images import write_png
from irec.paths import REPO
from tests.models import save_small


@pytest.fixture
def written(tmp_path):
    """A folder of files from a tiny lossy and a tiny lossless model, written in this process."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_png(tmp_path / "photos" / f"{name}.png", rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
        write_png(tmp_path / "tiny" / f"{name}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    save_small("lossy", tmp_path / "lossy.pt", seed=0)
    save_small("lossless", tmp_path / "lossless.pt", seed=0)
    out = tmp_path / "files"
    for model, images in (("lossy.pt", "photos"), ("lossless.pt", "tiny")):
        assert main(["write", "--model", str(tmp_path / model), "--dataset", str(tmp_path / images), "--images", "2",
                     "--out", str(out), "--no-progress"]) == 0
    return out


def _check(folder, csv) -> int:
    command = [sys.executable, "-m", "irec.bench", "devices", "check", str(folder), "--out", str(csv), "--no-progress"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False).returncode


def test_files_written_in_one_process_decode_exactly_and_encode_to_the_same_bytes_in_another(written, tmp_path):
    manifest = pd.read_csv(written / MANIFEST)
    assert sorted(manifest["model"]) == ["lossless", "lossless", "lossy", "lossy"]
    assert _check(written, tmp_path / "devices.csv") == 0
    rows = pd.read_csv(tmp_path / "devices.csv")
    assert len(rows) == 4 and rows["decode_exact"].all() and rows["same_bytes"].all()
    assert rows.loc[rows["model"] == "lossless", "lossless_exact"].astype(bool).all()
    assert {"checked_cpu", "written_on", "git_commit"} <= set(rows.columns)
    written_with = dict(zip(manifest["model"], manifest["fingerprint"]))  # each row names the weights it checked
    assert (rows["fingerprint"] == rows["model"].map(written_with)).all()


def test_a_decode_that_differs_from_the_writers_fails_the_check(written, tmp_path):
    manifest = pd.read_csv(written / MANIFEST)
    manifest.loc[0, "pixels_sha256"] = "0" * 64  # as if this machine decoded other pixels than the writer's
    manifest.to_csv(written / MANIFEST, index=False)
    assert main(["check", str(written), "--out", str(tmp_path / "devices.csv"), "--no-progress"]) == 1
    assert pd.read_csv(tmp_path / "devices.csv")["decode_exact"].tolist() == [False, True, True, True]


def test_a_file_changed_after_it_was_written_is_refused_not_checked(written, tmp_path):
    path = next((written / "lossy").glob("*.irec"))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="is not the file the manifest lists"):
        main(["check", str(written), "--out", str(tmp_path / "devices.csv"), "--no-progress"])


def test_with_a_gpu_the_check_synthesizes_each_lossy_file_there_and_finds_the_cpu_image(
    written, tmp_path, monkeypatch
):
    # CI has no GPU: let the CPU stand in for it, so the GPU branch runs (and should find the CPU's image)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, device=None: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, device=None: self)
    assert main(["check", str(written), "--out", str(tmp_path / "devices.csv"), "--no-progress"]) == 0
    rows = pd.read_csv(tmp_path / "devices.csv")
    lossy, lossless = rows[rows["model"] == "lossy"], rows[rows["model"] == "lossless"]
    assert lossy["gpu_exact"].astype(bool).all() and lossy["gpu_changed_values"].eq(0).all()
    assert lossless["gpu_exact"].isna().all()


def test_the_matrix_checks_the_files_in_a_fresh_process_under_each_kernel_variation(written, tmp_path):
    from irec.bench.devices import matrix

    table = matrix(written, tmp_path / "matrix.csv", ["native", "threads-2"])
    assert sorted(set(table["variation"])) == ["native", "threads-2"] and len(table) == 8
    assert table["decode_exact"].all() and table["checked_cpu_capability"].notna().all()
    assert len(pd.read_csv(tmp_path / "matrix.csv")) == 8
