"""``eqff equivariance``: PONITA's rotation-equivariance error against the size of its sphere grid.

PONITA convolves over a grid of N orientations on the sphere: its energy is exactly invariant
for the continuous sphere and approximately for a finite grid. For each N this builds PONITA at
its default size with random weights (seeded, so the weights other than the grid are the same
for every N), and compares, in float64 on rMD17 aspirin, the energy and forces at R random
rotations Q (:func:`eqff.rotations.random_rotations`, seed 0) of the structure with those of the structure itself:

- energy error: |E(Qx) − E(x)| in meV (mean and largest over the rotations);
- force error: |F(Qx) − Q F(x)| per component in meV/Å (mean), and that mean divided by the mean
  |F| component (relative);
- net torque: the largest |Σ (x_i − x̄) × F_i| in eV over the structure and its rotations (x̄ the
  centroid; zero for exactly invariant energies);

with ``--test-frames K`` the same over the first K ``test_01`` frames and their rotations (means
of the means, largest of the largest);
- angular-momentum drift: the largest |L| over a short float64 NVE run from 300 K velocities
  without rotation (seed 0), divided by its length, in ħ/ps;

and times an energy+forces call in float32 (ms, median), so that accuracy can be weighed
against cost. N = 0 is PNITA, exactly invariant. With ``--models`` it measures trained PONITA
model files instead, e.g. on the molecule they were trained on: each on the N stored in it, or,
with ``--orientations``, its weights on each of those grids (no weight depends on N).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from eqff.commands.bench import ELEMENTS, time_calls
from eqff.md.systems import benchmark_system
from eqff.data.md17 import MOLECULES, read_rmd17
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import load_model
from eqff.models import build_model
from eqff.md.simulation import run_nve
from eqff.rotations import random_rotations

NVE_TIMESTEP_FS = 0.5
"""fs: the velocity-Verlet step of the angular-momentum drift."""

RANDOM_MODEL_GRIDS = (0, 4, 8, 12, 20, 32, 64)
"""The grid sizes N measured by default with random weights."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orientations", type=int, nargs="+",
                        help=f"grid sizes N (default: {' '.join(map(str, RANDOM_MODEL_GRIDS))}; with --models, "
                        "each file's own N); with --models, each file's weights are run on each N")  # fmt: skip
    parser.add_argument("--rotations", type=int, default=10, help="random rotations per N (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per N (default: %(default)s)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="trained PONITA model files, measured instead of random-weight models (N from each file)")  # fmt: skip
    parser.add_argument("--system", default="aspirin", choices=MOLECULES,
                        help="rMD17 molecule (first train_01 frame) to rotate (default: %(default)s)")  # fmt: skip
    parser.add_argument("--test-frames", type=int, default=0, metavar="K",
                        help="rotate the first K frames of the molecule's test_01 instead of its first train_01 frame; "
                        "errors are then over every frame and rotation (default: %(default)s)")  # fmt: skip
    parser.add_argument("--nve-steps", type=int, default=200,
                        help=f"velocity-Verlet steps of {NVE_TIMESTEP_FS:g} fs for the angular-momentum drift (default: %(default)s)")  # fmt: skip
    parser.add_argument("--data", help="data folder holding rmd17/ (default: $EQFF_DATA)")


def energy_forces(calc: EqffCalculator, atoms: Atoms, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (n, 3) eV/Å of ``atoms`` moved to ``positions`` (n, 3) Å."""
    moved = atoms.copy()
    moved.positions = positions
    moved.calc = calc
    return moved.get_potential_energy(), moved.get_forces()


def net_torque(positions: np.ndarray, forces: np.ndarray) -> float:
    """|Σ (x_i − x̄) × F_i| in eV of forces (n, 3) eV/Å at positions (n, 3) Å, about their centroid x̄."""
    return float(np.linalg.norm(np.cross(positions - positions.mean(0), forces).sum(0)))


def equivariance_errors(model: torch.nn.Module, atoms: Atoms, rotations: np.ndarray) -> dict[str, float]:
    """Energy and force errors and the net torque of ``model`` (float64) under ``rotations`` (R, 3, 3)
    of ``atoms``: see the module doc."""
    calc = EqffCalculator(model, dtype="float64")
    energy, forces = energy_forces(calc, atoms, atoms.positions)
    energy_errors, force_errors, torques = [], [], [net_torque(atoms.positions, forces)]
    for rotation in rotations:
        rotated_positions = atoms.positions @ rotation.T
        rotated_energy, rotated_forces = energy_forces(calc, atoms, rotated_positions)
        energy_errors.append(abs(rotated_energy - energy))
        force_errors.append(np.abs(rotated_forces - forces @ rotation.T).mean())
        torques.append(net_torque(rotated_positions, rotated_forces))
    return {
        "energy_mean_meV": 1e3 * float(np.mean(energy_errors)),
        "energy_max_meV": 1e3 * float(np.max(energy_errors)),
        "forces_mean_meV_per_A": 1e3 * float(np.mean(force_errors)),
        "forces_relative": float(np.mean(force_errors) / np.abs(forces).mean()),
        "torque_eV": max(torques),
    }


def errors_over_structures(model: torch.nn.Module, structures: list[Atoms], rotations: np.ndarray) -> dict[str, float]:
    """:func:`equivariance_errors` over several structures: means of the means, largest of the largest."""
    per_structure = [equivariance_errors(model, atoms, rotations) for atoms in structures]
    combined = {key: float(np.mean([errors[key] for errors in per_structure])) for key in per_structure[0]}
    combined["energy_max_meV"] = max(errors["energy_max_meV"] for errors in per_structure)
    combined["torque_eV"] = max(errors["torque_eV"] for errors in per_structure)
    return combined


def angular_momentum_drift(model: torch.nn.Module, atoms: Atoms, steps: int) -> float:
    """ħ/ps: the largest |L| over ``steps`` float64 velocity-Verlet steps of :data:`NVE_TIMESTEP_FS`
    from 300 K velocities without rotation (seed 0), divided by the run's length."""
    moving = atoms.copy()
    moving.calc = EqffCalculator(model, dtype="float64")
    samples = run_nve(moving, steps, NVE_TIMESTEP_FS, interval=1, temperature=300.0, seed=0, description="NVE").samples
    return float(samples["angular_momentum_hbar"].max() / samples["time_ps"][-1])


def ponita(num_orientations: int) -> torch.nn.Module:
    """PONITA at its defaults with ``num_orientations``, random weights from seed 0 (the same for every N:
    no weight's shape depends on the grid)."""
    torch.manual_seed(0)
    return build_model("ponita", {"elements": ELEMENTS, "num_orientations": num_orientations})


def on_grid(model: torch.nn.Module, num_orientations: int) -> torch.nn.Module:
    """A copy of the PONITA ``model`` with its weights on a grid of ``num_orientations``."""
    try:
        return model.on_grid(num_orientations)
    except ValueError as error:
        raise SystemExit(f"error: --orientations {num_orientations}: {error}") from None


def models_to_measure(args: argparse.Namespace) -> list[tuple[str, int, torch.nn.Module]]:
    """(label, N, model) for each model file of ``--models`` (on its own N, or on each of
    ``--orientations``), else for random-weight PONITA at each ``--orientations``."""
    if not args.models:
        return [("random", n, ponita(n)) for n in args.orientations or RANDOM_MODEL_GRIDS]
    measured = []
    for path in args.models:
        model, content = load_model(path)
        if content["architecture"] != "ponita":
            raise SystemExit(f"error: {path} is a {content['architecture']} model; eqff equivariance measures PONITA")
        for n in args.orientations or [len(model.orientations)]:
            measured.append((Path(path).stem, n, model if n == len(model.orientations) else on_grid(model, n)))
    return measured


def run(args: argparse.Namespace) -> int:
    models = models_to_measure(args)
    if args.test_frames > 0:
        structures = [frame.to_atoms() for frame in read_rmd17(args.system, 1, "test", args.data)[: args.test_frames]]
        frames = f"the first {len(structures)} test_01 frames"
    else:
        structures = [benchmark_system(args.system, args.data)]
        frames = "its first train_01 frame"
    atoms = structures[0]
    rotations = random_rotations(args.rotations, seed=0).numpy()
    weights = "with trained weights" if args.models else "at its defaults with random weights (seed 0)"
    print(f"PONITA {weights}, rMD17 {args.system} ({len(atoms)} atoms), {frames}; errors in "
          f"float64 over {args.rotations} random rotations Q; ms per call in float32, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"net torque: largest over the structures and their rotations; |L|: over {args.nve_steps} NVE steps of "
          f"{NVE_TIMESTEP_FS:g} fs in float64 from 300 K without rotation")
    header = (f"{'model':<32} {'N':>4} {'|ΔE| mean meV':>14} {'|ΔE| max meV':>13} {'|ΔF| meV/Å':>11} "
              f"{'|ΔF| / |F|':>11} {'torque eV':>10} {'|L| ħ/ps':>9} {'ms/call':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for label, num_orientations, model in models:
        errors = errors_over_structures(model, structures, rotations)
        drift = angular_momentum_drift(model, atoms, args.nve_steps)
        ms = time_calls(atoms, EqffCalculator(model, dtype="float32"), args.repeats)["total_ms"]
        print(f"{label:<32} {num_orientations:>4} {errors['energy_mean_meV']:>14.4f} {errors['energy_max_meV']:>13.4f} "
              f"{errors['forces_mean_meV_per_A']:>11.4f} {errors['forces_relative']:>11.2e} {errors['torque_eV']:>10.2e} "
              f"{drift:>9.3g} {ms:>8.2f}", flush=True)
    return 0
