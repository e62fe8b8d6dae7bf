"""Per-image evaluation rows of the lossy iREC codec (one tidy CSV row per image and model).

iREC paper, section 4 (lossy Kodak: real file bits vs PSNR and MS-SSIM in dB) and docs/irec-method.md
section 4 ("Report, per image: the real rate, split into header and latent bits per level; the ideal rate; the
quality of the coded sample compared with a random posterior sample"). The rows follow ``irec.evaluation.results.SCHEMA``
(the R-D sweep parameter is the model's ``beta``) with the lossy codec's extra columns, and carry
``irec.provenance.stamp()``. Extra columns:

- ``model``, ``fingerprint``, ``beta``, ``distortion``: which model made the file;
- ``bpp_header``, ``bpp_z2``, ``bpp_z1``: the real rate split (they add up to ``bpp``; the header part is the
  file's framing, its header and the ANS stream's final flush, the Encoding's ``header`` and ``tail``);
- ``bpp_ideal``, ``bpp_ideal_z2``, ``bpp_ideal_z1``: KL(q || p) per level in bits per pixel, of the model's own
  (amortized) posterior: the paper's ideal rate;
- ``bpp_kl_coded``, ``bpp_kl_coded_z2``, ``bpp_kl_coded_z1``: the same of the posterior coded, which the encoder's
  refinement (``refine_steps`` > 0, :mod:`irec.codecs.refine`) moves; equal to the above without it;
- ``psnr_float``: PSNR of the clipped float output (the paper's); ``psnr_db`` is that of the uint8 image;
- ``sample_psnr``, ``sample_psnr_float``, ``sample_ms_ssim``, ``sample_ms_ssim_db``: one random posterior sample;
- ``log_ratio_minus_kl_z2``, ``log_ratio_minus_kl_z1``: log q(z)/p(z) of the coded sample minus KL (nats);
- ``final``, ``n_seeds``, ``seed``: how the coded sample was chosen; ``exact``: decoded == encoder's image
  (``error``: why a file did not decode; both from :mod:`irec.evaluation.coding`, as ``model`` and ``fingerprint``);
- ``refine_steps``, ``refine_step_size``, ``refine_kl_weight``: the encoder's refinement of q(z1) (also in ``params``);
- ``low_rate``: coded with the codec's ``low_rate_params`` (the setting for cheap images), which ``params`` then
  gives, beside the codec's ``low_rate_params`` (None: one setting for every image).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irec.codecs.encoding import HEADER, TAIL
from irec.codecs.lossy import LossyCodec
from irec.evaluation.coding import code_image, psnr_float, quality, schema_columns
from irec.evaluation.results import write_rows
from irec.provenance import stamp
from irec.settings import Refinement

log = logging.getLogger(__name__)

CODEC_NAME = "irec-lossy"


def model_name(codec: LossyCodec) -> str:
    """A readable default name for the codec's model, e.g. ``vae2-mse-beta0.01-N8-M8``."""
    config = codec.model.config
    return f"vae2-{config.distortion}-beta{config.beta:g}-N{config.n_channels}-M{config.m_channels}"


