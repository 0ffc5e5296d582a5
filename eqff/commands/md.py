"""``eqff md``: molecular dynamics of one structure with an eqff potential, through ASE.

With a committee model (:mod:`eqff.models.committee`) the run can watch the committee's
uncertainty: ``--log`` writes it along the trajectory, and ``--max-uncertainty`` ends the run at
the first step at which the force uncertainty of an atom exceeds a threshold, so that the frames
where the model is not to be trusted can be labelled and added to its training frames.
"""

import argparse
import contextlib
import csv
from pathlib import Path
from typing import TextIO

import numpy as np
from ase import Atoms, units
from ase.io import read
from ase.io.trajectory import Trajectory
from ase.md.md import MolecularDynamics

from eqff.allocator import retain_freed_memory
from eqff.data.md17 import MOLECULES
from eqff.data import keys
from eqff.errors import DataFileError, EqffInputError, ModelFileError
from eqff.integrations.ase import EqffCalculator
from eqff.md.simulation import langevin, run_with_progress, set_initial_velocities, speed_line, velocity_verlet
from eqff.md.systems import WATER_BOXES, benchmark_system
from eqff.model_file import DEFAULT_POTENTIAL, read_model_file
from eqff.threads import THREADS_HELP

LOG_COLUMNS = ["step", "time_ps", "temperature_K", "potential_eV", "total_eV"]
"""Columns of ``--log``, one row every ``--interval`` steps."""
UNCERTAINTY_LOG_COLUMNS = ["energy_uncertainty_eV", "max_forces_uncertainty_eV_per_A"]
"""Columns a committee model adds to ``--log``: the energy uncertainty and the largest force
uncertainty of an atom (:data:`eqff.data.keys.ENERGY_UNCERTAINTY`, :data:`eqff.data.keys.FORCES_UNCERTAINTY`)."""


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
    parser.add_argument("--log", metavar="CSV", help="write a CSV row every --interval steps: step, time (ps), temperature "
                        "(K), potential and total energy (eV) and, for a committee model, its energy uncertainty (eV) and "
                        "the largest force uncertainty of an atom (eV/Å)")
    parser.add_argument("--max-uncertainty", type=float, metavar="EV_PER_A", help="committee models only: stop at the first "
                        "step at which the force uncertainty of an atom exceeds this many eV/Å (that frame is added to "
                        "--trajectory)")


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


class UncertaintyWatch:
    """The largest force uncertainty of an atom along a committee's MD run, checked at every step.

    Attach :meth:`observe` to the dynamics at interval 1. ``threshold`` (eV/Å, or ``None``):
    :meth:`passed` answers ``True`` once an atom's force uncertainty has exceeded it.
    """

    def __init__(self, atoms: Atoms, dynamics: MolecularDynamics, threshold: float | None) -> None:
        self.atoms = atoms
        self.dynamics = dynamics
        self.threshold = threshold
        self.largest = (-1.0, 0, 0)  # (eV/Å, atom, step) of the largest so far
        self.latest = (-1.0, 0, 0)  # the same at the latest step

    def observe(self) -> None:
        forces_uncertainty = self.atoms.calc.get_property(keys.FORCES_UNCERTAINTY, self.atoms)  # (n,) eV/Å
        atom = int(np.argmax(forces_uncertainty))
        self.latest = (float(forces_uncertainty[atom]), atom, self.dynamics.nsteps)
        self.largest = max(self.largest, self.latest)

    def passed(self) -> bool:
        return self.threshold is not None and self.latest[0] > self.threshold


class Samples:
    """The rows of ``--log``, taken every ``--interval`` steps (attach :meth:`take`) and written
    to ``log`` (an open text file, or ``None``) as they come, so that a long run can be watched.

    ``watch``: the committee's :class:`UncertaintyWatch` (its columns are added), or ``None``.
    """

    def __init__(self, atoms: Atoms, dynamics: MolecularDynamics, watch: UncertaintyWatch | None, log: TextIO | None) -> None:
        self.atoms = atoms
        self.dynamics = dynamics
        self.watch = watch
        self.rows: list[dict[str, float]] = []
        self.log = log
        if log is not None:
            self.writer = csv.DictWriter(log, LOG_COLUMNS + (UNCERTAINTY_LOG_COLUMNS if watch is not None else []))
            self.writer.writeheader()

    def take(self) -> None:
        atoms = self.atoms
        row = {"step": self.dynamics.nsteps, "time_ps": self.dynamics.get_time() / (1e3 * units.fs),
               "temperature_K": atoms.get_temperature(), "potential_eV": atoms.get_potential_energy(),
               "total_eV": atoms.get_total_energy()}  # fmt: skip
        if self.watch is not None:
            row["energy_uncertainty_eV"] = atoms.calc.get_property(keys.ENERGY_UNCERTAINTY, atoms)
            row["max_forces_uncertainty_eV_per_A"] = self.watch.latest[0]
        self.rows.append(row)
        if self.log is not None:
            self.writer.writerow(row)
            self.log.flush()

    def status(self) -> dict[str, str]:
        """The progress bar's postfix: the latest temperature, total energy and force uncertainty."""
        shown = {"T": f"{self.rows[-1]['temperature_K']:.0f} K", "E": f"{self.rows[-1]['total_eV']:.3f} eV"}
        if self.watch is not None:
            shown["σF"] = f"{self.watch.latest[0]:.3f} eV/Å"
        return shown


