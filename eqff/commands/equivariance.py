"""``eqff equivariance``: PONITA's rotation-equivariance error against the size of its sphere grid.

PONITA convolves over a grid of N orientations on the sphere: its energy is exactly invariant
for the continuous sphere and approximately for a finite grid. For each N this builds PONITA at
its default size with random weights (seeded, so the weights other than the grid are the same
for every N), and compares, in float64 on rMD17 aspirin, the energy and forces at R random
rotations Q (:func:`eqff.rotations.random_rotations`, seed 0) of the structure with those of the structure itself:

- energy error: |E(Qx) − E(x)| in meV (mean and largest over the rotations);
- force error: |F(Qx) − Q F(x)| per component in meV/Å (mean), and that mean divided by the mean
  |F| component (relative);

and times an energy+forces call in float32 (ms, median), so that accuracy can be weighed
against cost. N = 0 is PNITA, exactly invariant. With ``--models`` it measures trained PONITA
model files instead (each with the N stored in it), e.g. on the molecule they were trained on.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from eqff.commands.bench import ELEMENTS, time_calls
from eqff.md.systems import benchmark_system
from eqff.data.md17 import MOLECULES
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import load_model
from eqff.models import build_model
from eqff.rotations import random_rotations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orientations", type=int, nargs="+", default=[0, 4, 8, 12, 20, 32, 64],
                        help="grid sizes N (default: %(default)s)")  # fmt: skip
    parser.add_argument("--rotations", type=int, default=10, help="random rotations per N (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per N (default: %(default)s)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="trained PONITA model files, measured instead of random-weight models (N from each file)")  # fmt: skip
    parser.add_argument("--system", default="aspirin", choices=MOLECULES,
                        help="rMD17 molecule (first train_01 frame) to rotate (default: %(default)s)")  # fmt: skip
    parser.add_argument("--data", help="data folder holding rmd17/ (default: $EQFF_DATA)")


def energy_forces(calc: EqffCalculator, atoms: Atoms, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (n, 3) eV/Å of ``atoms`` moved to ``positions`` (n, 3) Å."""
    moved = atoms.copy()
    moved.positions = positions
    moved.calc = calc
    return moved.get_potential_energy(), moved.get_forces()


def equivariance_errors(model: torch.nn.Module, atoms: Atoms, rotations: np.ndarray) -> dict[str, float]:
    """Energy and force errors of ``model`` (float64) under ``rotations`` (R, 3, 3) of ``atoms``: see the module doc."""
    calc = EqffCalculator(model, dtype="float64")
    energy, forces = energy_forces(calc, atoms, atoms.positions)
    energy_errors, force_errors = [], []
    for rotation in rotations:
        rotated_energy, rotated_forces = energy_forces(calc, atoms, atoms.positions @ rotation.T)
        energy_errors.append(abs(rotated_energy - energy))
        force_errors.append(np.abs(rotated_forces - forces @ rotation.T).mean())
    return {
        "energy_mean_meV": 1e3 * float(np.mean(energy_errors)),
        "energy_max_meV": 1e3 * float(np.max(energy_errors)),
        "forces_mean_meV_per_A": 1e3 * float(np.mean(force_errors)),
        "forces_relative": float(np.mean(force_errors) / np.abs(forces).mean()),
    }


def ponita(num_orientations: int) -> torch.nn.Module:
    """PONITA at its defaults with ``num_orientations``, random weights from seed 0 (the same for every N:
    no weight's shape depends on the grid)."""
    torch.manual_seed(0)
    return build_model("ponita", {"elements": ELEMENTS, "num_orientations": num_orientations})


def models_to_measure(args: argparse.Namespace) -> list[tuple[str, int, torch.nn.Module]]:
    """(label, N, model) for each model file of ``--models``, else for random-weight PONITA at each ``--orientations``."""
    if not args.models:
        return [("random", n, ponita(n)) for n in args.orientations]
    measured = []
    for path in args.models:
        model, content = load_model(path)
        if content["architecture"] != "ponita":
            raise SystemExit(f"error: {path} is a {content['architecture']} model; eqff equivariance measures PONITA")
        measured.append((Path(path).stem, len(model.orientations), model))
    return measured


def run(args: argparse.Namespace) -> int:
    models = models_to_measure(args)
    atoms = benchmark_system(args.system, args.data)
    rotations = random_rotations(args.rotations, seed=0).numpy()
    weights = "with trained weights" if args.models else "at its defaults with random weights (seed 0)"
    print(f"PONITA {weights}, rMD17 {args.system} ({len(atoms)} atoms); errors in "
          f"float64 over {args.rotations} random rotations Q; ms per call in float32, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    header = (f"{'model':<32} {'N':>4} {'|ΔE| mean meV':>14} {'|ΔE| max meV':>13} {'|ΔF| meV/Å':>11} "
              f"{'|ΔF| / |F|':>11} {'ms/call':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for label, num_orientations, model in models:
        errors = equivariance_errors(model, atoms, rotations)
        ms = time_calls(atoms, EqffCalculator(model, dtype="float32"), args.repeats)["total_ms"]
        print(f"{label:<32} {num_orientations:>4} {errors['energy_mean_meV']:>14.4f} {errors['energy_max_meV']:>13.4f} "
              f"{errors['forces_mean_meV_per_A']:>11.4f} {errors['forces_relative']:>11.2e} {ms:>8.2f}", flush=True)
    return 0
