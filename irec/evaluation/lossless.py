"""One evaluation row of the lossless iREC codec per image: the real file's parts, the -ELBO and the times.

iREC paper, section 4.1 and Table 1 (real bpd against the model's -ELBO on CIFAR-10); docs/irec-method.md
section 4 ("Report, per image"). The image is compressed to a real file with
:class:`irec.codecs.lossless.LosslessCodec`, decoded again in the same process and compared bit for bit. The
benchmark (``python -m irec.bench lossless``) and the suite's compression step (notebook 04, via
:mod:`irec.evaluation.pipeline`) both write these rows. They follow ``irec.evaluation.results.SCHEMA`` (with
:mod:`irec.evaluation.coding`'s ``model``, ``fingerprint``, ``exact``, ``error``) and carry
``irec.provenance.stamp()``. Extra columns, in bits per dimension (subpixel):

- ``header_bpd``, ``latent_bpd`` (all levels), ``pixel_bpd``, ``tail_bpd``: the real rate split (they add up to
  ``bpd``);
- ``kl_bpd``, ``pixel_ideal_bpd``, ``ideal_bpd``: ideal, KL(q || p) of the levels given the coded levels above and
  -log2 p(x | z coded) of the pixels; ``negative_elbo_bpd``: the model's -ELBO (analytic KL + one posterior
  sample's -log p(x|z), no free bits); ``real_over_elbo``: ``bpd`` / ``negative_elbo_bpd``;
- ``encode_peak_mib``, ``decode_peak_mib``: peak memory above the start of each;
- the coder setting (also in ``params``): ``n_beams``, ``extra_samples``, ``kl_per_step``, ``block_size``,
  ``n_candidates``, ``coder_seed``, ``sampler`` and ``setting`` (:func:`setting_label`);
- the encoder's refinement of the posteriors (:mod:`irec.codecs.refine`): ``refine_steps`` (0: none, the paper),
  ``refine_lr``, ``refine_kl_weight``, ``refine_seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from irec.codecs.encoding import HEADER, PIXELS, TAIL
from irec.codecs.lossless import LosslessCodec
from irec.coder.params import CoderParams
from irec.evaluation.coding import code_image, schema_columns
from irec.provenance import stamp
from irec.settings import LosslessRefinement

log = logging.getLogger(__name__)

CODEC_NAME = "irec-lossless"
CODEC_LABEL = "iREC lossless"


def setting_label(params: CoderParams, refinement: LosslessRefinement | None = None) -> str:
    """A short name for a coder setting, e.g. ``B20 1+eps=1.2 Omega=3 block=8192 (N=36)``, then `` scored
    KL>=0.001`` when the search leaves the dimensions of smaller KL out (``ignore_kl_below``) and `` refine=30`` when
    the encoder refines the posteriors (:mod:`irec.codecs.refine`)."""
    scored = f" scored KL>={params.ignore_kl_below:g}" if params.ignore_kl_below else ""
    refined = f" refine={refinement.steps}" if refinement is not None and refinement.steps else ""
    return (f"B{params.n_beams} 1+eps={params.extra_samples:g} Omega={params.kl_per_step:g} "
            f"block={params.block_size} (N={params.n_candidates}){scored}{refined}")


def model_name(codec: LosslessCodec) -> str:
    """A readable default name for the codec's model, e.g. ``rvae-L2-C8`` (levels, latent channels)."""
    return f"rvae-L{codec.model.n_levels}-C{codec.model.config.latent_channels}"


def evaluate_image(codec: LosslessCodec, name: str, image: np.ndarray, *, dataset: str = "",
                   split: str | None = None, model: str | None = None, tile_map=None) -> dict[str, Any]:
    """Compress ``image``, decode it back in this process and return its row: the file's parts, the -ELBO, the
    times (provenance included). ``tile_map``: codes a large image's tiles, e.g. in a pool of processes
    (irec.evaluation.parallel.TilePool; None: here, one after another)."""
    coded = code_image(codec, image, tile_map)
    encoding = coded.encoding
    p = encoding.params
    n = 3 * encoding.n_pixels
    bits, ideal = encoding.bits, encoding.ideal_bits
    latent, kl = (sum(parts[level] for level in encoding.levels) for parts in (bits, ideal))
    elbo = encoding.details["negative_elbo_bpd"]
    row = schema_columns(coded, image, name=name, dataset=dataset, split=split, codec=CODEC_NAME, label=CODEC_LABEL,
                         lossless=True, params=asdict(p))
    row.update({
        "model": model or model_name(codec), "fingerprint": codec.fingerprint,
        "header_bpd": bits[HEADER] / n, "latent_bpd": latent / n, "pixel_bpd": bits[PIXELS] / n,
        "tail_bpd": bits[TAIL] / n, "kl_bpd": kl / n, "pixel_ideal_bpd": ideal[PIXELS] / n,
        "ideal_bpd": encoding.ideal_bpd, "negative_elbo_bpd": elbo, "real_over_elbo": encoding.bpd / elbo,
        "encode_peak_mib": coded.encoder.peak_mib, "decode_peak_mib": coded.decoder.peak_mib,
        "exact": coded.exact, "error": coded.error,
        "n_beams": p.n_beams, "extra_samples": p.extra_samples, "kl_per_step": p.kl_per_step,
        "block_size": p.block_size, "n_candidates": p.n_candidates, "coder_seed": p.seed, "sampler": p.sampler,
        "ignore_kl_below": p.ignore_kl_below,
        "setting": setting_label(p, codec.refinement), **codec.refinement.columns(),
    })
    return {**row, **stamp()}


def _code(codec: LosslessCodec, item: tuple) -> dict[str, Any]:
    """One job of :func:`evaluate_images` (module-level, so that worker processes find it by name)."""
    name, image, dataset, split, model = item
    return evaluate_image(codec, name, image, dataset=dataset, split=split, model=model)


def evaluate_images(
    codec: LosslessCodec, images: Sequence[tuple[str, np.ndarray]], *, dataset: str = "", split: str | None = None,
    out: str | Path | None = None, model: str | None = None, progress: bool = True, workers: int | None = 1,
    source: str | None = None, warm: np.ndarray | None = None,
) -> Iterator[dict[str, Any]]:
    """The row of every (name, image), in their order, each appended to ``out`` (if given) as soon as it and the
    rows before it are done (so a run that stops keeps what it finished).

    ``workers``: processes coding images (:mod:`irec.evaluation.parallel`; 0: one per available core; 1: in this
    process), each loading the model from ``source`` (its name or path) once; the rows are the same whatever the
    count (timings and stamps apart); ``warm``: an image each worker codes once, untimed, before its first one
    (the codec given is used as it is in this process)."""
    import functools

    from irec.evaluation.parallel import codec_builder, imap_ordered, warmed
    from irec.evaluation.results import write_rows

    jobs = [(0, (name, image, dataset, split, model)) for name, image in images]
    builder = codec_builder(codec, source)
    builders = [functools.partial(warmed, builder, warm) if builder is not None and warm is not None else builder]
    for row in imap_ordered(_code, jobs, builders, workers=workers, local=[codec], progress=progress,
                            desc=f"irec lossless {Path(str(dataset)).name}", means=lambda r: {"bpd": r["bpd"]}):
        if not row["exact"]:
            log.error("%s: the file does not decode to the image (%s)", row["image"], row["error"])
        if out is not None:
            write_rows(out, [row])
        yield row

