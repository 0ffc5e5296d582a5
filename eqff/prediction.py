"""Energies, forces and stresses of many structures at once: ``eqff.predict(model, structures)``
(:func:`predict`).

Structures are evaluated in batches (one graph of several frames per model call), which costs
far less per structure than one calculator call each for small molecules, where a call is
mostly per-operation overhead. The numbers are those of :class:`~eqff.integrations.ase.EqffCalculator`
to float round-off.
"""

import os
from collections.abc import Sequence
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
from eqff.threads import call_threads, torch_threads

MEMORY_FRACTION = 0.5
"""Share of the free memory one batch may take as working memory; the rest is left as margin."""


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
    batch_size: int = 32,
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
        batch_size: at most this many structures per model call; fewer where a batch this large
            would need more than half the free memory (measured by one call on the largest
            structure). Fully periodic structures are batched apart from the others, since only
            they get a stress.
        device, dtype, threads: as for :class:`~eqff.potential.Potential`.
        compile: as for :class:`~eqff.potential.Potential`, but eager by default: on a 2-core
            CPU, batches of 32 aspirin frames ran at 317 structures/s eagerly and at 25 compiled
            on 2 threads (``eqff bench --predict 1000``).

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
    if batch_size > 1 and len(frames) > 1:
        batch_size = min(batch_size, frames_per_call_that_fit(potential, frames))
    predictions: list[Prediction | None] = [None] * len(frames)
    for periodic in (False, True):
        indices = [i for i, frame in enumerate(frames) if bool(frame.pbc.all()) == periodic]
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            for index, prediction in zip(batch, _predict_batch(potential, [frames[i] for i in batch], periodic)):
                predictions[index] = prediction
    return predictions


def frames_per_call_that_fit(potential: Potential, frames: Sequence[Frame]) -> int:
    """How many frames as large as the largest of ``frames`` one call can take within
    :data:`MEMORY_FRACTION` of the free memory, from one call on that frame alone (at least 1; a
    large number where memory cannot be measured)."""
    if not can_measure(potential.device):
        return len(frames)
    largest = max(frames, key=lambda frame: frame.num_atoms)
    per_frame = peak_bytes(lambda: _predict_batch(potential, [largest], bool(largest.pbc.all())), potential.device)
    return max(1, int(MEMORY_FRACTION * free_bytes(potential.device) / max(per_frame, 1)))


def _predict_batch(potential: Potential, frames: list[Frame], compute_stress: bool) -> list[Prediction]:
    """One model call on a batch of frames."""
    graphs = []
    for frame in frames:
        edge_index, cell_shifts = neighbour_list(frame.positions, frame.cell, frame.pbc, potential.model.cutoff)
        graphs.append(structure_to_graph(
            frame.atomic_numbers, frame.positions, frame.cell, frame.pbc, edge_index, cell_shifts,
            potential.dtype, potential.device,
        ))  # fmt: skip
    graph = collate(graphs)
    with torch_threads(call_threads(len(graph[keys.ATOMIC_NUMBERS]), potential.threads)):
        out = potential.energy_forces(graph, compute_stress)
    energies = out[keys.ENERGY].detach().double().cpu().numpy()  # (B,)
    forces = out[keys.FORCES].detach().double().cpu().numpy()  # (n, 3)
    stresses = out[keys.STRESS].detach().double().cpu().numpy() if compute_stress else None  # (B, 3, 3)
    ends = np.cumsum([frame.num_atoms for frame in frames])
    return [
        Prediction(float(energies[b]), forces[end - frame.num_atoms : end], None if stresses is None else stresses[b])
        for b, (frame, end) in enumerate(zip(frames, ends))
    ]
