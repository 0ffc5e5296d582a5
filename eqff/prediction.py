"""Energies, forces and stresses of many structures at once: ``eqff.predict(model, structures)``
(:func:`predict`).

Structures are evaluated in batches (one graph of several frames per model call), which costs
far less per structure than one calculator call each for small molecules, where a call is
mostly per-operation overhead. On a CPU, molecules' batches stay small enough for their
per-pair tensors to fit in a core's cache (:data:`CPU_PAIRS_PER_CALL`), and several batches
run at once, one per thread (:func:`worker_count`): a small batch gains little from a second
thread inside each operation. The numbers are those of
:class:`~eqff.integrations.ase.EqffCalculator` to float round-off.
"""

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from torch import nn

from eqff.data import keys
from eqff.data.frames import Frame
from eqff.data.graph import collate, structure_to_graph
from eqff.memory import can_measure, free_bytes, peak_bytes
from eqff.neighbours import neighbour_list
from eqff.potential import Potential
from eqff.threads import MULTI_THREAD_MIN_ATOMS, call_threads, torch_threads

MEMORY_FRACTION = 0.5
"""Share of the free memory the batches evaluated at once may take as working memory; the rest
is left as margin."""

FRAMES_PER_CALL = 32
"""Most structures in one model call by default (``batch_size``), memory and pairs permitting."""

CPU_PAIRS_PER_CALL = 2400
"""Most neighbour pairs in one model call on CPU. A call's largest tensors are per pair (PaiNN's
(pairs, 3, F) vector messages); past a few thousand pairs they no longer fit in a core's cache
and each structure costs more, not less (``eqff bench --predict``)."""


@dataclass(frozen=True)
class Prediction:
    """What a model predicts for one structure.

    Attributes:
        energy: eV.
        forces: (n, 3) eV/Å.
        stress: (3, 3) eV/Å³ for a structure periodic in all three directions, else ``None``.
    """

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None


def predict(
    model: str | os.PathLike | nn.Module | Potential,
    structures: Sequence[Atoms | Frame],
    batch_size: int = FRAMES_PER_CALL,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    compile: bool | None = False,
) -> list[Prediction]:
    """Energy, forces and, for fully periodic structures, stress of every structure, in order.

    Args:
        model: a model file, the name of a shipped potential, an eqff model, or a
            :class:`~eqff.potential.Potential` (then ``device``, ``dtype``, ``threads`` and ``compile`` are its own).
        structures: ``ase.Atoms`` or :class:`~eqff.data.frames.Frame` objects, in Å.
        batch_size: at most this many structures per model call; fewer where the calls run at
            once would need more than half the free memory (measured by one call on the largest
            structure), and on a CPU at most :data:`CPU_PAIRS_PER_CALL` neighbour pairs per call
            (or one structure with more). Fully periodic structures are batched apart from the
            others, since only they get a stress.
        device, dtype, threads: as for :class:`~eqff.potential.Potential`; on a CPU, eager calls
            on molecules run ``threads`` (default: torch's thread count) at a time, one thread
            each (:func:`worker_count`).
        compile: as for :class:`~eqff.potential.Potential`, but eager by default: compiling
            takes about a minute, and compiled calls were only about a tenth faster than eager
            ones run two at a time on a 2-core CPU (``eqff bench --predict 1000``).

    Raises:
        UnknownElementError: a structure holds an element the model does not know (checked
            for all structures before any is evaluated).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(model, Potential):
        potential = model
    else:
        potential = Potential(model, device=device, dtype=dtype, threads=threads, compile=compile)
    frames = [structure if isinstance(structure, Frame) else Frame.from_atoms(structure) for structure in structures]
    for frame in frames:
        potential.check_elements(frame.atomic_numbers)
        potential.check_domain(frame.atomic_numbers)
    if not frames:
        return []
    workers = worker_count(potential, frames)
    if batch_size > 1 and len(frames) > 1:
        batch_size = min(batch_size, frames_per_call_that_fit(potential, frames, workers))
    calls = (
        (batch, graphs, periodic)
        for periodic in (False, True)
        for batch, graphs in _calls(
            potential, frames, [i for i, frame in enumerate(frames) if bool(frame.pbc.all()) == periodic], batch_size
        )
    )
    predictions: dict[int, Prediction] = {}  # by index into frames
    if workers == 1:
        for batch, graphs, periodic in calls:
            with torch_threads(call_threads(sum(frames[i].num_atoms for i in batch), potential.threads)):
                predictions.update(zip(batch, _predict_graphs(potential, [frames[i] for i in batch], graphs, periodic)))
    else:
        pending: deque[tuple[list[int], Future]] = deque()  # at most two calls per worker built ahead
        with torch_threads(1), ThreadPoolExecutor(workers) as pool:
            for batch, graphs, periodic in calls:
                frames_of_call = [frames[i] for i in batch]
                pending.append((batch, pool.submit(_predict_graphs, potential, frames_of_call, graphs, periodic)))
                while len(pending) >= 2 * workers or (pending and pending[0][1].done()):
                    batch_done, result = pending.popleft()
                    predictions.update(zip(batch_done, result.result()))
            for batch_done, result in pending:
                predictions.update(zip(batch_done, result.result()))
    return [predictions[i] for i in range(len(frames))]


def worker_count(potential: Potential, frames: Sequence[Frame]) -> int:
    """How many model calls run at once, each on one thread: on a CPU, for eager calls on
    structures below :data:`~eqff.threads.MULTI_THREAD_MIN_ATOMS` atoms, the potential's
    ``threads`` or else torch's thread count (``OMP_NUM_THREADS``, ``torch.set_num_threads``);
    otherwise 1 (one call at a time, on the threads :func:`~eqff.threads.call_threads` gives it).
    Compiled calls hold Python's lock for longer and ran no faster two at a time."""
    eager = potential.energy_forces.compile is False
    small = max(frame.num_atoms for frame in frames) < MULTI_THREAD_MIN_ATOMS
    if potential.device.type != "cpu" or not eager or not small:
        return 1
    return potential.threads or torch.get_num_threads()


