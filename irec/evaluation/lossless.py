"""One evaluation row of the lossless iREC codec per image: the real file's parts, the -ELBO and the times.

iREC paper, section 4.1 and Table 1 (real bpd against the model's -ELBO on CIFAR-10); docs/irec-method.md
section 4 ("Report, per image"). The image is compressed to a real file with
:class:`irec.codecs.lossless.LosslessCodec`, decoded again in the same process and compared bit for bit. The
benchmark (``python -m irec.bench lossless``) and the suite's compression step (notebook 04, via
:mod:`irec.evaluation.pipeline`) both write these rows.
"""

from __future__ import annotations

import numpy as np

from irec.timing import measure
from irec.codecs.lossless import LosslessCodec
from irec.coder import CorruptStreamError
from irec.coder.params import CoderParams


def setting_label(params: CoderParams) -> str:
    """A short name for a coder setting, e.g. ``B20 1+eps=1.2 Omega=3 block=8192 (N=36)``."""
    return (f"B{params.n_beams} 1+eps={params.extra_samples:g} Omega={params.kl_per_step:g} "
            f"block={params.block_size} (N={params.n_candidates})")


def irec_row(codec: LosslessCodec, image: np.ndarray) -> dict:
    """Compress ``image``, decode it back in this process and report the file's parts, the -ELBO and the times."""
    with measure() as enc:
        data, report = codec.compress_with_report(image)
    error = ""
    with measure() as dec:
        try:
            decoded = codec.decompress(data)
        except CorruptStreamError as err:  # a coder bug shows up here; count it, keep going
            decoded, error = None, str(err)
    exact = decoded is not None and decoded.shape == image.shape and bool(np.array_equal(decoded, image))
    n, p = report.n_subpixels, codec.params
    return {
        "codec": "irec", "label": "iREC lossless", "file_bytes": report.file_bytes, "bpd": report.bpd,
        "header_bpd": report.header_bits / n, "latent_bpd": sum(report.latent_bits) / n,
        "pixel_bpd": report.pixel_bits / n, "tail_bpd": report.stream_tail_bits / n,
        "kl_bpd": sum(report.kl_bits) / n, "pixel_ideal_bpd": report.pixel_ideal_bits / n,
        "ideal_bpd": report.ideal_bpd, "negative_elbo_bpd": report.negative_elbo_bpd,
        "real_over_elbo": report.bpd / report.negative_elbo_bpd, "encode_s": enc.seconds, "decode_s": dec.seconds,
        "encode_peak_mib": enc.peak_mib, "decode_peak_mib": dec.peak_mib, "exact": exact, "error": error,
        "n_beams": p.n_beams, "extra_samples": p.extra_samples, "kl_per_step": p.kl_per_step,
        "block_size": p.block_size, "n_candidates": p.n_candidates, "coder_seed": p.seed, "sampler": p.sampler,
        "setting": setting_label(p),
    }
