"""The ``irec`` command line: ``irec <command> --help`` explains each command.

Each command lives in the module that implements it and registers itself through a
``register(subparsers)`` function, so this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# (module, command) pairs; each module defines ``register(subparsers)`` which adds its sub-parser and
# sets ``func(args) -> int`` as the default.
COMMAND_MODULES = [
    "irec.baselines",
    "irec.cli_codec",
    "irec.cli_train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irec",
        description=(
            "iREC: lossless and lossy image compression by relative entropy coding of VAE latents "
            "(Flamich et al., NeurIPS 2020), with real bitstreams."
        ),
        epilog="Run 'irec COMMAND --help' for the options of a command.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"irec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
