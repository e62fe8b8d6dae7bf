"""Shared fixtures: the read-only shared data folder and small images made on the fly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from irec.paths import data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``$IREC_DATA`` (``../shared/data`` in CI). Tests that need it fail loudly if it is absent."""
    root = data_root()
    if not (root / "kodak").is_dir():
        pytest.fail(f"shared test data not found at {root}; set IREC_DATA to ../shared/data")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _writable_cache(tmp_path_factory, monkeypatch):
    """Every test gets a private writable cache unless CI set one."""
    if "IREC_CACHE" not in os.environ:
        monkeypatch.setenv("IREC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """``$IREC_CACHE`` set to an empty folder of this test's own (even where CI shares one)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IREC_CACHE", str(cache))
    return cache


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """An empty shelf of shipped models (models/ with an empty manifest) in place of the repository's."""
    from irec import paths

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"schema": "test", "models": []}))
    monkeypatch.setattr(paths, "SHIPPED_MODELS", folder)
    return folder


@pytest.fixture
def one_torch_thread():
    """Tiny models on a busy 2-core machine: intra-op threads only add waiting. Restores the old setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
