"""Helpers shared by the ASE examples ``ase_nve.py`` and ``ase_nvt.py``: options, velocities, the run loop."""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from tqdm import tqdm

from eqff.model_file import DEFAULT_POTENTIAL


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


def check_md_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``) a time step ≤ 0, and steps and intervals that record fewer than two frames."""
    if args.interval < 1 or args.steps < args.interval:
        parser.error("--interval must be at least 1 and --steps at least --interval (two recorded frames)")
    if args.timestep <= 0:
        parser.error("--timestep must be positive")


def set_initial_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann velocities at ``temperature`` (K), without centre-of-mass motion or rotation."""
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)


def run_with_progress(
    dynamics: MolecularDynamics, steps: int, interval: int, status: Callable[[], dict[str, str]]
) -> float:
    """Run ``steps`` MD steps behind a tqdm progress bar and return the wall time in s.

    Observers attached to ``dynamics`` run as usual (at step 0, then at their own intervals);
    the bar's postfix is refreshed from ``status()`` every ``interval`` steps.
    """
    start = time.perf_counter()
    with tqdm(total=steps, unit="step") as bar:
        for _ in range(steps):
            dynamics.run(1)
            bar.update(1)
            if bar.n % interval == 0:
                bar.set_postfix(status())
    return time.perf_counter() - start


def speed_line(steps: int, timestep: float, wall: float) -> str:
    """The summary line on speed: simulated ps, wall s, ns/day and ms/step (``timestep`` in fs)."""
    simulated_ps = steps * timestep * 1e-3
    ns_per_day = simulated_ps * 1e-3 / (wall / 86400)
    speed = f"{ns_per_day:.3f} ns/day, {1e3 * wall / steps:.2f} ms/step"
    return f"  simulated time      {simulated_ps:.3f} ps in {wall:.1f} s: {speed}"
