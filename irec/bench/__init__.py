"""Benchmarks: ``python -m irec.bench {coder,...}`` prints each measured figure beside its anchor.

Speed and rate targets are checked here, never in the tests (which check correctness only). Every
benchmark also writes tidy rows, with provenance, under ``results/bench/``.
"""

from collections.abc import Callable


def comma_separated(cast: Callable[[str], float]) -> Callable[[str], tuple]:
    """An argparse ``type`` for comma-separated values, e.g. ``--sweep-n-beams 10,20`` with ``cast=int``."""
    return lambda text: tuple(cast(v) for v in text.split(",") if v.strip())
