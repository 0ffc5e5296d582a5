"""Options shared by the ASE examples ``ase_nve.py`` and ``ase_nvt.py``."""

import argparse
from pathlib import Path

from eqff.model_file import DEFAULT_POTENTIAL
from eqff.threads import THREADS_HELP


def add_md_arguments(
    parser: argparse.ArgumentParser, default_steps: int, default_dtype: str, default_interval: int
) -> None:
    """The options both ASE examples take; the defaults that differ between them are arguments."""
    parser.add_argument("--steps", type=int, default=default_steps, help="number of MD steps (default: %(default)s)")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (default: %(default)s)")
    parser.add_argument(
        "--model", default=DEFAULT_POTENTIAL, help="model file or shipped potential (default: %(default)s)"
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default=default_dtype, help="default: %(default)s")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("md_output"), help="folder for the output files")
    parser.add_argument(
        "--interval", type=int, default=default_interval, help="steps between recorded frames (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities (and thermostat noise)")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def check_md_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``) a time step ≤ 0, and steps and intervals that record fewer than two frames."""
    if args.interval < 1 or args.steps < args.interval:
        parser.error("--interval must be at least 1 and --steps at least --interval (two recorded frames)")
    if args.timestep <= 0:
        parser.error("--timestep must be positive")
