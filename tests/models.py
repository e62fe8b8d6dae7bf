"""The one place tests build small models: untrained ``smoke``-preset networks (fast, not usable codecs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from irec.checkpoint import save_model
from irec.models.rvae import RVAE
from irec.models.vae2 import TwoLevelVAE
from irec.settings import lossless_preset, lossy_preset


def small_lossless(seed: int = 0, **overrides) -> RVAE:
    """An untrained smoke-preset RVAE in eval mode (``overrides`` change RVAEConfig fields)."""
    torch.manual_seed(seed)
    return RVAE(dataclasses.replace(lossless_preset("smoke").model, **overrides)).eval()


def small_lossy(beta: float = 0.01, distortion: str = "mse", seed: int = 0, **overrides) -> TwoLevelVAE:
    """An untrained smoke-preset two-level VAE at one rate point in eval mode (``overrides``: VAE2Config fields)."""
    torch.manual_seed(seed)
    config = dataclasses.replace(lossy_preset("smoke").config(beta, distortion), **overrides)
    return TwoLevelVAE(config).eval()


def save_small(kind: str, path: str | Path, **kwargs) -> str:
    """Save a small model of ``kind`` ("lossless" or "lossy") to ``path``; returns its fingerprint."""
    model = small_lossless(**kwargs) if kind == "lossless" else small_lossy(**kwargs)
    return save_model(model, path)
