"""Tests of packing a run to bring it back from a lent GPU (irec.training.transport) and of the GPU options."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from irec import checkpoint
from irec.data import ImageArrayDataset
from irec.settings import lossless_preset
from irec.training.loop import GpuOptions, train
from irec.training.transport import INDEX_NAME, TransportError, pack_run, read_index, unpack_run
from tests.models import small_lossless

CONFIG = dataclasses.replace(
    lossless_preset("smoke").train, n_steps=8, checkpoint_every=4, log_every=2, lr_milestones=(3, 6), device="cpu"
)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one intra-op thread is fastest on the shared 2-core machine."""


def _dataset(n: int = 24, size: int = 8) -> ImageArrayDataset:
    return ImageArrayDataset(np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _state(path) -> dict:
    saved = checkpoint.load(path)
    return {k: saved[k] for k in ("step", "model", "ema", "optimizer", "scheduler")}


def _assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A smoke run stopped after 4 of 8 steps, with the text files irec train writes beside it."""
    run = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, n_steps=4), run)
    (run / "data.txt").write_text("random test images\n")
    (run / "init.json").write_text(json.dumps({"path": "somewhere", "fingerprint": "f" * 64, "steps": 3}) + "\n")
    return run


def test_a_packed_run_unpacks_into_the_same_checkpoint_and_text_files(trained_run, tmp_path):
    files = pack_run(trained_run, tmp_path / "packed")
    assert files[0].name == INDEX_NAME and len(files) == 2  # a smoke checkpoint is one part
    assert read_index(tmp_path / "packed")["step"] == 4
    target = unpack_run(tmp_path / "packed", tmp_path / "again")
    assert target.read_bytes() == (trained_run / "checkpoint.pt").read_bytes()
    for name in ("config.json", "data.txt", "init.json"):
        assert (tmp_path / "again" / name).read_text() == (trained_run / name).read_text()


def test_a_small_size_limit_splits_the_checkpoint_and_every_file_stays_under_it(trained_run, tmp_path):
    size = (trained_run / "checkpoint.pt").stat().st_size
    limit = size // 4
    files = pack_run(trained_run, tmp_path / "packed", max_bytes=limit, max_files=None)
    assert len(files) - 1 >= 4
    assert all(f.stat().st_size < limit for f in files)
    unpack_run(tmp_path / "packed", tmp_path / "again")
    assert (tmp_path / "again" / "checkpoint.pt").read_bytes() == (trained_run / "checkpoint.pt").read_bytes()


def test_a_run_that_needs_more_files_than_allowed_is_refused_with_its_size(trained_run, tmp_path):
    limit = (trained_run / "checkpoint.pt").stat().st_size // 4
    with pytest.raises(TransportError, match="more than max_files=3"):
        pack_run(trained_run, tmp_path / "packed", max_bytes=limit, max_files=3)
    assert not (tmp_path / "packed" / INDEX_NAME).exists()


def test_a_corrupted_part_raises_a_clear_error_naming_the_file(trained_run, tmp_path):
    limit = (trained_run / "checkpoint.pt").stat().st_size // 3
    pack_run(trained_run, tmp_path / "packed", max_bytes=limit, max_files=None)
    part = tmp_path / "packed" / "run-checkpoint.part01"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(TransportError, match="run-checkpoint.part01 is corrupt"):
        unpack_run(tmp_path / "packed", tmp_path / "again")
    assert not (tmp_path / "again" / "checkpoint.pt").exists()
    part.unlink()
    with pytest.raises(TransportError, match="run-checkpoint.part01 is missing"):
        unpack_run(tmp_path / "packed", tmp_path / "again")


def test_unpacking_a_folder_without_a_packed_run_is_a_clear_error(tmp_path):
    with pytest.raises(TransportError, match="no packed run in"):
        unpack_run(tmp_path, tmp_path / "run")
    (tmp_path / INDEX_NAME).write_text("{}")
    with pytest.raises(TransportError, match="is not a packed run's index"):
        unpack_run(tmp_path, tmp_path / "run")


def test_unpacking_over_another_runs_checkpoint_is_refused(trained_run, tmp_path):
    pack_run(trained_run, tmp_path / "packed")
    other = tmp_path / "other"
    train(small_lossless(), None, _dataset(), dataclasses.replace(CONFIG, n_steps=1), other)
    with pytest.raises(TransportError, match="exists and differs"):
        unpack_run(tmp_path / "packed", other)
    unpack_run(tmp_path / "packed", other, overwrite=True)
    assert checkpoint.load(other / "checkpoint.pt")["step"] == 4


def test_training_resumed_after_pack_and_unpack_continues_exactly_like_an_uninterrupted_run(tmp_path):
    dataset = _dataset()
    full = train(small_lossless(), None, dataset, CONFIG, tmp_path / "full")
    first = train(small_lossless(), None, dataset, dataclasses.replace(CONFIG, n_steps=5), tmp_path / "gpu")
    assert first.step == 5
    limit = (first.checkpoint.stat().st_size // 2) + 1
    pack_run(tmp_path / "gpu", tmp_path / "came-back", max_bytes=limit)
    unpack_run(tmp_path / "came-back", tmp_path / "next")
    assert checkpoint.load(tmp_path / "next" / "checkpoint.pt")["step"] == 5  # the next call starts at step 6
    resumed = train(small_lossless(seed=99), None, dataset, CONFIG, tmp_path / "next")  # weights come from the pack
    assert resumed.step == full.step == 8
    _assert_same(_state(full.checkpoint), _state(resumed.checkpoint))
    assert resumed.fingerprint == full.fingerprint


@pytest.mark.parametrize("option", ["autocast_bf16", "compile", "tf32"])
def test_gpu_only_options_on_the_cpu_are_a_clear_error(tmp_path, option):
    with pytest.raises(ValueError, match=f"GpuOptions {option} need a CUDA device"):
        train(small_lossless(), None, _dataset(), CONFIG, tmp_path, gpu=GpuOptions(**{option: True}))
    assert torch.backends.cuda.matmul.allow_tf32 is False  # nothing left switched on


def test_the_dataset_held_on_the_device_gives_exactly_the_dataloaders_batches(tmp_path):
    dataset = _dataset()
    loader = train(small_lossless(), None, dataset, CONFIG, tmp_path / "loader")
    on_device = train(small_lossless(), None, dataset, CONFIG, tmp_path / "device", gpu=GpuOptions(data_on_device=True))
    _assert_same(_state(loader.checkpoint), _state(on_device.checkpoint))
    recorded = json.loads((tmp_path / "device" / "config.json").read_text())["gpu_options"]
    assert recorded == {"autocast_bf16": False, "compile": False, "data_on_device": True, "tf32": False}


def test_the_dataset_on_the_device_must_hold_uint8_tensors(tmp_path):
    floats = [torch.zeros(3, 8, 8) for _ in range(16)]
    with pytest.raises(ValueError, match="needs a dataset of uint8 tensors"):
        train(small_lossless(), None, floats, CONFIG, tmp_path, gpu=GpuOptions(data_on_device=True))


def test_a_call_reports_its_steps_per_second_after_the_warm_up_steps(tmp_path):
    config = dataclasses.replace(CONFIG, n_steps=14)
    result = train(small_lossless(), None, _dataset(), config, tmp_path)
    assert result.steps_per_s is not None and result.steps_per_s > 0
    short = train(small_lossless(), None, _dataset(), CONFIG, tmp_path / "short")
    assert short.steps_per_s is None  # 8 steps: all of them warm-up
