"""NVE (velocity-Verlet) MD of aspirin in ASE with an eqff potential: how well is energy conserved?

The starting structure is the example structure stored in the model file (an rMD17 aspirin
frame for the shipped default ``painn-aspirin``; ``--model`` for another); velocities are drawn
from Maxwell–Boltzmann at 300 K without centre-of-mass motion or rotation, and the molecule is
integrated with ``ase.md.verlet.VelocityVerlet`` in float64 with 0.5 fs steps (``--steps``,
default 20000 = 10 ps). Potential, kinetic and total energy are recorded every ``--interval``
steps into ``<output>/ase_nve.csv`` and plotted against time in ``<output>/ase_nve.png``
(``--output``, default ``md_output/``). The summary gives the drift, the slope of a
least-squares line through the total energy (meV/atom/ps), and its fluctuation (standard
deviation, meV/atom)::

    python md_examples/ase_nve.py --steps 2000

Speed: 1 ps (2000 steps) took 26 s, 13 ms/step, on a 2-core x86_64 CPU shared with four training
jobs, with ``OMP_NUM_THREADS=1``; the default 10 ps takes about 4 to 5 minutes there. Left at
torch's default of 2 threads on that busy machine, the same run took 657 s (330 ms/step): the two
threads wait for each other, so set ``OMP_NUM_THREADS=1`` on a loaded CPU.
"""

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    add_md_arguments, check_md_arguments, run_with_progress, set_initial_velocities, speed_line,
)  # fmt: skip
from ase import units  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from eqff.commands.md import starting_structure  # noqa: E402
from eqff.integrations.ase import EqffCalculator  # noqa: E402

TEMPERATURE = 300.0
"""K, of the initial velocities."""


class EnergyDrift(NamedTuple):
    """A least-squares line through the total energy per atom, and its spread."""

    drift: float
    """meV/atom/ps: the slope of the line."""
    offset: float
    """meV/atom: the line's value at time 0."""
    fluctuation: float
    """meV/atom: the standard deviation of the total energy."""


def energy_drift(times: np.ndarray, total_energies: np.ndarray, num_atoms: int) -> EnergyDrift:
    """Fit a straight line to the total energy per atom against time.

    Args:
        times: (n,) ps, n ≥ 2.
        total_energies: (n,) eV, of the whole system.
        num_atoms: the number of atoms the energies are divided by.
    """
    if len(times) < 2 or len(times) != len(total_energies):
        raise ValueError(
            f"need at least 2 samples of equal length, got {len(times)} times and {len(total_energies)} energies"
        )
    per_atom = 1e3 * np.asarray(total_energies) / num_atoms  # (n,) meV/atom
    slope, offset = np.polyfit(times, per_atom, 1)
    return EnergyDrift(drift=float(slope), offset=float(offset), fluctuation=float(per_atom.std()))


def plot_energies(path: Path, samples: dict[str, np.ndarray], num_atoms: int, fit: EnergyDrift) -> None:
    """Energy changes against time (top, eV) and the total energy with its fitted line (bottom, meV/atom).

    ``samples`` holds ``time_ps`` and ``potential_eV``, ``kinetic_eV``, ``total_eV``, each (n,).
    """
    time, total = samples["time_ps"], samples["total_eV"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key in ("potential_eV", "kinetic_eV", "total_eV"):
        top.plot(time, samples[key] - samples[key][0], label=key.removesuffix("_eV"))
    top.set_ylabel("change since t = 0 / eV")
    top.legend()
    initial = 1e3 * total[0] / num_atoms  # meV/atom
    bottom.plot(time, 1e3 * total / num_atoms - initial, label="total")
    bottom.plot(time, fit.offset + fit.drift * time - initial, "--", label=f"fit: {fit.drift:+.3f} meV/atom/ps")
    bottom.set_xlabel("time / ps")
    bottom.set_ylabel("total energy change / meV/atom")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_samples(path: Path, samples: dict[str, np.ndarray]) -> None:
    """The samples as CSV, one column per key, one row per sample."""
    np.savetxt(path, np.column_stack(list(samples.values())), delimiter=",", header=",".join(samples), comments="")


def print_summary(args: argparse.Namespace, samples: dict[str, np.ndarray], fit: EnergyDrift, wall: float) -> None:
    """Speed, temperature, energy drift and fluctuation, and the files written."""
    temperature = samples["temperature_K"]
    print("summary")
    print(speed_line(args.steps, args.timestep, wall))
    print(f"  temperature         mean {temperature.mean():.1f} K, std {temperature.std():.1f} K "
          f"(started at {TEMPERATURE:g} K; {len(temperature)} samples)")
    print(f"  energy drift        {fit.drift:+.4f} meV/atom/ps (least-squares slope of the total energy)")
    print(f"  energy fluctuation  {fit.fluctuation:.4f} meV/atom (std of the total energy)")
    print(f"  total energy        first {samples['total_eV'][0]:.5f} eV, last {samples['total_eV'][-1]:.5f} eV")
    print(f"  files               {args.output / 'ase_nve.csv'}, {args.output / 'ase_nve.png'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_md_arguments(parser, default_steps=20000, default_dtype="float64", default_interval=10)
    args = parser.parse_args(argv)
    check_md_arguments(parser, args)
    atoms = starting_structure(args.model, None)
    atoms.calc = EqffCalculator(args.model, device=args.device, dtype=args.dtype)
    set_initial_velocities(atoms, TEMPERATURE, np.random.default_rng(args.seed))
    dynamics = VelocityVerlet(atoms, args.timestep * units.fs)
    records: list[tuple[float, float, float, float]] = []  # (time ps, potential eV, kinetic eV, temperature K)

    def record() -> None:
        time_ps = dynamics.get_time() / (1e3 * units.fs)
        records.append((time_ps, atoms.get_potential_energy(), atoms.get_kinetic_energy(), atoms.get_temperature()))

    dynamics.attach(record, interval=args.interval)
    print(f"NVE aspirin ({len(atoms)} atoms), model {args.model}, {args.steps} steps of {args.timestep:g} fs, "
          f"velocities at {TEMPERATURE:g} K, {args.dtype}")
    wall = run_with_progress(
        dynamics, args.steps, args.interval,
        lambda: {"T": f"{records[-1][3]:.0f} K", "E": f"{records[-1][1] + records[-1][2]:.4f} eV"},
    )  # fmt: skip
    times, potential, kinetic, temperature = np.array(records).T
    samples = {
        "time_ps": times, "potential_eV": potential, "kinetic_eV": kinetic,
        "total_eV": potential + kinetic, "temperature_K": temperature,
    }  # fmt: skip
    fit = energy_drift(times, samples["total_eV"], len(atoms))
    args.output.mkdir(parents=True, exist_ok=True)
    write_samples(args.output / "ase_nve.csv", samples)
    plot_energies(args.output / "ase_nve.png", samples, len(atoms), fit)
    print_summary(args, samples, fit, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
