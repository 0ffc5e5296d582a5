"""``eqff md``: molecular dynamics of one structure with an eqff potential, through ASE."""

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from ase.io.trajectory import Trajectory

from eqff.allocator import retain_freed_memory
from eqff.data.md17 import MOLECULES
from eqff.errors import DataFileError, ModelFileError
from eqff.integrations.ase import EqffCalculator
from eqff.md.simulation import langevin, run_with_progress, set_initial_velocities, speed_line, velocity_verlet
from eqff.md.systems import WATER_BOXES, benchmark_system
from eqff.model_file import DEFAULT_POTENTIAL, read_model_file
from eqff.threads import THREADS_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_POTENTIAL, help=f"model file or shipped potential (default: {DEFAULT_POTENTIAL})")
    parser.add_argument("--structure", help="starting structure: a file ASE reads, or a benchmark system (an rMD17 "
                        f"molecule or {', '.join(WATER_BOXES)}) (default: the model's example structure)")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/, for an rMD17 molecule as --structure "
                        "(default: $EQFF_DATA)")
    parser.add_argument("--steps", type=int, default=2000, help="number of MD steps")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K: thermostat and initial velocities")
    parser.add_argument("--ensemble", choices=["nvt", "nve"], default="nvt", help="Langevin NVT or velocity-Verlet NVE")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="the model's floating dtype")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--trajectory", help="write an ASE .traj file here")
    parser.add_argument("--interval", type=int, default=10, help="steps between trajectory frames and energy samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities and the thermostat noise")


def starting_structure(model: str, structure: str | None, data_root: str | None = None) -> Atoms:
    """The structure file or benchmark system (:func:`eqff.md.systems.benchmark_system`) if
    given, else the example structure stored in the model file."""
    if structure and not Path(structure).exists() and (structure in WATER_BOXES or structure in MOLECULES):
        return benchmark_system(structure, data_root)
    if structure:
        try:
            return read(structure)
        except (OSError, ValueError, StopIteration) as error:
            raise DataFileError(f"cannot read the structure {structure}: {error}") from None
    example = read_model_file(model)["metadata"].get("example_structure")
    if example is None:
        raise ModelFileError(f"model {model!r} stores no example structure; give one with --structure")
    return Atoms(numbers=example["atomic_numbers"], positions=example["positions"])


def run(args: argparse.Namespace) -> int:
    retain_freed_memory()  # this process is eqff's own: see eqff.allocator
    atoms = starting_structure(args.model, args.structure, args.data)
    atoms.calc = EqffCalculator(args.model, device=args.device, dtype=args.dtype, threads=args.threads)
    atoms.calc.potential.check_elements(atoms.numbers)  # before the progress bar starts
    rng = np.random.default_rng(args.seed)
    set_initial_velocities(atoms, args.temperature, rng)
    if args.ensemble == "nvt":
        dynamics = langevin(atoms, args.timestep, args.temperature, args.friction, rng)
    else:
        dynamics = velocity_verlet(atoms, args.timestep)
    if args.trajectory:
        dynamics.attach(Trajectory(args.trajectory, "w", atoms), interval=args.interval)

    temperatures, total_energies = [], []

    def sample() -> None:
        temperatures.append(atoms.get_temperature())
        total_energies.append(atoms.get_total_energy())

    dynamics.attach(sample, interval=args.interval)
    print(f"eqff md: {atoms.get_chemical_formula()} ({len(atoms)} atoms), model {args.model}, "
          f"{args.ensemble.upper()} at {args.temperature:g} K, {args.steps} steps of {args.timestep:g} fs, {args.dtype}")
    status = lambda: {"T": f"{temperatures[-1]:.0f} K", "E": f"{total_energies[-1]:.3f} eV"}  # noqa: E731
    wall = run_with_progress(dynamics, args.steps, args.interval, status)
    print_summary(args, atoms, np.array(temperatures), np.array(total_energies), wall)
    return 0


def print_summary(args: argparse.Namespace, atoms: Atoms, temperatures: np.ndarray, total_energies: np.ndarray, wall: float) -> None:
    simulated_ps = args.steps * args.timestep * 1e-3
    calc = atoms.calc
    print("summary")
    print(speed_line(args.steps, args.timestep, wall))
    print(f"  temperature         mean {temperatures.mean():.1f} K, std {temperatures.std():.1f} K")
    drift = (total_energies[-1] - total_energies[0]) / len(atoms) / simulated_ps * 1e3
    print(f"  total energy        first {total_energies[0]:.4f} eV, last {total_energies[-1]:.4f} eV "
          f"({drift:+.3f} meV/atom/ps{'' if args.ensemble == 'nve' else ', thermostatted'})")
    print(f"  max |force|         {np.abs(atoms.get_forces()).max():.3f} eV/Å at the last step")
    print(f"  neighbour lists     {calc.potential.neighbours.num_builds} builds in {args.steps} steps")
    if args.trajectory:
        print(f"  trajectory          {args.trajectory}")
