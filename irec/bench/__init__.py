"""Benchmarks: ``python -m irec.bench {coder,...}`` prints each measured figure beside its anchor.

Speed and rate targets are checked here, never in the tests (which check correctness only). Every
benchmark also writes tidy rows, with provenance, under ``results/bench/``.
"""

import argparse
import dataclasses
from collections.abc import Callable

from irec.settings import LOSSLESS_REFINEMENT


def comma_separated(cast: Callable[[str], float]) -> Callable[[str], tuple]:
    """An argparse ``type`` for comma-separated values, e.g. ``--sweep-n-beams 10,20`` with ``cast=int``."""
    return lambda text: tuple(cast(v) for v in text.split(",") if v.strip())


def add_coder_options(parser: argparse.ArgumentParser, default) -> None:
    """``--n-beams``, ``--extra-samples``, ``--kl-per-step``, ``--block-size`` and ``--ignore-kl-below``, each
    defaulting to ``default``'s (a :class:`irec.coder.CoderParams`, the codec's default setting)."""
    parser.add_argument("--n-beams", type=int, default=default.n_beams, help="B (default: the codec's)")
    parser.add_argument("--extra-samples", type=float, default=default.extra_samples,
                        help="1+eps (default: the codec's)")
    parser.add_argument("--kl-per-step", "--kl-per-block", type=float, default=default.kl_per_step,
                        help="Omega, nats per step (default: the codec's)")
    parser.add_argument("--block-size", type=int, default=default.block_size,
                        help="dimensions per block (default: the codec's)")
    parser.add_argument("--ignore-kl-below", type=float, default=default.ignore_kl_below, help=(
        "leave dimensions whose KL is below this many nats out of the search's scores (0: score all; default: "
        "the codec's)"))


def coder_options(args: argparse.Namespace, default):
    """``default`` with the options of :func:`add_coder_options` applied."""
    return default.with_(n_beams=args.n_beams, extra_samples=args.extra_samples, kl_per_step=args.kl_per_step,
                         block_size=args.block_size, ignore_kl_below=args.ignore_kl_below)


def add_refinement_options(parser: argparse.ArgumentParser, default, subject: str, meanings: dict[str, str]) -> None:
    """``--refine-<field>`` for every field of ``default`` (an encoder's refinement setting,
    :class:`irec.settings.Refinement` or :class:`irec.settings.LosslessRefinement`), each defaulting to ``default``'s;
    ``subject``: what the encoder refines; ``meanings``: each field's meaning, for the help."""
    for field in dataclasses.fields(default):
        value = getattr(default, field.name)
        parser.add_argument(f"--refine-{field.name.replace('_', '-')}", type=type(value), default=value,
                            help=f"the encoder's refinement of {subject} (irec.codecs.refine): {meanings[field.name]} "
                                 f"(default {value})")


def add_lossless_refinement_options(parser: argparse.ArgumentParser) -> None:
    """:func:`add_refinement_options` for the lossless codec (:data:`irec.settings.LOSSLESS_REFINEMENT`)."""
    add_refinement_options(parser, LOSSLESS_REFINEMENT, "every level's posterior", {
        "steps": "Adam steps (0: code the amortized posteriors, as the paper)", "lr": "Adam's learning rate",
        "kl_weight": "weight kappa of the KL", "seed": "seed of the reparameterized samples"})


def refinement_options(args: argparse.Namespace, default):
    """``default`` with the options of :func:`add_refinement_options` applied."""
    values = {f.name: getattr(args, f"refine_{f.name}") for f in dataclasses.fields(default)}
    return dataclasses.replace(default, **values)