def run(args: argparse.Namespace) -> int:
    retain_freed_memory()  # this process is eqff's own: see eqff.allocator
    atoms = starting_structure(args.model, args.structure, args.data)
    atoms.calc = EqffCalculator(args.model, device=args.device, dtype=args.dtype, threads=args.threads)
    atoms.calc.potential.check_elements(atoms.numbers)  # before the progress bar starts
    committee = atoms.calc.potential.gives_uncertainty
    if args.max_uncertainty is not None and not committee:
        raise EqffInputError(f"--max-uncertainty needs a committee model (trained with model.committee_size); "
                             f"{args.model} is a single model")
    rng = np.random.default_rng(args.seed)
    set_initial_velocities(atoms, args.temperature, rng)
    if args.ensemble == "nvt":
        dynamics = langevin(atoms, args.timestep, args.temperature, args.friction, rng)
    else:
        dynamics = velocity_verlet(atoms, args.timestep)
    trajectory = Trajectory(args.trajectory, "w", atoms) if args.trajectory else None
    if trajectory is not None:
        dynamics.attach(trajectory, interval=args.interval)
    watch = UncertaintyWatch(atoms, dynamics, args.max_uncertainty) if committee else None
    if watch is not None:
        dynamics.attach(watch.observe, interval=1)

    print(f"eqff md: {atoms.get_chemical_formula()} ({len(atoms)} atoms), model {args.model}"
          f"{' (a committee)' if committee else ''}, {args.ensemble.upper()} at {args.temperature:g} K, "
          f"{args.steps} steps of {args.timestep:g} fs, {args.dtype}")
    with open(args.log, "w", newline="") if args.log else contextlib.nullcontext() as log:
        samples = Samples(atoms, dynamics, watch, log)
        dynamics.attach(samples.take, interval=args.interval)
        wall = run_with_progress(dynamics, args.steps, args.interval, samples.status, stop=watch.passed if watch else None)
    if watch is not None and watch.passed():
        value, atom, step = watch.latest
        print(f"eqff md: stopped at step {step} ({dynamics.get_time() / (1e3 * units.fs):.4f} ps): the force "
              f"uncertainty of atom {atom} ({atoms[atom].symbol}) is {value:.3f} eV/Å, above --max-uncertainty "
              f"{args.max_uncertainty:g} eV/Å")
        if trajectory is not None and step % args.interval:
            trajectory.write(atoms)
    print_summary(args, atoms, samples.rows, wall, dynamics.nsteps, watch)
    return 0


def print_summary(
    args: argparse.Namespace,
    atoms: Atoms,
    rows: list[dict[str, float]],
    wall: float,
    steps: int,
    watch: UncertaintyWatch | None,
) -> None:
    """The run's summary: speed, temperature, energy drift, forces, neighbour lists and, for a
    committee, the largest force uncertainty; ``rows`` are the samples, ``steps`` the steps run."""
    temperatures = np.array([row["temperature_K"] for row in rows])
    total_energies = np.array([row["total_eV"] for row in rows])
    simulated_ps = steps * args.timestep * 1e-3
    calc = atoms.calc
    print("summary")
    print(speed_line(steps, args.timestep, wall))
    print(f"  temperature         mean {temperatures.mean():.1f} K, std {temperatures.std():.1f} K")
    drift = (total_energies[-1] - total_energies[0]) / len(atoms) / simulated_ps * 1e3
    print(f"  total energy        first {total_energies[0]:.4f} eV, last {total_energies[-1]:.4f} eV "
          f"({drift:+.3f} meV/atom/ps{'' if args.ensemble == 'nve' else ', thermostatted'})")
    print(f"  max |force|         {np.abs(atoms.get_forces()).max():.3f} eV/Å at the last step")
    print(f"  neighbour lists     {calc.potential.neighbours.num_builds} builds in {steps} steps")
    if watch is not None:
        value, atom, step = watch.largest
        print(f"  force uncertainty   largest {value:.3f} eV/Å (atom {atom}, step {step})")
    if args.trajectory:
        print(f"  trajectory          {args.trajectory}")
    if args.log:
        print(f"  log                 {args.log}")
