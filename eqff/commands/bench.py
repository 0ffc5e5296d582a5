"""``eqff bench``: milliseconds per energy + forces call through the ASE calculator.

With ``--openmm`` it also times OpenMM MD steps of gas-phase aspirin through the eqff
``PythonForce`` against bare ASE calculator calls on the same structure and model. With
``--training-step`` it also times training steps with eager and with compiled energies and
forces (``training.compile`` of the training configs) and, where the peers' virtual environment
is (``--peers-python``, see :mod:`eqff.peers`), the training steps of SchNetPack's PaiNN (at the
size of the eqff PaiNN timed) and of MACE on the same frames, in the same run.
"""

import argparse
import itertools
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
from ase.calculators.singlepoint import SinglePointCalculator
from torch import nn

from eqff.allocator import retain_freed_memory
from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.data.md17 import read_rmd17
from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
from eqff.errors import EqffInputError, ModelCompileError
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import DEFAULT_POTENTIAL, load_model, resolve_model_path
from eqff.models import ARCHITECTURES, architecture_name, build_model
from eqff.nn.forces import compiled_energy_forces, energy_forces_stress
from eqff.neighbours import edge_lengths
from eqff.nn.triplets import triplet_indices
from eqff.potential import Potential
from eqff.prediction import CPU_PAIRS_PER_CALL, FRAMES_PER_CALL, predict
from eqff.peers.run import (
    DEFAULT_PEERS_PYTHON, PEER_LABELS, PEERS, missing_peers_python, painn_peer_size, time_peer_training_step,
)  # fmt: skip
from eqff.md.systems import WATER_BOXES, WATER_TRAJECTORY_TIMESTEP_FS, benchmark_system, water_trajectory
from eqff.threads import call_threads
from eqff.train.loss import EnergyForceLoss


REFERENCE_HYPERPARAMETERS = {"painn": dict(cutoff=5.0, num_features=128, num_interactions=3, num_radial=20)}
"""Hyperparameters of the random-weight models timed (besides each model's defaults): PaiNN at
SchNetPack's default size, the size the speed targets refer to; the other architectures at their
own defaults, the sizes of their training configs in ``training/`` (GemNet-T's is smaller than
the published one, see :class:`eqff.models.gemnet.GemNetT`)."""

TRIPLET_ARCHITECTURES = {"gemnet-t", "dimenet++"}
"""Architectures that build triplet indices from the neighbour list: their rows also time that
step alone (:func:`eqff.nn.triplets.triplet_indices` on the calculator's Verlet list, "trip ms"),
which a call pays only when that list is rebuilt."""

ELEMENTS = [1, 6, 7, 8]
"""Elements of the random-weight models: those of aspirin and water."""

OPENMM_TIMESTEP_FS = 0.5
"""fs: the LangevinMiddleIntegrator step timed by ``--openmm``."""

MOTIONS = {
    "rattle": "positions move by 1e-4 Å between calls; median ms",
    "md": f"calls follow a 300 K MD trajectory of flexible TIP3P-FB water ({WATER_TRAJECTORY_TIMESTEP_FS:g} fs "
    "between frames, water boxes only); mean ms, with the rebuilds of the neighbour list and triplets counted",
}
"""How positions change between timed calls (``--motion``)."""

TRAINING_BATCH = 5
"""Frames of a training step timed by ``--training-step``: the batch size of eqff's training configs."""

