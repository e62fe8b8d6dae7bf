"""The model registry: shipped models (models/manifest.json) and cached ones, found by name, path or fingerprint.

Paper, section 4: the codecs decode only under the exact weights that wrote a file, and
docs/irec-method.md section 4 puts "a model fingerprint" in every file's header. As in CompressAI's
``zoo``, models are addressed by name; in addition a file's 4-byte fingerprint prefix finds its model.

- shipped: ``irec.paths.SHIPPED_MODELS`` (``<repo>/models/``), listed in ``manifest.json`` (schema below);
- cached: ``irec.paths.cache_root() / "models" / NAME.pt``, any model written by :func:`irec.checkpoint.save_model`.

Manifest entries: ``name``, ``file`` (relative to models/), ``sha256`` (of the file), ``fingerprint`` (the
weights' sha256 from save_model), ``kind`` ("lossless" / "lossy"), ``preset``, ``beta`` (lossy), ``steps``,
``data``, ``git_commit`` and ``figures`` (measured results, e.g. bpd).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from irec import paths
from irec.checkpoint import CheckpointError, load_model, read_model_info
from irec.models.quantize import model_kind

MANIFEST = "manifest.json"
SUFFIX = ".pt"


class ModelNotFoundError(ValueError):
    """No shipped or cached model has this name, path or fingerprint."""


def _shipped() -> list[dict]:
    manifest = paths.SHIPPED_MODELS / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = json.loads(manifest.read_text())["models"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{manifest} is not a valid model manifest ({err}); restore it from git") from err
    return [{**e, "source": "shipped", "path": str(paths.SHIPPED_MODELS / e["file"])} for e in entries]


def _cached() -> list[dict]:
    folder = paths.cache_root() / "models"
    out = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        try:
            info = read_model_info(path)
        except CheckpointError:
            continue  # not a saved model (e.g. a training checkpoint); not addressable by name
        out.append({
            "name": path.stem, "file": path.name, "source": "cached", "path": str(path),
            "kind": model_kind(str(info.get("model_class", ""))), "fingerprint": info.get("fingerprint", ""),
            "preset": info.get("extra", {}).get("preset"), "figures": info.get("extra", {}).get("figures", {}),
        })
    return out


def list_models() -> list[dict]:
    """Every shipped model, then every cached one: name, source, path, kind, fingerprint and measured figures."""
    return _shipped() + _cached()


def _available() -> str:
    names = [f"{m['name']} ({m['source']})" for m in list_models()]
    return ", ".join(names) if names else "none (train one, or place a saved model in $IREC_CACHE/models)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(name_or_path: str | os.PathLike) -> tuple[nn.Module, str, dict]:
    """(model in eval mode, weights fingerprint hex, registry info) for a checkpoint path or a model name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        model, fingerprint = load_model(path)
        return model, fingerprint, {"name": path.stem, "source": "path", "path": str(path),
                                    "kind": model_kind(f"{type(model).__module__}.{type(model).__qualname__}")}
    for entry in list_models():
        if entry["name"] == str(name_or_path):
            if entry["source"] == "shipped" and entry.get("sha256") and _sha256(Path(entry["path"])) != entry["sha256"]:
                raise CheckpointError(
                    f"shipped model {entry['name']}: {entry['path']} does not match the sha256 in the manifest; "
                    "restore it from git"
                )
            model, fingerprint = load_model(entry["path"])
            return model, fingerprint, entry
    raise ModelNotFoundError(f"no model file or model named {str(name_or_path)!r}; available: {_available()}")


def find_by_fingerprint(prefix: bytes) -> Path:
    """The shipped or cached model whose weights fingerprint starts with ``prefix`` (e.g. a file header's 4 bytes)."""
    want = bytes(prefix).hex()
    if not want:
        raise ValueError("an empty fingerprint prefix matches every model")
    for entry in list_models():
        fingerprint = entry.get("fingerprint") or read_model_info(entry["path"]).get("fingerprint", "")
        if fingerprint.startswith(want):
            return Path(entry["path"])
    raise ModelNotFoundError(
        f"no shipped or cached model has the fingerprint {want}...; pass the model with --model "
        f"(available: {_available()})"
    )
