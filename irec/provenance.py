"""What produced a number: git commit, device, library versions, timestamps.

Every result row and every checkpoint manifest carries these fields (non-negotiable 3: honest numbers).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from importlib import metadata

from irec.paths import REPO


@functools.cache
def git_commit() -> str:
    """The checkout's commit hash, with ``+dirty`` when the working tree has uncommitted changes.

    ``$IREC_GIT_COMMIT``, when set, is reported instead with ``(declared)`` after it: for copies of the code whose
    git state is not the code's (e.g. the working tree sent to a GPU machine, over an older checkout).
    Without git and without it: ``unknown``."""
    declared = os.environ.get("IREC_GIT_COMMIT")
    if declared:
        return f"{declared} (declared)"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        # Untracked files count too when they are code (irec/, notebooks/, tests/): they may have made the number.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", "irec", "notebooks", "tests",
             "pyproject.toml", "run_all.sh"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


@functools.cache
def device_description() -> str:
    """A short description of the compute device, e.g. ``cpu:2 cores x86_64`` or ``cuda:NVIDIA H100``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{os.cpu_count()} cores {platform.machine()}"


def library_version(name: str) -> str:
    """The installed version of a distribution, or ``missing``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def now_iso() -> str:
    """The current UTC time in ISO 8601, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def stamp() -> dict[str, str]:
    """The provenance fields shared by every result row."""
    return {"git_commit": git_commit(), "device": device_description(), "timestamp": now_iso()}