TRAINING_RATTLE = 0.05
"""Å: standard deviation of the rattle of each frame of a timed training step."""


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
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"], help="floating dtypes, a row for each")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row (after 3 warm-up calls)")
    parser.add_argument(
        "--motion", choices=sorted(MOTIONS), default="rattle",
        help="; ".join(f"{name}: {text}" for name, text in MOTIONS.items()),
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true",
        help="time compiled calls, as the calculator makes them once a run has spent a minute in eager calls "
        "(eqff.compilation); the first warm-up call compiles and is not timed",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+",
                        help="torch CPU threads per call, a row for each (default: the calculator's own choice)")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument(
        "--predict", type=int, metavar="N",
        help="also time eqff.predict, eager and compiled, at its defaults on the first N rMD17 aspirin train_01 "
        f"frames against one calculator call per frame (model: --model, default {DEFAULT_POTENTIAL}), in structures "
        "per second",
    )  # fmt: skip
    parser.add_argument(
        "--openmm", action="store_true",
        help=f"also time OpenMM MD steps ({OPENMM_TIMESTEP_FS:g} fs) of gas-phase aspirin through the eqff PythonForce "
        f"against bare ASE calculator calls (model: --model, default {DEFAULT_POTENTIAL})",
    )  # fmt: skip
    parser.add_argument(
        "--training-step", action="store_true",
        help=f"also time training steps on {TRAINING_BATCH} rattled copies of each system, with eager and with "
        "compiled energies and forces (training.compile; compiling takes minutes), and those of SchNetPack's PaiNN "
        "and MACE on the same frames where the peers' Python is (--peers-python)",
    )  # fmt: skip
    parser.add_argument(
        "--peers-python", default=DEFAULT_PEERS_PYTHON,
        help="Python of the peers' environment, for --training-step (default: $EQFF_PEERS_PYTHON or %(default)s)",
    )  # fmt: skip


def time_calls(atoms: Atoms, calc: EqffCalculator, repeats: int, frames: np.ndarray | None = None) -> dict[str, float]:
    """ms of ``repeats`` energy+forces calls, with neighbour-list and model time apart, after 3 warm-up calls.

    Without ``frames``, positions move by 1e-4 Å between calls (so ASE does not reuse results; the
    cached neighbour list stays valid, as in most MD steps) and the medians are returned. With
    ``frames`` ((3 + repeats, n, 3) Å, consecutive MD frames), each call takes the next frame and
    the means are returned, so that the steps that rebuild the neighbour list (and, for GemNet-T,
    the triplets) count as often as they occur in MD; ``neighbour_builds`` and, where the model
    caches triplets, ``triplet_builds`` count the rebuilds during the timed calls.
    ``first_call_s`` is the first warm-up call's time (with ``compile=True``, the compilation).
    """
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    totals, neighbours, models = [], [], []
    triplets = getattr(calc.potential.model, "triplets", None)
    first_call_start = time.perf_counter()
    for call in range(3 + repeats):
        if call == 1:
            first_call_seconds = time.perf_counter() - first_call_start
        if call == 3:
            neighbour_builds = calc.potential.neighbours.num_builds
            triplet_builds = triplets.num_builds if triplets is not None else 0
        if frames is None:
            atoms.positions += rng.normal(scale=1e-4, size=atoms.positions.shape)
        else:
            atoms.positions = frames[call]
        start = time.perf_counter()
        atoms.get_forces()
        if call >= 3:
            totals.append(time.perf_counter() - start)
            neighbours.append(calc.potential.timings.neighbour_list)
            models.append(calc.potential.timings.model)
    average = np.median if frames is None else np.mean
    row = {
        "first_call_s": first_call_seconds,
        "total_ms": 1e3 * float(average(totals)),
        "neighbour_ms": 1e3 * float(average(neighbours)),
        "model_ms": 1e3 * float(average(models)),
    }
    if frames is not None:
        row["neighbour_builds"] = calc.potential.neighbours.num_builds - neighbour_builds
        if triplets is not None:
            row["triplet_builds"] = triplets.num_builds - triplet_builds
    return row


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


