"""The ``eqff`` command line: one subcommand per module in :mod:`eqff.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``.
Bad input (an :class:`~eqff.errors.EqffError`: a missing or corrupt model file, data file or config,
an unusable structure) ends any command with one ``error: ...`` line and exit status 1.
"""

import argparse
import functools
import importlib
from collections.abc import Callable
from typing import ParamSpec

from eqff import __version__
from eqff.errors import EqffError

P = ParamSpec("P")

COMMANDS = ("md", "bench", "train", "evaluate", "learning-curve", "train-peer", "report", "equivariance")
"""Subcommand names, each the name of a module in :mod:`eqff.commands` (with ``_`` for ``-``)."""


class HelpWithDefaults(argparse.HelpFormatter):
    """Help that ends every option's text with its default, unless the text already names one or
    the option has none (``None``, or ``False`` for a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or any(action.default is no for no in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eqff", description="Equivariant GNN force fields for molecular dynamics.")
    parser.add_argument("--version", action="version", version=f"eqff {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"eqff.commands.{name.replace('-', '_')}")
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpWithDefaults)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def reports_bad_input(function: Callable[P, int]) -> Callable[P, int]:
    """``function`` with bad input (an :class:`EqffError`) ended by one ``error: ...`` line
    (a ``SystemExit`` with status 1) instead of a traceback: for ``eqff`` and the example scripts."""

    @functools.wraps(function)
    def reporting(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return function(*args, **kwargs)
        except EqffError as error:
            raise SystemExit(f"error: {error}") from None

    return reporting


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
