"""``python -m irec.bench BENCHMARK [options]``: see ``python -m irec.bench BENCHMARK --help``."""

from __future__ import annotations

import importlib
import logging
import sys

BENCHMARKS = {"coder": "irec.bench.coder", "devices": "irec.bench.devices", "exact": "irec.bench.exact",
              "kodak": "irec.bench.kodak", "lossless": "irec.bench.lossless",
              "lossy": "irec.bench.lossy", "sweep": "irec.bench.sweep"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        sys.stderr.write(f"usage: python -m irec.bench {{{','.join(BENCHMARKS)}}} [options]\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