def time_row(
    model: str,
    name: str,
    data_root: str | None,
    device: str,
    dtype: str,
    repeats: int,
    threads: int | None = None,
    motion: str = "rattle",
    compile: bool = False,
) -> dict:
    """:func:`time_calls` for one model (a file, a shipped name or an architecture), system, device,
    dtype, thread count (``None``: the calculator's default, :mod:`eqff.threads`) and motion
    (:data:`MOTIONS`), eager or compiled from the first warm-up call on (``compile``), plus the
    number of pairs and the threads the calls ran on.

    Run in a fresh process per row, so that rows do not inherit each other's heap, and a row
    that runs out of memory ends only its own process.
    """
    atoms = benchmark_system(name, data_root)
    retain_freed_memory()  # a fresh process of eqff's own: see eqff.allocator
    network = reference_model(model) if model in ARCHITECTURES else model
    calc = EqffCalculator(network, device=device, dtype=dtype, threads=threads, compile=compile)
    frames = water_trajectory(atoms, 3 + repeats) if motion == "md" else None
    row = time_calls(atoms, calc, repeats, frames)
    row["threads"] = call_threads(len(atoms), threads) or torch.get_num_threads()
    edge_index, cell_shifts = calc.potential.neighbours(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
    lengths = edge_lengths(atoms.positions, atoms.cell.array, edge_index, cell_shifts)
    row["pairs"] = int((lengths < calc.potential.model.cutoff).sum())
    if architecture_name(calc.potential.model) in TRIPLET_ARCHITECTURES and device == "cpu":
        row["triplet_ms"] = time_triplet_indices(edge_index, cell_shifts, len(atoms), repeats)
    return row


def triplet_cell(row: dict) -> str:
    """The "trip ms" column: triplet construction ms and its share of the call, or empty."""
    if "triplet_ms" not in row:
        return ""
    return f"{row['triplet_ms']:.2f} ({100 * row['triplet_ms'] / row['total_ms']:.0f}%)"


def rebuilds_cell(row: dict) -> str:
    """The "rebuilds" column of ``--motion md``: neighbour-list builds and, where counted, triplet
    builds during the timed calls (``nbr/trip``), or nothing for ``--motion rattle``."""
    if "neighbour_builds" not in row:
        return ""
    cell = str(row["neighbour_builds"])
    if "triplet_builds" in row:
        cell += f"/{row['triplet_builds']}"
    return f" {cell:>9}"


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
    systems = {name: benchmark_system(name, args.data) for name in args.systems}  # bad input fails before any output
    if args.motion == "md" and set(systems) - set(WATER_BOXES):
        raise EqffInputError(f"--motion md follows a water trajectory; choose --systems among {', '.join(WATER_BOXES)}")
    if not args.model:
        painn = ", ".join(f"{k}={v}" for k, v in REFERENCE_HYPERPARAMETERS["painn"].items())
        print(f"models: random weights; painn: {painn}; others at their defaults")
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{args.repeats} calls after 3 warm-up calls ({max(3, args.repeats // 4)} for systems above 5,000 atoms), "
          "each row in a fresh process")
    print(f"motion: {args.motion}: {MOTIONS[args.motion]}; calls {'compiled' if args.compile else 'eager'}")
    header = (f"{'model':<14} {'system':<12} {'atoms':>6} {'pairs':>8} {'device':<6} {'dtype':<8} {'threads':>7} "
              f"{'ms/call':>9} {'nbr ms':>8} {'model ms':>9} {'µs/atom':>8} {'trip ms':>8}")
    if args.motion == "md":
        header += f" {'rebuilds':>9}"
    if args.compile:
        header += f" {'compile s':>9}"
    print(header)
    print("-" * len(header))
    for model in models:
        for name, atoms in systems.items():
            num_atoms = len(atoms)
            repeats = args.repeats if num_atoms < 5000 else max(3, args.repeats // 4)
            for device, dtype, threads in itertools.product(devices, args.dtypes, args.threads or [None]):
                row = run_in_fresh_process(
                    time_row, model, name, args.data, device, dtype, repeats, threads, args.motion, args.compile
                )
                start = f"{Path(model).stem:<14} {name:<12} {num_atoms:>6}"
                if row is None:
                    print(f"{start} {'':>8} {device:<6} {dtype:<8} {threads or '':>7} the process died (out of memory?)",
                          flush=True)
                    continue
                print(f"{start} {row['pairs']:>8} {device:<6} {dtype:<8} {row['threads']:>7} {row['total_ms']:>9.2f} "
                      f"{row['neighbour_ms']:>8.2f} {row['model_ms']:>9.2f} "
                      f"{1e3 * row['total_ms'] / num_atoms:>8.1f} {triplet_cell(row):>8}{rebuilds_cell(row)}"
                      + (f" {row['first_call_s']:>9.1f}" if args.compile else ""), flush=True)
    if args.openmm:
        compare_openmm(args, devices)
    if args.training_step:
        compare_training_steps(args, models)
    if args.predict:
        compare_predict(args)
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


def training_frames(name: str, data_root: str | None) -> list[Atoms]:
    """The :data:`TRAINING_BATCH` frames of a timed training step: copies of the system ``name``
    rattled by :data:`TRAINING_RATTLE` Å (seeds 0, 1, ...), labelled with zero energy (eV) and
    forces (eV/Å) through a ``SinglePointCalculator``. The labels' values do not change a step's cost."""
    system = benchmark_system(name, data_root)
    frames = []
    for seed in range(TRAINING_BATCH):
        atoms = system.copy()
        atoms.rattle(TRAINING_RATTLE, seed=seed)
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    return frames


def training_batch(frames: list[Atoms], cutoff: float) -> dict[str, torch.Tensor]:
    """The eqff batch graph of ``frames`` (pairs within ``cutoff`` Å), float32, with their labels in
    float64 as training batches hold them: ``energy`` (B,) eV and ``forces`` (n, 3) eV/Å."""
    graphs = []
    for atoms in frames:
        graph = atoms_to_graph(atoms, cutoff, torch.float32)
        graph[keys.ENERGY] = torch.tensor(atoms.get_potential_energy(), dtype=torch.float64)
        graph[keys.FORCES] = torch.as_tensor(atoms.get_forces(), dtype=torch.float64)
        graphs.append(graph)
    return collate(graphs)


def time_training_steps(model: str, name: str, data_root: str | None, repeats: int) -> dict:
    """Median ms of a float32 CPU training step, eager and compiled, for one model and system.

    A step on :func:`training_frames` as one batch zeroes the gradients, computes the energies
    and forces, the MSE loss on both against the labels (:class:`eqff.train.loss.EnergyForceLoss`,
    weights 1), its backward and an Adam step (torch's default settings), as a training step
    does. Eager steps use :func:`eqff.nn.forces.energy_forces_stress`, compiled ones
    :func:`eqff.nn.forces.compiled_energy_forces`; the first compiled step, which compiles, is
    timed on its own.

    Returns ``architecture``, ``hyperparameters`` (the model's), ``pairs`` (in the batch),
    ``eager_ms`` and either ``compile_s`` and ``compiled_ms``, or ``error``: why the model cannot
    be compiled.
    """
    network = reference_model(model) if model in ARCHITECTURES else load_model(resolve_model_path(model))[0]
    network = network.to(torch.float32).train()
    batch = training_batch(training_frames(name, data_root), network.cutoff)
    loss_fn = EnergyForceLoss(energy_weight=1.0, forces_weight=1.0)
    optimiser = torch.optim.Adam(network.parameters())

    def step(energy_forces) -> float:
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        loss_fn(energy_forces(batch), batch)["loss"].backward()
        optimiser.step()
        return time.perf_counter() - start

    def median_ms(energy_forces) -> float:
        times = [step(energy_forces) for _ in range(3 + repeats)][3:]
        return 1e3 * float(np.median(times))

    row = {"architecture": architecture_name(network), "hyperparameters": dict(network.hyperparameters),
           "pairs": batch[keys.EDGE_INDEX].shape[1],
           "eager_ms": median_ms(lambda graph: energy_forces_stress(network, graph))}  # fmt: skip
    compiled = compiled_energy_forces(network)
    try:
        row["compile_s"] = step(compiled)
    except ModelCompileError as error:
        return {**row, "error": str(error)}
    row["compiled_ms"] = median_ms(compiled)
    return row


TRAINING_LABEL_WIDTH = max(14, *map(len, PEER_LABELS.values()))
"""Width of the model column of the training-step table: eqff's model names and the peers' labels."""


def training_row(label: str, name: str, row: dict | None) -> str:
    """One eqff row of the training-step table."""
    start = f"{label:<{TRAINING_LABEL_WIDTH}} {name:<12}"
    if row is None:
        return f"{start} the process died (out of memory?)"
    if "error" in row:
        return f"{start} {row['eager_ms']:>9.2f} cannot compile: {row['error']}"
    return (f"{start} {row['eager_ms']:>9.2f} {row['compile_s']:>10.1f} {row['compiled_ms']:>12.2f} "
            f"{row['eager_ms'] / row['compiled_ms']:>8.2f}x")  # fmt: skip


def compare_training_steps(args: argparse.Namespace, models: list[str]) -> None:
    """Print ms per training step with eager and with compiled energies and forces, per model and system,
    then, where the peers' Python is, the peers' steps on the same frames (:func:`compare_peer_training_steps`)."""
    threads = torch.get_num_threads()
    missing = missing_peers_python(args.peers_python)
    print(f"\ntraining steps: {TRAINING_BATCH} copies of the system rattled by {TRAINING_RATTLE:g} Å, energies, "
          "forces, an MSE loss on both, its backward and an Adam step, float32, cpu, "
          f"{threads} threads; median of {args.repeats} after 3 warm-up; each row in a fresh process")  # fmt: skip
    if missing:
        print(f"peers: {missing}; their rows are skipped")
    header = (f"{'model':<{TRAINING_LABEL_WIDTH}} {'system':<12} {'eager ms':>9} {'compile s':>10} "
              f"{'compiled ms':>12} {'speed-up':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name in args.systems:
        rows = {}
        for model in models:
            rows[model] = run_in_fresh_process(time_training_steps, model, name, args.data, args.repeats)
            print(training_row(Path(model).stem, name, rows[model]), flush=True)
        if not missing:
            compare_peer_training_steps(args, name, rows, threads)


def compare_peer_training_steps(
    args: argparse.Namespace, name: str, rows: dict[str, dict | None], threads: int
) -> None:
    """Print the peers' rows of the training-step table for the system ``name``, a note on each
    peer, and the ratio of eqff's PaiNN step to SchNetPack's.

    The peers are timed by ``time_peer.py`` in the peers' environment on the same frames
    (:func:`training_frames`), in float32 on ``threads`` torch threads. SchNetPack's PaiNN has the
    size of the first eqff PaiNN in ``rows`` (eqff's rows, by model), else that of
    :data:`REFERENCE_HYPERPARAMETERS`; MACE its rMD17 size.
    """
    painn = next((row for row in rows.values() if row and row["architecture"] == "painn"), None)
    painn_size = painn_peer_size(painn["hyperparameters"] if painn else REFERENCE_HYPERPARAMETERS["painn"])
    sizes = {"mace": None, "schnetpack-painn": painn_size}
    frames = training_frames(name, args.data)
    records = {}
    for peer in PEERS:
        start = f"{PEER_LABELS[peer]:<{TRAINING_LABEL_WIDTH}} {name:<12}"
        try:
            records[peer] = time_peer_training_step(args.peers_python, peer, frames, args.repeats, threads, sizes[peer])
        except RuntimeError as error:
            print(f"{start} failed: {str(error).splitlines()[-1]}", flush=True)
            continue
        print(f"{start} {records[peer]['ms']:>9.2f}", flush=True)
    eqff_pairs = f" (eqff's: {painn['pairs']})" if painn else ""
    for peer, record in records.items():
        print(f"  {PEER_LABELS[peer]}: {record['description']}; {record['pairs']} pairs in the batch{eqff_pairs}, "
              f"{record['torch_threads']} threads; versions {record['versions']}")  # fmt: skip
    if painn and "schnetpack-painn" in records:
        peer_ms = records["schnetpack-painn"]["ms"]
        compiled = f", {painn['compiled_ms'] / peer_ms:.2f} compiled" if "compiled_ms" in painn else ""
        eager = f"{painn['eager_ms'] / peer_ms:.2f} eager"
        print(f"eqff PaiNN / SchNetPack PaiNN training step on {name}: {eager}{compiled}")


WARM_UP_FRAMES = 32
"""Frames of the untimed ``eqff.predict`` call before each timed one in ``--predict``."""


def time_predict(model: str, data_root: str | None, num_frames: int) -> dict:
    """Structures per second of ``eqff.predict``, eager and compiled, and of one calculator call
    per frame with its defaults, on the first ``num_frames`` rMD17 aspirin train_01 frames
    (float32, CPU); the seconds the compiled run's first batch took (compiling it); and the
    largest differences of their energies (eV) and forces (eV/Å) from the calculator's. Run in a
    fresh process."""
    retain_freed_memory()  # a fresh process of eqff's own: see eqff.allocator
    frames = read_rmd17("aspirin", 1, "train", data_root)[:num_frames]
    row: dict = {}
    runs = {}
    for name, compile in (("eager", False), ("compiled", True)):
        potential = Potential(model, compile=compile)
        start = time.perf_counter()
        predict(potential, frames[:WARM_UP_FRAMES])  # warm-up (compiles)
        row[f"{name}_first_batch_s"] = time.perf_counter() - start
        start = time.perf_counter()
        runs[name] = predict(potential, frames)
        row[f"{name}_per_s"] = len(frames) / (time.perf_counter() - start)
    calculator = EqffCalculator(model)
    start = time.perf_counter()
    singles = []
    for frame in frames:
        atoms = frame.to_atoms()
        atoms.calc = calculator
        singles.append((atoms.get_potential_energy(), atoms.get_forces()))
    row["single_per_s"] = len(frames) / (time.perf_counter() - start)
    for name, predictions in runs.items():
        row[f"{name}_energy_diff"] = max(abs(p.energy - e) for p, (e, _) in zip(predictions, singles))
        row[f"{name}_forces_diff"] = max(float(np.abs(p.forces - f).max()) for p, (_, f) in zip(predictions, singles))
    return row


def compare_predict(args: argparse.Namespace) -> None:
    """Print eqff.predict's throughput, eager and compiled, beside one calculator call per frame."""
    model = args.model or DEFAULT_POTENTIAL
    row = run_in_fresh_process(time_predict, model, args.data, args.predict)
    print(f"\neqff.predict: {args.predict} rMD17 aspirin frames, model {Path(model).stem}, float32, cpu, "
          f"{torch.get_num_threads()} threads; predict's batches (at most {FRAMES_PER_CALL} frames and {CPU_PAIRS_PER_CALL} pairs "
          "per call, eager calls one per thread at a time), the calculator's threads (one for molecules)")
    single = row["single_per_s"]
    print(f"  calculator per frame         {single:10.1f} structures/s")
    for name in ("eager", "compiled"):
        print(f"  eqff.predict, {name:9s}      {row[f'{name}_per_s']:10.1f} structures/s, ratio "
              f"{row[f'{name}_per_s'] / single:.2f} (first batch {row[f'{name}_first_batch_s']:.1f} s); largest "
              f"differences: energy {row[f'{name}_energy_diff']:.1e} eV, forces {row[f'{name}_forces_diff']:.1e} eV/Å")