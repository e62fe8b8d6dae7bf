"""Which rows of a results file survive when the suite codes it again (pipeline steps 04 and 05).

A results file (``results/<kind>/<dataset>.csv``) is rewritten, atomically, by every coding run. What it keeps:

- :func:`resumable_rows`: the rows an interrupted run of the same, committed code left, so that rerunning the
  command codes only the other images (rows of another commit, or of uncommitted code, are coded again);
- :func:`other_models_rows`: the rows of models the run does not code, whatever their commit (each row says which);
- :func:`other_settings_rows`: the rows of the same model (by weights fingerprint) coded with another encoder
  setting, e.g. the lossless encoder that refines the posteriors (``setting`` ``... refine=100``), whatever their
  commit, so that coding with the default setting leaves them; a new model's rows replace them;
- :func:`keep_rows`: writes the kept rows back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from irec.evaluation.results import read_rows, write_rows

log = logging.getLogger(__name__)


def _read_or_empty(out: Path) -> pd.DataFrame:
    """``out``'s rows, or none when it is missing or cannot be read (a run killed in the middle of a row)."""
    try:
        return read_rows(out)
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return pd.DataFrame()


def resumable_rows(out: Path, resume: bool) -> pd.DataFrame | None:
    """The rows an interrupted run left in ``out`` when resuming and the code is committed; None otherwise. ``out``
    is removed when nothing is kept from it, or when it cannot be read (a run killed in the middle of a row)."""
    from irec import provenance

    commit = provenance.git_commit()
    if resume and out.is_file() and not commit.endswith(("+dirty", "(declared)")) and commit != "unknown":
        try:
            rows = read_rows(out)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            log.warning("%s cannot be read (%s); coding every image again", out, err)
            rows = pd.DataFrame()
        if "git_commit" in rows:
            return rows[rows["git_commit"].astype(str) == commit]
    out.unlink(missing_ok=True)
    return None


def other_models_rows(out: Path, models: list[str]) -> pd.DataFrame:
    """The rows of ``out`` made by models other than ``models``, whatever their commit; empty when ``out`` is
    missing or cannot be read."""
    rows = _read_or_empty(out)
    return rows[~rows["model"].astype(str).isin(models)] if "model" in rows else pd.DataFrame()


def other_settings_rows(out: Path, fingerprint: str, setting: str) -> pd.DataFrame:
    """The rows of ``out`` coded by the model of ``fingerprint`` with an encoder setting other than ``setting``,
    whatever their commit; empty when ``out`` is missing or cannot be read."""
    rows = _read_or_empty(out)
    if not {"fingerprint", "setting"} <= set(rows.columns):
        return pd.DataFrame()
    return rows[(rows["fingerprint"].astype(str) == fingerprint) & (rows["setting"].astype(str) != setting)]


def keep_rows(out: Path, kept: list[pd.DataFrame]) -> None:
    """Rewrite ``out`` with only the kept rows (atomically, so an interruption here loses nothing either)."""
    # an empty cell, which pandas read as NaN, stays empty (not "nan"); so does a NaN (e.g. MS-SSIM of a small image)
    rows = [{k: None if v != v else v for k, v in r.items()} for frame in kept for r in frame.to_dict("records")]
    staged = out.with_name(f".{out.name}.resume")
    staged.unlink(missing_ok=True)
    if rows:
        write_rows(staged, rows).replace(out)
    else:
        out.unlink(missing_ok=True)
