"""The ``eqff`` command line: one subcommand per module in :mod:`eqff.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``.
Bad input (an :class:`~eqff.errors.EqffError`: a missing or corrupt model file, data file or config,
an unusable structure) ends any command with one ``error: ...`` line and exit status 1.
"""

import argparse
import importlib

from eqff import __version__
from eqff.errors import EqffError

COMMANDS = ("md", "bench", "train", "evaluate", "report", "equivariance")
"""Subcommand names, each the name of a module in :mod:`eqff.commands`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eqff", description="Equivariant GNN force fields for molecular dynamics.")
    parser.add_argument("--version", action="version", version=f"eqff {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"eqff.commands.{name}")
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except EqffError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