def frames_per_call_that_fit(potential: Potential, frames: Sequence[Frame], workers: int = 1) -> int:
    """How many frames as large as the largest of ``frames`` one call can take when ``workers``
    calls run at once within :data:`MEMORY_FRACTION` of the free memory, from one call on that
    frame alone (at least 1; a large number where memory cannot be measured)."""
    if not can_measure(potential.device):
        return len(frames)
    largest = max(frames, key=lambda frame: frame.num_atoms)
    compute_stress = bool(largest.pbc.all())
    threads = 1 if workers > 1 else call_threads(largest.num_atoms, potential.threads)  # as the calls will run

    def one_call() -> None:
        with torch_threads(threads):
            _predict_graphs(potential, [largest], [_graph(potential, largest)], compute_stress)

    per_frame = peak_bytes(one_call, potential.device)
    return max(1, int(MEMORY_FRACTION * free_bytes(potential.device) / workers / max(per_frame, 1)))


def _calls(
    potential: Potential, frames: Sequence[Frame], indices: list[int], batch_size: int
) -> Iterator[tuple[list[int], list[dict[str, torch.Tensor]]]]:
    """The frames of each model call, as their indices and graphs, in order: at most
    ``batch_size`` frames and, on CPU, at most :data:`CPU_PAIRS_PER_CALL` pairs (or one frame
    that has more)."""
    batch: list[int] = []
    graphs: list[dict[str, torch.Tensor]] = []
    pairs = 0
    for index in indices:
        graph = _graph(potential, frames[index])
        frame_pairs = graph[keys.EDGE_INDEX].shape[1]
        too_many_pairs = potential.device.type == "cpu" and pairs + frame_pairs > CPU_PAIRS_PER_CALL
        if batch and (len(batch) == batch_size or too_many_pairs):
            yield batch, graphs
            batch, graphs, pairs = [], [], 0
        batch.append(index)
        graphs.append(graph)
        pairs += frame_pairs
    if batch:
        yield batch, graphs


def _graph(potential: Potential, frame: Frame) -> dict[str, torch.Tensor]:
    """The graph of one frame, with its neighbour list at the model's cutoff."""
    edge_index, cell_shifts = neighbour_list(frame.positions, frame.cell, frame.pbc, potential.model.cutoff)
    return structure_to_graph(
        frame.atomic_numbers, frame.positions, frame.cell, frame.pbc, edge_index, cell_shifts,
        potential.dtype, potential.device,
    )  # fmt: skip


def _predict_graphs(
    potential: Potential, frames: list[Frame], graphs: list[dict[str, torch.Tensor]], compute_stress: bool
) -> list[Prediction]:
    """One model call on the graphs of a batch of frames, on the threads the caller set."""
    out = potential.energy_forces(collate(graphs), compute_stress)
    energies = out[keys.ENERGY].detach().double().cpu().numpy()  # (B,)
    forces = out[keys.FORCES].detach().double().cpu().numpy()  # (n, 3)
    stresses = out[keys.STRESS].detach().double().cpu().numpy() if compute_stress else None  # (B, 3, 3)
    ends = np.cumsum([frame.num_atoms for frame in frames])
    return [
        Prediction(float(energies[b]), forces[end - frame.num_atoms : end], None if stresses is None else stresses[b])
        for b, (frame, end) in enumerate(zip(frames, ends))
    ]
