"""Gas-phase MD of aspirin in OpenMM with an eqff potential, through openmm-ml.

The starting structure is the first frame of rMD17 aspirin (train split 1); the potential is
the shipped default ``painn-aspirin`` (``--model`` for another). The System is made by
``MLPotential("eqff", modelPath=...).createSystem(topology)``, integrated with a
LangevinMiddleIntegrator at 300 K (friction 1/ps, 0.5 fs steps), with a StateDataReporter (CSV)
and a DCDReporter writing to ``--output`` (default ``md_output/``), and a summary printed at the
end (ns/day, mean temperature, potential-energy range)::

    EQFF_DATA=/path/to/data python md_examples/openmm_gas_phase.py --steps 2000

rMD17 frames come from MD at 500 K, so the molecule starts with excess potential energy and runs
warm (about 400 K) for the first picosecond, until the thermostat has taken the excess away.
The data folder is ``--data`` or ``$EQFF_DATA``. The helpers here are shared with
``openmm_mlmm.py``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit
from openmmml import MLPotential

from eqff.cli import reports_bad_input
from eqff.data.md17 import read_rmd17
from eqff.integrations.openmm import molecule_topology
from eqff.model_file import DEFAULT_POTENTIAL
from eqff.threads import THREADS_HELP

TEMPERATURE = 300 * unit.kelvin
FRICTION = 1 / unit.picosecond
TIMESTEP = 0.5 * unit.femtoseconds
LIGAND_RESIDUE = "LIG"


def add_common_arguments(parser: argparse.ArgumentParser, default_steps: int) -> None:
    """The options both OpenMM examples take."""
    parser.add_argument("--steps", type=int, default=default_steps, help="number of MD steps of 0.5 fs")
    parser.add_argument(
        "--model", default=DEFAULT_POTENTIAL, help="model file or shipped potential (default: %(default)s)"
    )
    parser.add_argument("--precision", choices=["single", "double"], help="default: the model file's dtype")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--data", default=None, help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument("--output", type=Path, default=Path("md_output"), help="folder for the CSV and DCD files")
    parser.add_argument("--interval", type=int, default=50, help="steps between reported frames")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities and the thermostat noise")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)


def aspirin(data: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers (21,) and positions (21, 3) in Å of the first rMD17 aspirin frame (train split 1)."""
    frame = read_rmd17("aspirin", 1, "train", data)[0]
    return frame.atomic_numbers, frame.positions


def run_md(simulation: app.Simulation, name: str, args: argparse.Namespace) -> float:
    """Thermalise, run ``args.steps`` steps with CSV, DCD and progress reporters; return the wall time in s.

    Writes ``<output>/<name>.csv`` (step, time, energies in kJ/mol, temperature) and
    ``<output>/<name>.dcd`` every ``args.interval`` steps.
    """
    args.output.mkdir(parents=True, exist_ok=True)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE, args.seed)
    simulation.reporters.append(
        app.StateDataReporter(
            str(args.output / f"{name}.csv"), args.interval, step=True, time=True,
            potentialEnergy=True, kineticEnergy=True, totalEnergy=True, temperature=True,
        )
    )  # fmt: skip
    simulation.reporters.append(app.DCDReporter(str(args.output / f"{name}.dcd"), args.interval))
    simulation.reporters.append(
        app.StateDataReporter(
            sys.stdout, max(args.steps // 10, 1), step=True, temperature=True, speed=True,
            remainingTime=True, totalSteps=args.steps,
        )
    )  # fmt: skip
    start = time.perf_counter()
    simulation.step(args.steps)
    return time.perf_counter() - start


def read_state_data(path: Path) -> dict[str, np.ndarray]:
    """The columns of a StateDataReporter CSV file, by header name (e.g. ``"Temperature (K)"``)."""
    with open(path) as file:
        names = [name.strip('"') for name in file.readline().lstrip("#").strip().split(",")]
        values = np.loadtxt(file, delimiter=",", ndmin=2)
    return dict(zip(names, values.T))


def print_summary(name: str, args: argparse.Namespace, wall: float) -> None:
    """Speed, temperature and energies of the run, from its CSV file and wall time."""
    data = read_state_data(args.output / f"{name}.csv")
    simulated_ns = args.steps * TIMESTEP.value_in_unit(unit.nanoseconds)
    potential = data["Potential Energy (kJ/mole)"]
    total = data["Total Energy (kJ/mole)"]
    temperature = data["Temperature (K)"]
    print("summary")
    print(f"  simulated time      {1e3 * simulated_ns:.3f} ps in {wall:.1f} s: "
          f"{simulated_ns / (wall / 86400):.3f} ns/day, {1e3 * wall / args.steps:.2f} ms/step")
    print(f"  temperature         mean {temperature.mean():.1f} K, std {temperature.std():.1f} K "
          f"({len(temperature)} samples)")
    print(f"  potential energy    min {potential.min():.2f}, max {potential.max():.2f} kJ/mol "
          f"(range {np.ptp(potential):.2f})")
    print(f"  total energy        first {total[0]:.2f}, last {total[-1]:.2f} kJ/mol (thermostatted)")
    print(f"  files               {args.output / name}.csv, {args.output / name}.dcd")


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_steps=2000)
    args = parser.parse_args(argv)
    numbers, positions = aspirin(args.data)
    topology = molecule_topology(numbers, LIGAND_RESIDUE)
    potential = MLPotential("eqff", modelPath=args.model)
    system = potential.createSystem(topology, precision=args.precision, device=args.device, threads=args.threads)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, TIMESTEP)
    integrator.setRandomNumberSeed(args.seed)
    simulation = app.Simulation(topology, system, integrator)
    simulation.context.setPositions(positions * unit.angstrom)
    print(f"gas-phase aspirin ({len(numbers)} atoms), model {args.model}, {args.steps} steps of 0.5 fs at 300 K, "
          f"platform {simulation.context.getPlatform().getName()}")
    wall = run_md(simulation, "openmm_gas_phase", args)
    print_summary("openmm_gas_phase", args, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
