"""``eqff bench``: milliseconds per energy + forces call through the ASE calculator.

With ``--openmm`` it also times OpenMM MD steps of gas-phase aspirin through the eqff
``PythonForce`` against bare ASE calculator calls on the same structure and model. With
``--training-step`` it also times training steps with eager and with compiled energies and
forces (``training.compile`` of the training configs).
"""

import argparse
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch import nn

from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.data.md17 import MOLECULES, read_rmd17
from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
from eqff.errors import ModelCompileError
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import DEFAULT_POTENTIAL, load_model, resolve_model_path
from eqff.models import ARCHITECTURES, architecture_name, build_model
from eqff.nn.forces import compiled_energy_forces, energy_forces_stress
from eqff.nn.triplets import triplet_indices
from eqff.systems import water_box

HELP = "time energy+forces calls (ms, median) for aspirin and water boxes, neighbour list and model apart"

WATER_BOXES = {"water-192": 64, "water-1029": 343, "water-10125": 3375}
"""Benchmark water boxes: name → number of molecules (1.0 g/cm³)."""

REFERENCE_HYPERPARAMETERS = {"painn": dict(cutoff=5.0, num_features=128, num_interactions=3, num_radial=20)}
"""Hyperparameters of the random-weight models timed (besides each model's defaults): PaiNN at
SchNetPack's default size, the size the speed targets refer to; the other architectures at their
own defaults, the sizes of their training configs in ``training/`` (GemNet-T's is smaller than
the published one, see :class:`eqff.models.gemnet.GemNetT`)."""

TRIPLET_ARCHITECTURES = {"gemnet-t"}
"""Architectures that build triplet indices in ``forward``: their rows also time that step alone
(:func:`eqff.nn.triplets.triplet_indices` on the row's edge list, "trip ms"). The timed calls
reuse the indices (the edge list does not change); a call whose edge list changed adds this."""

ELEMENTS = [1, 6, 7, 8]
"""Elements of the random-weight models: those of aspirin and water."""

OPENMM_TIMESTEP_FS = 0.5
"""fs: the LangevinMiddleIntegrator step timed by ``--openmm``."""

