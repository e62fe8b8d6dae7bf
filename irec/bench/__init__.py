"""Benchmarks: ``python -m irec.bench {coder,...}`` prints each measured figure beside its anchor.

Targets named in the issues are checked here, never in the tests (which check correctness only). Every
benchmark also writes tidy rows, with provenance, under ``results/bench/``.
"""
