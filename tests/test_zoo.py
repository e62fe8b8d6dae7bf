"""The model registry (irec.zoo): shipped and cached models by name, path or file fingerprint."""

from __future__ import annotations

import hashlib
import json

import pytest

from irec import paths, zoo
from irec.checkpoint import CheckpointError
from irec.models.rvae import RVAE
from tests.models import save_small


@pytest.fixture
def cached_model(private_cache, shipped) -> str:
    """A smoke RVAE saved as $IREC_CACHE/models/tiny.pt, with no shipped models; returns its fingerprint."""
    return save_small("lossless", private_cache / "models" / "tiny.pt")


def test_the_repository_manifest_is_valid_json_with_a_models_list():
    manifest = json.loads((paths.REPO / "models" / "manifest.json").read_text())
    assert isinstance(manifest["models"], list) and manifest["schema"]


def test_a_cached_model_is_listed_and_resolved_by_name(cached_model):
    (entry,) = zoo.list_models()
    assert entry["name"] == "tiny" and entry["source"] == "cached" and entry["kind"] == "lossless"
    model, fingerprint, info = zoo.resolve_model("tiny")
    assert isinstance(model, RVAE) and fingerprint == cached_model and info["path"] == entry["path"]


def test_a_checkpoint_path_resolves_directly(cached_model):
    model, fingerprint, info = zoo.resolve_model(paths.cache_root() / "models" / "tiny.pt")
    assert fingerprint == cached_model and info["source"] == "path" and info["kind"] == "lossless"


def test_a_model_is_found_by_its_fingerprint_prefix(cached_model):
    path = zoo.find_by_fingerprint(bytes.fromhex(cached_model)[:4])
    assert path == paths.cache_root() / "models" / "tiny.pt"


def test_an_unknown_name_or_fingerprint_lists_the_available_models(cached_model):
    with pytest.raises(zoo.ModelNotFoundError, match="tiny"):
        zoo.resolve_model("no-such-model")
    other = bytes(b ^ 0xFF for b in bytes.fromhex(cached_model)[:4])
    with pytest.raises(zoo.ModelNotFoundError, match="tiny"):
        zoo.find_by_fingerprint(other)


def test_a_shipped_model_is_resolved_and_its_file_checksum_is_verified(private_cache, shipped):
    fingerprint = save_small("lossless", shipped / "ship.pt")
    entry = {"name": "ship", "file": "ship.pt", "kind": "lossless", "fingerprint": fingerprint,
             "sha256": hashlib.sha256((shipped / "ship.pt").read_bytes()).hexdigest(), "figures": {"bpd": 1.0}}
    (shipped / "manifest.json").write_text(json.dumps({"schema": "test", "models": [entry]}))
    assert zoo.resolve_model("ship")[1] == fingerprint
    assert zoo.find_by_fingerprint(bytes.fromhex(fingerprint)[:4]) == shipped / "ship.pt"
    entry["sha256"] = "0" * 64
    (shipped / "manifest.json").write_text(json.dumps({"schema": "test", "models": [entry]}))
    with pytest.raises(CheckpointError, match="sha256"):
        zoo.resolve_model("ship")


def test_files_in_the_cache_that_are_not_saved_models_are_skipped(cached_model):
    (paths.cache_root() / "models" / "junk.pt").write_bytes(b"not a checkpoint")
    assert [m["name"] for m in zoo.list_models()] == ["tiny"]
