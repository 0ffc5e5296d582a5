"""The ``eqff`` command line: one subcommand per module in :mod:`eqff.commands`.

Each command module defines ``add_arguments(parser)`` and ``run(args)``; only the module of the
command given is imported (the modules import torch), so ``eqff --help`` answers at once.
Bad input (an :class:`~eqff.errors.EqffError`: a missing or corrupt model file, data file or config,
an unusable structure) ends any command with one ``error: ...`` line and exit status 1.
"""

import argparse
import functools
import importlib
import sys
import warnings
from collections.abc import Callable
from typing import ParamSpec

from eqff import __version__
from eqff.errors import EqffError, OutOfDomainWarning

P = ParamSpec("P")

COMMANDS = {
    "md": "run MD of a molecule with an eqff potential (Langevin NVT or velocity-Verlet NVE) and print a summary",
    "bench": "time energy+forces calls (ms, median) for aspirin and water boxes, neighbour list and model apart",
    "train": "train a force field from a YAML config (rMD17, MD17 or extxyz data), with resumable checkpoints",
    "evaluate": "energy and force MAE/RMSE (meV, kcal/mol) of a model on rMD17, MD17, extxyz or a run's split",
    "learning-curve": "test force and energy MAE of training runs' snapshots against training minutes, with a plot",
    "train-peer": "train MACE or NequIP on the frames of a training config for a fixed time and test it at given minutes",
    "report": "compare models: test MAEs, ms per call, NVE drift, NVT stability and h(r); --peers adds MACE and SchNetPack",
    "equivariance": "PONITA's rotation-equivariance error (energy, forces) and ms per call against the number of sphere orientations",
    "regrid": "a PONITA model file on a sphere grid of another size: a finer grid lowers the rotation error and costs more per call",
    "export": "write a model for other engines: a metatomic model file for LAMMPS, i-PI and ASE (metatomic-ase)",
    "select": "the frames of a pool that a committee model is least sure of (force uncertainty), to label next",
    "active-learning": "test error against labelled frames chosen by a committee's uncertainty or at random, with a plot",
}
"""Subcommand names, each the name of a module in :mod:`eqff.commands` (with ``_`` for ``-``), and
their one-line help."""


class HelpWithDefaults(argparse.HelpFormatter):
    """Help that ends every option's text with its default, unless the text already names one or
    the option has none (``None``, or ``False`` for a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or any(action.default is no for no in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``eqff``, with the options of ``command`` (whose module it imports) only."""
    parser = argparse.ArgumentParser(prog="eqff", description="Equivariant GNN force fields for molecular dynamics.")
    parser.add_argument("--version", action="version", version=f"eqff {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_line in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_line, description=help_line, formatter_class=HelpWithDefaults)
        if name == command:
            module = importlib.import_module(f"eqff.commands.{name.replace('-', '_')}")
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def reports_bad_input(function: Callable[P, int]) -> Callable[P, int]:
    """``function`` with bad input (an :class:`EqffError`) ended by one ``error: ...`` line
    (a ``SystemExit`` with status 1) instead of a traceback, and eqff's warnings about the input
    (:class:`~eqff.domain.OutOfDomainWarning`) printed as one ``warning: ...`` line on stderr:
    for ``eqff`` and the example scripts."""

    @functools.wraps(function)
    def reporting(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_input_warning
                return function(*args, **kwargs)
        except EqffError as error:
            raise SystemExit(f"error: {error}") from None

    return reporting


def _show_input_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of eqff's commands: eqff's input warnings as ``warning: ...`` lines,
    any other warning as Python shows it."""
    if issubclass(category, OutOfDomainWarning):
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
