"""Building eqff graphs (dicts of tensors, see :mod:`eqff.data.keys`) and batching them."""

import numpy as np
import torch
from ase import Atoms

from eqff.data import keys
from eqff.neighbours import neighbour_list


def centred_positions(positions: np.ndarray, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 3) positions in Å, less their mean (in float64), as a ``dtype`` tensor on ``device``.

    A rigid translation changes no energy, force or stress, and without it float32 would lose
    the digits of interatomic distances far from the origin (about 1e-3 Å at 10,000 Å).
    """
    positions = np.asarray(positions, dtype=np.float64)
    centred = positions - positions.mean(axis=0) if len(positions) else positions  # (n, 3)
    return torch.as_tensor(centred, dtype=dtype, device=device)


def structure_to_graph(
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    edge_index: np.ndarray,
    cell_shifts: np.ndarray,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """A one-frame graph from numpy arrays in Å; ``cell_shifts`` are kept only if any pbc is set.

    The positions are centred on their mean in float64 before they are cast to ``dtype``
    (:func:`centred_positions`).

    Args:
        atomic_numbers: (n,); positions: (n, 3); cell: (3, 3); pbc: (3,);
        edge_index: (2, E); cell_shifts: (E, 3) integer multiples of the cell vectors.
        dtype: floating dtype of positions and cell (the model's).
    """
    graph = {
        keys.ATOMIC_NUMBERS: torch.as_tensor(atomic_numbers, dtype=torch.long, device=device),
        keys.POSITIONS: centred_positions(positions, dtype, device),
        keys.CELL: torch.as_tensor(cell, dtype=dtype, device=device).reshape(1, 3, 3),
        keys.PBC: torch.as_tensor(pbc, dtype=torch.bool, device=device).reshape(1, 3),
        keys.BATCH: torch.zeros(len(atomic_numbers), dtype=torch.long, device=device),
        keys.EDGE_INDEX: torch.as_tensor(edge_index, dtype=torch.long, device=device),
    }
    if np.any(pbc):
        graph[keys.CELL_SHIFTS] = torch.as_tensor(cell_shifts, dtype=dtype, device=device)
    return graph


def atoms_to_graph(
    atoms: Atoms, cutoff: float, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The one-frame graph of ``atoms`` with all pairs closer than ``cutoff`` (Å).

    Uses :func:`eqff.neighbours.neighbour_list` and :func:`structure_to_graph`, as the
    calculators do.
    """
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    edge_index, cell_shifts = neighbour_list(atoms.positions, cell, pbc, cutoff)
    return structure_to_graph(atoms.numbers, atoms.positions, cell, pbc, edge_index, cell_shifts, dtype, device)


def collate(graphs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Join one-frame graphs into one batch graph.

    Per-atom and per-edge fields are concatenated, ``edge_index`` is offset by the atoms before
    each frame, ``batch`` numbers the frames, and per-frame fields (cell, pbc, energy, ...) are
    stacked. If any frame has ``cell_shifts``, frames without them get zero shifts.
    """
    device = graphs[0][keys.POSITIONS].device
    num_atoms = torch.tensor([len(g[keys.ATOMIC_NUMBERS]) for g in graphs], device=device)
    offsets = torch.cumsum(num_atoms, 0) - num_atoms
    batch: dict[str, torch.Tensor] = {}
    for key in graphs[0]:
        values = [g[key] for g in graphs]
        if key == keys.EDGE_INDEX:
            batch[key] = torch.cat([e + int(o) for e, o in zip(values, offsets)], dim=1)
        elif key == keys.BATCH:
            batch[key] = torch.repeat_interleave(torch.arange(len(graphs), device=device), num_atoms)
        elif key in (keys.CELL, keys.PBC, keys.STRESS):
            batch[key] = torch.cat(values)
        elif key == keys.ENERGY:
            batch[key] = torch.stack([v.reshape(()) for v in values])
        elif key != keys.CELL_SHIFTS:
            batch[key] = torch.cat(values)
    if any(keys.CELL_SHIFTS in g for g in graphs):
        dtype = graphs[0][keys.POSITIONS].dtype
        batch[keys.CELL_SHIFTS] = torch.cat(
            [
                g.get(keys.CELL_SHIFTS, torch.zeros(g[keys.EDGE_INDEX].shape[1], 3, dtype=dtype, device=device))
                for g in graphs
            ]
        )
    return batch
