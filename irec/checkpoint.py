"""Atomic checkpoints, and trained models saved with their configuration and a weight fingerprint.

The method note (Section 4) asks for compressed files whose header carries "a model fingerprint": a file decodes
only under the exact weights that wrote it. :func:`weights_fingerprint` is that fingerprint (SHA-256 over every
tensor's name, dtype, shape and bytes, in sorted order); :func:`save_model` stores it beside the weights and
:func:`load_model` checks it. Every write goes to a temporary file in the same folder and is then renamed with
``os.replace`` (atomic on POSIX), so an interrupted run never leaves a half-written checkpoint. Everything loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from irec.fileio import atomic_write
from irec.provenance import stamp

MODEL_FORMAT = "irec-model-v1"  # the "format" field of a saved model
TRAINING_FORMAT = "irec-train-v1"  # the "format" field of a training checkpoint


class CheckpointError(ValueError):
    """A checkpoint or saved model is missing, unreadable, of the wrong kind, or fails its fingerprint check."""


class ResumeMismatchError(CheckpointError):
    """The training checkpoint in a run folder was written with settings that cannot be resumed under the new ones."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file and ``os.replace``; returns the path."""
    with atomic_write(path) as handle:
        torch.save(obj, handle)
    return Path(path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with a clear error when the file is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train a model first or check the path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the tensors of a state dict: names, dtypes, shapes and raw bytes, keys sorted."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _qualified_name(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _import_irec(name: str) -> type:
    module_name, _, attr = name.rpartition(".")
    if not module_name.startswith("irec."):
        raise CheckpointError(f"saved models may only name classes of the irec package, not {name!r}")
    return getattr(importlib.import_module(module_name), attr)


def _tuples(value: Any) -> Any:
    """JSON-like config values back to the tuples that frozen dataclasses hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def save_model(model: nn.Module, path: str | os.PathLike, extra: dict | None = None) -> str:
    """Save weights + the model's config (``model.config``, a dataclass) + fingerprint; returns the fingerprint.

    The model class must be built as ``cls(config)`` and live in the irec package. ``extra`` (plain values) is
    stored too, e.g. training metrics.
    """
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise CheckpointError(
            f"{type(model).__name__} has no dataclass .config; save_model cannot record how to rebuild it"
        )
    state_dict = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    fingerprint = weights_fingerprint(state_dict)
    atomic_save(
        {
            "format": MODEL_FORMAT,
            "model_class": _qualified_name(type(model)),
            "config_class": _qualified_name(type(config)),
            "config": dataclasses.asdict(config),
            "state_dict": state_dict,
            "fingerprint": fingerprint,
            "provenance": stamp(),
            "extra": dict(extra or {}),
        },
        path,
    )
    return fingerprint


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """Rebuild a model saved by :func:`save_model` (in eval mode) and return it with its verified fingerprint."""
    saved = load(path, map_location=map_location)
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is not a saved irec model (expected format {MODEL_FORMAT!r})")
    fingerprint = weights_fingerprint(saved["state_dict"])
    if fingerprint != saved["fingerprint"]:
        raise CheckpointError(f"{path}: the weights do not match their recorded fingerprint; the file is corrupt")
    config_cls = _import_irec(saved["config_class"])
    config = config_cls(**{k: _tuples(v) for k, v in saved["config"].items()})
    model = _import_irec(saved["model_class"])(config)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), fingerprint


def read_model_info(path: str | os.PathLike) -> dict:
    """A saved model's manifest (class, config, fingerprint, provenance, extra) without building the model."""
    saved = load(path)
    return {k: v for k, v in saved.items() if k != "state_dict"}


def _config_dict(config: Any) -> dict | None:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None


def save_training_state(
    path: str | os.PathLike, *, step: int, model: nn.Module, ema: nn.Module, optimizer, scheduler, config, metrics: dict
) -> None:
    """Atomically write everything a resumed run needs: step, weights, EMA, optimizer, schedule, configs, metrics."""
    atomic_save(
        {
            "format": TRAINING_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "config": dataclasses.asdict(config),
            "model_config": _config_dict(getattr(model, "config", None)),
            "metrics": dict(metrics),
            "provenance": stamp(),
        },
        path,
    )


def load_training_state(
    path: str | os.PathLike, config, model: nn.Module, must_match: tuple[str, ...], map_location="cpu"
) -> dict:
    """A training checkpoint, after checking that ``config``'s ``must_match`` fields and the model config agree."""
    saved = load(path, map_location=map_location)
    if not isinstance(saved, dict) or saved.get("format") != TRAINING_FORMAT:
        raise ResumeMismatchError(f"{path} is not an irec training checkpoint; use a new run_dir")
    old, new = saved["config"], dataclasses.asdict(config)
    diffs = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in must_match if _tuples(old.get(k)) != _tuples(new[k])]
    if saved.get("model_config") != _config_dict(getattr(model, "config", None)):
        diffs.append("the model configuration")
    if diffs:
        raise ResumeMismatchError(
            f"cannot resume {path} with different settings ({'; '.join(diffs)}); use a new run_dir to start afresh"
        )
    return saved
