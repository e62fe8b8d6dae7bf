"""``python -m irec.bench coder``: rate, bias, speed and memory of the REC coder on synthetic latents.

The coder's benchmark (paper section 3; workloads in :mod:`irec.coder.synthetic`):

- (a) a CIFAR-10 RVAE-shaped latent: 24 levels of 32x16x16, about 6,000 nats in all, coded one level after
  another into one container (as the lossless codec does);
- (b) a Kodak lossy level-1 latent: 196x32x48, about 110,000 nats.

For each sampler and the paper's settings (B=10, N=20 and B=20, N=36) it reports real bits / KL bits, the bias
(mean log q(z)/p(z) of the coded sample minus KL), encode and decode seconds (cold: first call in this process,
which loads the compiled kernels; warm: the best of the repeats) and peak memory, with the targets beside them.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from irec import provenance
from irec.timing import measure
from irec.coder import ByteReader, ByteWriter, CoderParams, LatentDecoder, LatentEncoder, SymbolReader, SymbolWriter
from irec.coder import pfr
from irec.coder.synthetic import GaussianPair, cifar_rvae_workload, kodak_lossy_workload
from irec.paths import RESULTS

log = logging.getLogger(__name__)

# The coder's speed targets on a 2-core CPU, at B=10, N=20.
TARGETS = {"a": {"encode_s": 0.5, "decode_s": 0.1}, "b": {"encode_s": 5.0, "decode_s": 0.5}}
SETTINGS = {"B10N20": dict(n_beams=10, extra_samples=1.0), "B20N36": dict(n_beams=20, extra_samples=1.2)}
SAMPLERS = ("beam", "greedy", "sample")


def encode(levels: list[GaussianPair], params: CoderParams) -> tuple[bytes, bytes, LatentEncoder, dict, list]:
    """Code every level in order; returns (header bytes, ANS payload, the encoder, bits per label, samples)."""
    encoder = LatentEncoder(params, describe_shapes=False)
    coded = [encoder.encode_level(p.q_loc, p.q_scale, p.p_loc, p.p_scale) for p in levels]
    header, symbols = ByteWriter(), SymbolWriter()
    encoder.write_header(header)
    encoder.write_symbols(symbols)
    payload, bits = symbols.finish()
    return header.getvalue(), payload, encoder, bits, coded


def decode(header: bytes, payload: bytes, levels: list[GaussianPair]) -> list:
    decoder = LatentDecoder(ByteReader(header), shapes=[p.p_loc.shape for p in levels])
    decoder.attach(SymbolReader(payload))
    return [decoder.decode_level(p.p_loc, p.p_scale) for p in levels]


def bench_one(workload: str, levels: list[GaussianPair], setting: str, sampler: str, repeats: int) -> dict:
    params = CoderParams(sampler=sampler, seed=42, **SETTINGS[setting])
    runs = []
    for _ in range(repeats):
        with measure() as enc:
            header, payload, encoder, bits, coded = encode(levels, params)
        with measure() as dec:
            decoded = decode(header, payload, levels)
        runs.append((enc, dec))
    stats = encoder.stats
    kl_bits = sum(s.kl_bits for s in stats)
    ideal_index_bits = sum(s.index_bits for s in stats)
    index_bits = sum(v for k, v in bits.items() if k.endswith("/indices"))
    step_bits = sum(v for k, v in bits.items() if k.endswith("/steps"))
    # a codec's container adds magic (3), version (1) and a CRC-32 (4) to the header and the payload
    file_bits = 8 * (3 + 1 + len(header) + len(payload) + 4)
    exact = all(torch.equal(z, zz) for z, zz in zip(coded, decoded))
    return {
        "workload": workload, "setting": setting, "sampler": sampler, "n_beams": params.beams,
        "n_candidates": params.n_candidates, "kl_per_step": params.kl_per_step, "block_size": params.block_size,
        "n_levels": len(levels), "n_dims": sum(s.n_dims for s in stats), "n_blocks": sum(s.n_blocks for s in stats),
        "n_steps": sum(s.n_steps for s in stats), "kl_bits": kl_bits, "file_bits": file_bits,
        "real_over_kl": file_bits / kl_bits, "header_bytes": 8 + len(header), "step_bits": step_bits,
        "index_bits": index_bits, "ideal_index_bits": ideal_index_bits,
        "index_overhead_pct": 100 * (8 * len(payload) - step_bits - ideal_index_bits) / ideal_index_bits,
        "bias_nats": sum(s.log_ratio_nats - s.kl_nats for s in stats),
        "bias_nats_per_level": sum(s.log_ratio_nats - s.kl_nats for s in stats) / len(stats),
        "encode_s_cold": runs[0][0].seconds, "encode_s": min(r[0].seconds for r in runs[1:] or runs),
        "decode_s_cold": runs[0][1].seconds, "decode_s": min(r[1].seconds for r in runs[1:] or runs),
        "encode_peak_mib": max(r[0].peak_mib for r in runs), "decode_peak_mib": max(r[1].peak_mib for r in runs),
        "exact": exact, **provenance.stamp(),
    }



def pfr_trials(
    kl_bits_targets=(1.0, 4.0, 8.0, 12.0), n_trials: int = 1000, seed: int = 0, dims: int = 2
) -> pd.DataFrame:
    """The yardstick table: PFR on :func:`irec.coder.pfr.yardstick_pair` in ``n_trials`` trials per KL target, one row each.

    The trials are the blocks of one file of ``n_trials`` x ``dims`` dimensions (block_size = dims): every block
    draws its candidates and arrivals under keys of its own, so the blocks are independent trials, and the
    file is decoded again. Columns: the mean index cost per block (model bits; ``ans_bits``: the real ANS
    stream per block), the exact-sampler bound KL + log2(KL+1) + 4, the mean log2 q(z)/p(z) at the samples
    (an exact sampler averages KL), and the p-value of a Kolmogorov-Smirnov test of the samples against q.
    """
    from scipy import stats

    rows = []
    for kl in kl_bits_targets:
        q_loc, q_scale, p_loc, p_scale = (x.repeat(n_trials) for x in pfr.yardstick_pair(float(kl), dims))
        params = CoderParams(block_size=dims, seed=seed, sampler="pfr")
        data, z, report = pfr.encode(q_loc, q_scale, p_loc, p_scale, params)
        standardised = stats.norm.cdf(((z - q_loc) / q_scale).numpy())
        rows.append({
            "sampler": "pfr", "kl_bits": float(report.kl_bits.mean()), "dims": dims, "n_trials": n_trials, "seed": seed,
            "d_inf_bits": float(report.d_inf_bits.mean()), "mean_index_bits": float(report.index_bits.mean()),
            "ans_bits": report.ans_bits / n_trials, "bound_bits": float(report.bound_bits.mean()),
            "mean_log2_index": float(np.log2(report.index + 1.0).mean()),
            "mean_examined": float(report.n_examined.mean()), "log_ratio_bits": float(report.log_ratio_bits.mean()),
            "ks_pvalue": float(stats.kstest(standardised, "uniform").pvalue),
            "round_trip": bool(torch.equal(pfr.decompress_latent(data, p_loc, p_scale), z)), **provenance.stamp(),
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irec.bench coder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="a,b", help="comma-separated: a (CIFAR RVAE), b (Kodak lossy)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated samplers")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from {list(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration (first = cold)")
    parser.add_argument("--pfr-trials", type=int, default=1000, help="trials of the exact PFR yardstick (0: skip)")
    parser.add_argument("--out", default=str(RESULTS / "bench" / "coder.csv"), help="CSV to write")
    args = parser.parse_args(argv)

    workloads = {"a": ("a: CIFAR RVAE 24x32x16x16", cifar_rvae_workload), "b": ("b: Kodak lossy 196x32x48", lambda: [kodak_lossy_workload()])}
    rows = []
    for key in args.workloads.split(","):
        name, make = workloads[key]
        levels = make()
        for setting in args.settings.split(","):
            for sampler in args.samplers.split(","):
                row = bench_one(name, levels, setting, sampler, args.repeats)
                row["target_encode_s"] = TARGETS[key]["encode_s"] if setting == "B10N20" else math.nan
                row["target_decode_s"] = TARGETS[key]["decode_s"] if setting == "B10N20" else math.nan
                rows.append(row)
                log.info("%s %s %s: %.2f s / %.2f s", name, setting, sampler, row["encode_s"], row["decode_s"])
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    show = ["workload", "setting", "sampler", "kl_bits", "file_bits", "real_over_kl", "index_overhead_pct",
            "bias_nats_per_level", "encode_s_cold", "encode_s", "target_encode_s", "decode_s_cold", "decode_s",
            "target_decode_s", "encode_peak_mib", "decode_peak_mib"]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.precision", 3):
        sys.stdout.write(df[show].to_string(index=False) + "\n")
    if args.pfr_trials:
        trials = pfr_trials((1, 4, 8, 12), args.pfr_trials, seed=0)
        trials.to_csv(out.with_name(out.stem + "-pfr.csv"), index=False)
        cols = ["kl_bits", "dims", "n_trials", "mean_index_bits", "ans_bits", "bound_bits", "log_ratio_bits", "ks_pvalue"]
        sys.stdout.write("\nExact reference (PFR), bits per block; bound = KL + log2(KL+1) + 4 (the target):\n")
        sys.stdout.write(trials[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
    sys.stdout.write(f"\nrows written to {out} ({provenance.device_description()}, commit {provenance.git_commit()})\n")
    return 0
