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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import add_md_arguments, check_md_arguments  # noqa: E402

from eqff.cli import reports_bad_input  # noqa: E402
from eqff.commands.md import starting_structure  # noqa: E402
from eqff.integrations.ase import EqffCalculator  # noqa: E402
from eqff.md.observables import EnergyDrift, energy_drift  # noqa: E402
from eqff.md.simulation import run_nve, speed_line  # noqa: E402

TEMPERATURE = 300.0
"""K, of the initial velocities."""


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


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_md_arguments(parser, default_steps=20000, default_dtype="float64", default_interval=10)
    args = parser.parse_args(argv)
    check_md_arguments(parser, args)
    atoms = starting_structure(args.model, None)
    atoms.calc = EqffCalculator(args.model, device=args.device, dtype=args.dtype, threads=args.threads)
    print(f"NVE aspirin ({len(atoms)} atoms), model {args.model}, {args.steps} steps of {args.timestep:g} fs, "
          f"velocities at {TEMPERATURE:g} K, {args.dtype}")
    samples, wall = run_nve(atoms, args.steps, args.timestep, args.interval, TEMPERATURE, args.seed)
    fit = energy_drift(samples["time_ps"], samples["total_eV"], len(atoms))
    args.output.mkdir(parents=True, exist_ok=True)
    write_samples(args.output / "ase_nve.csv", samples)
    plot_energies(args.output / "ase_nve.png", samples, len(atoms), fit)
    print_summary(args, samples, fit, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