TRAINING_BATCH = 5
"""Frames of a training step timed by ``--training-step``: the batch size of eqff's training configs."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model file or shipped potential (default: random-weight models, see --architectures)")
    parser.add_argument(
        "--architectures", nargs="+", default=["painn"], choices=sorted(ARCHITECTURES),
        help="architectures timed with random weights when no --model is given (PaiNN at SchNetPack's size, others at their defaults)",
    )  # fmt: skip
    parser.add_argument(
        "--systems", nargs="+", default=["aspirin", *WATER_BOXES],
        help=f"systems to time: rMD17 molecules (first train_01 frame) and water boxes ({', '.join(WATER_BOXES)})",
    )
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row (after 3 warm-up calls)")
    parser.add_argument("--data", default=None, help="data root with rMD17 (default: $EQFF_DATA)")
    parser.add_argument(
        "--openmm", action="store_true",
        help=f"also time OpenMM MD steps ({OPENMM_TIMESTEP_FS:g} fs) of gas-phase aspirin through the eqff PythonForce "
        f"against bare ASE calculator calls (model: --model, default {DEFAULT_POTENTIAL})",
    )  # fmt: skip
    parser.add_argument(
        "--training-step", action="store_true",
        help=f"also time training steps on {TRAINING_BATCH} rattled copies of each system, with eager and with "
        "compiled energies and forces (training.compile; compiling takes minutes)",
    )  # fmt: skip


def benchmark_system(name: str, data_root: str | None) -> Atoms:
    """The structure called ``name``: an rMD17 molecule (its first train_01 frame) or a water box."""
    if name in MOLECULES:
        return read_rmd17(name, 1, "train", data_root)[0].to_atoms()
    if name in WATER_BOXES:
        return water_box(WATER_BOXES[name])
    raise ValueError(f"unknown system {name!r}; known: the rMD17 molecules ({', '.join(MOLECULES)}), {', '.join(WATER_BOXES)}")


def time_calls(atoms: Atoms, calc: EqffCalculator, repeats: int) -> dict[str, float]:
    """Median ms of ``repeats`` energy+forces calls, with neighbour-list and model time apart.

    Positions move by 1e-4 Å between calls (so ASE does not reuse results; the cached
    neighbour list stays valid, as in most MD steps).
    """
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    totals, neighbours, models = [], [], []
    for call in range(3 + repeats):
        atoms.positions += rng.normal(scale=1e-4, size=atoms.positions.shape)
        start = time.perf_counter()
        atoms.get_forces()
        if call >= 3:
            totals.append(time.perf_counter() - start)
            neighbours.append(calc.potential.timings.neighbour_list)
            models.append(calc.potential.timings.model)
    return {
        "total_ms": 1e3 * float(np.median(totals)),
        "neighbour_ms": 1e3 * float(np.median(neighbours)),
        "model_ms": 1e3 * float(np.median(models)),
    }


def time_triplet_indices(edge_index: np.ndarray, cell_shifts: np.ndarray, num_atoms: int, repeats: int) -> float:
    """Median ms of :func:`eqff.nn.triplets.triplet_indices` on a neighbour list (after 3 warm-up calls)."""
    edges, shifts = torch.from_numpy(edge_index), torch.from_numpy(cell_shifts)
    times = []
    for call in range(3 + repeats):
        start = time.perf_counter()
        triplet_indices(edges, num_atoms, shifts)
        if call >= 3:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def reference_model(architecture: str) -> nn.Module:
    """The random-weight model of ``architecture`` timed when no model is given (seeded: the same in every process)."""
    torch.manual_seed(0)
    return build_model(architecture, {"elements": ELEMENTS, **REFERENCE_HYPERPARAMETERS.get(architecture, {})})


def time_row(model: str, name: str, data_root: str | None, device: str, dtype: str, repeats: int) -> dict:
    """:func:`time_calls` for one model (a file, a shipped name or an architecture), system, device and dtype,
    plus the number of pairs.

    Run in a fresh process per row, so that rows do not inherit each other's heap, and a row
    that runs out of memory ends only its own process.
    """
    atoms = benchmark_system(name, data_root)
    calc = EqffCalculator(reference_model(model) if model in ARCHITECTURES else model, device=device, dtype=dtype)
    row = time_calls(atoms, calc, repeats)
    edge_index, cell_shifts = calc.potential.neighbours(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
    row["pairs"] = edge_index.shape[1]
    if architecture_name(calc.potential.model) in TRIPLET_ARCHITECTURES and device == "cpu":
        row["triplet_ms"] = time_triplet_indices(edge_index, cell_shifts, len(atoms), repeats)
    return row


def triplet_cell(row: dict) -> str:
    """The "trip ms" column: triplet construction ms and its share of the call, or empty."""
    if "triplet_ms" not in row:
        return ""
    return f"{row['triplet_ms']:.2f} ({100 * row['triplet_ms'] / row['total_ms']:.0f}%)"


def run_in_fresh_process(function, *args):
    """``function(*args)`` in a new (spawned) process; ``None`` if that process died (e.g. out of memory)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool:
            return None


