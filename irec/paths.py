"""Absolute paths of the repository and of the data and cache folders.

Notebooks run from any working directory, so nothing in the package relies on the current directory.
Environment variables:

- ``IREC_DATA``: root of the datasets (``$IREC_DATA/<dataset>/``). Default: the folder ``shared/data`` in the
  checkout's parent folder when present (the prepared data folder, docs/data.md), else the user cache
  (``~/.cache/irec/data``).
- ``IREC_CACHE``: writable cache for downloads that cannot go to a read-only ``IREC_DATA``, compiled
  kernels and trained models that are not shipped. Default: ``~/.cache/irec``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "irec"
NOTEBOOKS = REPO / "notebooks"
RESULTS = REPO / "results"
FIGURES = REPO / "figures"
SHIPPED_MODELS = REPO / "models"


def cache_root() -> Path:
    """The writable cache folder (``$IREC_CACHE`` or ``~/.cache/irec``), created on demand."""
    root = Path(os.environ.get("IREC_CACHE", Path.home() / ".cache" / "irec")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_root() -> Path:
    """The datasets root: ``$IREC_DATA``, else ``shared/data`` in the checkout's parent folder, else the cache."""
    if "IREC_DATA" in os.environ:
        return Path(os.environ["IREC_DATA"]).expanduser().resolve()
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        return shared.resolve()
    return cache_root() / "data"
