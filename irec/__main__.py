"""The ``irec`` command line: ``irec <command> --help`` explains each command.

Each command lives in the module that implements it and registers itself through a
``register(subparsers)`` function, so this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# module -> the commands it adds; each module defines ``register(subparsers)`` which adds its sub-parsers and
# sets ``func(args) -> int`` as their default. A module whose imports fail (e.g. imagecodecs missing on a GPU
# machine) leaves its commands as stubs that name the missing package, and the other commands still work.
COMMAND_MODULES = {
    "irec.evaluation.baselines": ("baselines",),
    "irec.cli.codec": ("compress", "decompress"),
    "irec.cli.info": ("info",),
    "irec.cli.train": ("train", "ship"),
}


def _unavailable(sub: argparse._SubParsersAction, name: str, commands: tuple[str, ...], err: ImportError) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise ValueError(f"this installation cannot import {name} ({err}); install the package it names")

    for command in commands:
        p = sub.add_parser(command, help=f"unavailable here: {err}", add_help=False, prefix_chars="\0")
        p.add_argument("rest", nargs="*")  # any options, taken as plain words (no prefix character matches)
        p.set_defaults(func=refuse)


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
    for name, commands in COMMAND_MODULES.items():
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            _unavailable(sub, name, commands, err)
            continue
        module.register(sub)
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