def run(args: argparse.Namespace) -> int:
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    models = [str(resolve_model_path(args.model))] if args.model else args.architectures
    if not args.model:
        painn = ", ".join(f"{k}={v}" for k, v in REFERENCE_HYPERPARAMETERS["painn"].items())
        print(f"models: random weights; painn: {painn}; others at their defaults")
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} calls after 3 warm-up calls "
          "(a quarter of them above 5,000 atoms), each row in a fresh process")
    header = (f"{'model':<14} {'system':<12} {'atoms':>6} {'pairs':>8} {'device':<6} {'dtype':<8} {'ms/call':>9} "
              f"{'nbr ms':>8} {'model ms':>9} {'µs/atom':>8} {'trip ms':>8}")
    print(header)
    print("-" * len(header))
    for model in models:
        for name in args.systems:
            num_atoms = len(benchmark_system(name, args.data))
            repeats = args.repeats if num_atoms < 5000 else max(3, args.repeats // 4)
            for device in devices:
                for dtype in args.dtypes:
                    row = run_in_fresh_process(time_row, model, name, args.data, device, dtype, repeats)
                    start = f"{Path(model).stem:<14} {name:<12} {num_atoms:>6}"
                    if row is None:
                        print(f"{start} {'':>8} {device:<6} {dtype:<8} the process died (out of memory?)", flush=True)
                        continue
                    print(f"{start} {row['pairs']:>8} {device:<6} {dtype:<8} {row['total_ms']:>9.2f} "
                          f"{row['neighbour_ms']:>8.2f} {row['model_ms']:>9.2f} "
                          f"{1e3 * row['total_ms'] / num_atoms:>8.1f} {triplet_cell(row):>8}", flush=True)
    if args.openmm:
        compare_openmm(args, devices)
    if args.training_step:
        compare_training_steps(args, models)
    return 0


def time_openmm_steps(atoms: Atoms, model: str, device: str, dtype: str, repeats: int) -> dict:
    """OpenMM MD steps (LangevinMiddleIntegrator, 300 K) with the eqff PythonForce.

    The System comes from ``MLPotential("eqff", modelPath=model).createSystem`` at the precision
    of ``dtype``; ``repeats`` single steps are timed after 3 warm-up steps.

    Returns ``ms`` (median per step), ``platform``, and OpenMM's ``energy`` (eV) and ``forces``
    (n, 3) eV/Å at ``atoms.positions``, before the first step.
    """
    import openmm
    from openmm import unit
    from openmmml import MLPotential

    from eqff.integrations.openmm import PRECISIONS, molecule_topology

    precision = next(name for name, value in PRECISIONS.items() if value == dtype)
    system = MLPotential("eqff", modelPath=model).createSystem(
        molecule_topology(atoms.numbers), precision=precision, device=device
    )
    temperature = 300 * unit.kelvin
    timestep = OPENMM_TIMESTEP_FS * unit.femtoseconds
    integrator = openmm.LangevinMiddleIntegrator(temperature, 1 / unit.picosecond, timestep)
    context = openmm.Context(system, integrator)
    context.setPositions(atoms.positions * unit.angstrom)
    context.setVelocitiesToTemperature(temperature, 0)
    start_state = context.getState(getEnergy=True, getForces=True)
    energy = start_state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_IN_KJ_PER_MOL
    force_unit = unit.kilojoule_per_mole / unit.nanometer
    forces = start_state.getForces(asNumpy=True).value_in_unit(force_unit) / EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
    times = []
    for step in range(3 + repeats):
        start = time.perf_counter()
        integrator.step(1)
        if step >= 3:
            times.append(time.perf_counter() - start)
    return {"ms": 1e3 * float(np.median(times)), "platform": context.getPlatform().getName(), "energy": energy,
            "forces": forces}  # fmt: skip


def compare_openmm(args: argparse.Namespace, devices: list[str]) -> None:
    """Print ms per OpenMM step against ms per bare ASE call for gas-phase aspirin, the overhead and ns/day."""
    model = args.model or DEFAULT_POTENTIAL
    atoms = benchmark_system("aspirin", args.data)
    print(f"\nOpenMM: gas-phase aspirin ({len(atoms)} atoms), model {model}")
    print(f"LangevinMiddleIntegrator steps of {OPENMM_TIMESTEP_FS:g} fs through the eqff PythonForce vs bare ASE "
          f"calculator calls; median of {args.repeats} after 3 warm-up")
    print("agreement with the ASE calculator at the starting positions: |ΔE|/|E| and max |ΔF| / max |F|")
    header = (f"{'device':<6} {'dtype':<8} {'platform':<9} {'ASE ms/call':>12} {'OpenMM ms/step':>15} "
              f"{'overhead':>9} {'ns/day':>8} {'ΔE rel':>9} {'ΔF rel':>9}")
    print(header)
    print("-" * len(header))
    for device in devices:
        for dtype in args.dtypes:
            calc = EqffCalculator(model, device=device, dtype=dtype)
            ase_ms = time_calls(atoms, calc, args.repeats)["total_ms"]
            ase_energy, ase_forces = calc.get_potential_energy(atoms), calc.get_forces(atoms)
            steps = time_openmm_steps(atoms, model, device, dtype, args.repeats)
            ns_per_day = OPENMM_TIMESTEP_FS * 1e-6 * 86400e3 / steps["ms"]  # ns per step × steps per day
            energy_error = abs(steps["energy"] - ase_energy) / abs(ase_energy)
            force_error = np.abs(steps["forces"] - ase_forces).max() / np.abs(ase_forces).max()
            print(f"{device:<6} {dtype:<8} {steps['platform']:<9} {ase_ms:>12.2f} {steps['ms']:>15.2f} "
                  f"{100 * (steps['ms'] - ase_ms) / ase_ms:>8.1f}% {ns_per_day:>8.2f} {energy_error:>9.1e} "
                  f"{force_error:>9.1e}", flush=True)


def time_training_steps(model: str, name: str, data_root: str | None, repeats: int) -> dict:
    """Median ms of a float32 CPU training step, eager and compiled, for one model and system.

    A step computes the energies and forces of :data:`TRAINING_BATCH` copies of the system, each
    rattled by 0.05 Å (seeded), and back-propagates a loss on both to the weights, as a training
    step does before the optimiser's update. Eager steps use
    :func:`eqff.nn.forces.energy_forces_stress`, compiled ones
    :func:`eqff.nn.forces.compiled_energy_forces`; the first compiled step, which compiles, is
    timed on its own.

    Returns ``eager_ms`` and either ``compile_s`` and ``compiled_ms``, or ``error``: why the
    model cannot be compiled.
    """
    network = reference_model(model) if model in ARCHITECTURES else load_model(resolve_model_path(model))[0]
    network = network.to(torch.float32).train()
    frames = []
    for seed in range(TRAINING_BATCH):
        atoms = benchmark_system(name, data_root)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms_to_graph(atoms, network.cutoff, torch.float32))
    batch = collate(frames)

    def step(energy_forces) -> float:
        start = time.perf_counter()
        network.zero_grad()
        predicted = energy_forces(batch)
        loss = predicted[keys.ENERGY].square().mean() + predicted[keys.FORCES].square().mean()
        loss.backward()
        return time.perf_counter() - start

    def median_ms(energy_forces) -> float:
        times = [step(energy_forces) for _ in range(3 + repeats)][3:]
        return 1e3 * float(np.median(times))

    row = {"eager_ms": median_ms(lambda graph: energy_forces_stress(network, graph))}
    compiled = compiled_energy_forces(network)
    try:
        row["compile_s"] = step(compiled)
    except ModelCompileError as error:
        return {**row, "error": str(error)}
    row["compiled_ms"] = median_ms(compiled)
    return row


def compare_training_steps(args: argparse.Namespace, models: list[str]) -> None:
    """Print ms per training step with eager and with compiled energies and forces, per model and system."""
    print(f"\ntraining steps: {TRAINING_BATCH} rattled copies of the system, energies, forces and the backward of a "
          f"loss on both, float32, cpu; median of {args.repeats} after 3 warm-up; each row in a fresh process")
    header = f"{'model':<14} {'system':<12} {'eager ms':>9} {'compile s':>10} {'compiled ms':>12} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for model in models:
        for name in args.systems:
            row = run_in_fresh_process(time_training_steps, model, name, args.data, args.repeats)
            start = f"{Path(model).stem:<14} {name:<12}"
            if row is None:
                print(f"{start} the process died (out of memory?)", flush=True)
            elif "error" in row:
                print(f"{start} {row['eager_ms']:>9.2f} cannot compile: {row['error']}", flush=True)
            else:
                print(f"{start} {row['eager_ms']:>9.2f} {row['compile_s']:>10.1f} {row['compiled_ms']:>12.2f} "
                      f"{row['eager_ms'] / row['compiled_ms']:>8.2f}x", flush=True)