def evaluate_image(
    codec: LossyCodec, name: str, image: np.ndarray, *, dataset: str = "", split: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Code one uint8 (H, W, 3) image, decode it, and return its result row (provenance included): the real rate
    by part beside the ideal, the quality of the file and of one posterior sample (the paper's ideal)."""
    coded = code_image(codec, image)
    encoding = coded.encoding
    details, pixels = encoding.details, encoding.n_pixels
    config, low = codec.model.config, codec.low_rate_params
    n_seeds = codec.n_seeds if codec.final in ("mse", "rd") else 1
    params = {**asdict(low if details["low_rate"] else codec.params), "final": codec.final, "n_seeds": n_seeds,
              "low_rate_params": None if low is None else asdict(low), **codec.refinement.columns()}
    row = schema_columns(coded, image, name=name, dataset=dataset, split=split, codec=CODEC_NAME,
                         label=f"iREC lossy ({codec.final})", lossless=False, params=params,
                         sweep=("beta", config.beta))
    row.update({"model": model or model_name(codec), "fingerprint": codec.fingerprint, "beta": config.beta,
                "distortion": config.distortion})
    row["bpp_header"] = (encoding.bits[HEADER] + encoding.bits[TAIL]) / pixels
    # The ideal rate is the KL of the model's own posterior (the paper's); bpp_kl_coded that of the posterior coded,
    # which differs from it when the encoder refines q(z1)'s mean (irec.codecs.refine).
    for level in encoding.levels:
        row[f"bpp_{level}"] = encoding.bits[level] / pixels
        row[f"bpp_ideal_{level}"] = encoding.ideal_bits[level] / pixels
        row[f"bpp_kl_coded_{level}"] = details["kl_coded_bits"][level] / pixels
        row[f"log_ratio_minus_kl_{level}"] = details["log_ratio_minus_kl_nats"][level]  # nats; > 0: beam bias
    row["bpp_ideal"] = encoding.ideal_bpp
    row["bpp_kl_coded"] = sum(details["kl_coded_bits"].values()) / pixels
    row["psnr_float"] = psnr_float(image, details["x_float"])
    row.update(quality(image, *codec.posterior_sample(image), prefix="sample_"))
    row.update({**codec.refinement.columns(), "seed": encoding.params.seed, "final": codec.final,
                "low_rate": details["low_rate"], "n_seeds": n_seeds, "exact": coded.exact, "error": coded.error})
    return {**row, **stamp()}


def _same_refinement(params: dict, refinement: Refinement) -> bool:
    """Whether a row's ``params`` record this refinement (rows from before it existed were not refined)."""
    steps = params.get("refine_steps", 0)
    if steps == 0 or refinement.steps == 0:
        return steps == refinement.steps
    return all(params.get(k) == v for k, v in refinement.columns().items())


def coded_like(params: dict, codec: LossyCodec) -> bool:
    """Whether a row's ``params`` (as :func:`evaluate_image` records them) are what ``codec`` would record: its
    final (and seed count), its refinement, its ``low_rate_params``, and one of its coder settings. Rows from before
    a field existed count as its default (no refinement, one coder setting)."""
    low = codec.low_rate_params
    settings = [asdict(codec.params)] + ([asdict(low)] if low is not None else [])
    default = {f.name: f.default for f in fields(codec.params)}  # a field newer than the row: its default
    return (any(all(params.get(k, default[k]) == v for k, v in setting.items()) for setting in settings)
            and params.get("final", codec.final) == codec.final
            and (codec.final not in ("mse", "rd") or params.get("n_seeds") == codec.n_seeds)
            and params.get("low_rate_params") == (None if low is None else asdict(low))
            and _same_refinement(params, codec.refinement))


def rows_coded_like(rows: pd.DataFrame, codec: LossyCodec, images: Sequence[str]) -> pd.DataFrame:
    """The rows of ``rows`` that ``codec`` would write for ``images`` (its model's fingerprint, :func:`coded_like`),
    the last one per image."""
    rows = rows[(rows["fingerprint"].astype(str) == codec.fingerprint) & rows["image"].astype(str).isin(images)]
    same = [coded_like(json.loads(p), codec) for p in rows["params"].astype(str)]
    return rows[np.array(same, dtype=bool)].drop_duplicates("image", keep="last").reset_index(drop=True)


def evaluate_dataset(
    codec: LossyCodec, images: Sequence[tuple[str, np.ndarray]], *, dataset: str, split: str | None = None,
    out: str | Path | None = None, model: str | None = None, progress: bool = True, workers: int | None = 1,
    source: str | None = None,
) -> pd.DataFrame:
    """Evaluate every (name, image); rows are appended to ``out`` (if given) image by image, in the images' order,
    so a long run keeps what it finished. Returns all rows as a DataFrame.

    ``workers``: processes coding images (:mod:`irec.evaluation.parallel`; 0: one per available core; 1: in this
    process), each loading the model from ``source`` (its name or path) once; the rows are the same whatever the
    count (timings and stamps apart)."""
    if not len(images):
        raise ValueError(f"no images to evaluate in {dataset!r}; check the dataset name, split and limit")
    return evaluate_models([(codec, source, model, images)], dataset=dataset, split=split, out=out,
                           progress=progress, workers=workers)


def _code(codec: LossyCodec, item: tuple) -> dict[str, Any]:
    """One job of :func:`evaluate_models` (module-level, so that worker processes find it by name)."""
    name, image, dataset, split, model = item
    return evaluate_image(codec, name, image, dataset=dataset, split=split, model=model)


def evaluate_models(
    runs: Sequence[tuple[LossyCodec, str | None, str | None, Sequence[tuple[str, np.ndarray]]]], *, dataset: str,
    split: str | None = None, out: str | Path | None = None, progress: bool = True, workers: int | None = 1,
) -> pd.DataFrame:
    """:func:`evaluate_dataset` of several models in one pool: ``runs`` gives (codec, source: its model's name or
    path, model: the rows' model name, images) per model; the rows come (and go to ``out``) model by model, each
    in its images' order, as a one-worker run writes them."""
    from irec.evaluation.parallel import codec_builder, imap_ordered

    jobs = [(index, (name, image, dataset, split, model))
            for index, (_, _, model, images) in enumerate(runs) for name, image in images]
    builders = [codec_builder(codec, source) for codec, source, _, _ in runs]
    rows = []
    for row in imap_ordered(_code, jobs, builders, workers=workers, local=[run[0] for run in runs],
                            desc=f"irec lossy {Path(str(dataset)).name}", progress=progress,
                            means=lambda r: {"bpp": r["bpp"], "psnr": r["psnr_db"]}):
        if not row["exact"]:
            log.error("%s: the decoder did not rebuild the encoder's reconstruction", row["image"])
        if out is not None:
            write_rows(out, [row])
        rows.append(row)
    return pd.DataFrame(rows)
