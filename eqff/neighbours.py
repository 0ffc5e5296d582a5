"""Neighbour lists: pair indices and cell shifts for isolated molecules and periodic cells.

The search is done by vesin (which handles zero cells, partial periodicity and cells smaller
than the cutoff, where an atom sees its own images). Only integer data leave this module:
edge vectors are recomputed in torch from positions inside the model, so forces flow by
autograd. Convention: for a pair (i, j) with shift S, the edge vector is
``positions[j] - positions[i] + S @ cell``.
"""

from dataclasses import dataclass

import numpy as np
from vesin import NeighborList

from eqff.errors import EqffInputError


def check_structure(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
    """Raise :class:`EqffInputError` for non-finite positions or a periodic direction without a cell.

    Args:
        positions: (n, 3), Å.
        cell: (3, 3), cell vectors as rows, Å.
        pbc: (3,) bool.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise EqffInputError(f"positions must have shape (n_atoms, 3), got {positions.shape}")
    if not np.isfinite(positions).all():
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise EqffInputError(f"positions contain NaN or infinite values (atoms {bad[:10].tolist()})")
    if cell.shape != (3, 3) or pbc.shape != (3,):
        raise EqffInputError(f"cell must have shape (3, 3) and pbc (3,), got {cell.shape} and {pbc.shape}")
    if pbc.any():
        if not np.isfinite(cell).all():
            raise EqffInputError("the cell contains NaN or infinite values")
        lengths = np.linalg.norm(cell, axis=1)
        if (lengths[pbc] == 0).any():
            raise EqffInputError(f"pbc={pbc.tolist()} but the cell has a zero vector along a periodic direction")
        if abs(np.linalg.det(cell)) < 1e-9 * lengths.max() ** 3:
            raise EqffInputError(
                "pbc is set but the cell is singular; give every direction a non-zero, independent cell vector"
            )


def neighbour_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i ≠ j or different images, closer than ``cutoff``.

    Args:
        positions: (n, 3), Å.
        cell: (3, 3), Å; ignored along non-periodic directions.
        pbc: (3,) bool.
        cutoff: Å.

    Returns:
        edge_index: (2, E) int64, rows (i, j).
        cell_shifts: (E, 3) int64, image of j as multiples of the cell vectors.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    check_structure(positions, cell, pbc)
    box = cell if pbc.any() else np.zeros((3, 3))
    search = NeighborList(cutoff=cutoff, full_list=True)
    i, j, shifts = search.compute(positions, box, pbc.tolist(), "ijS")
    edge_index = np.stack([i, j]).astype(np.int64)
    return edge_index, shifts.astype(np.int64)


def edge_lengths(
    positions: np.ndarray, cell: np.ndarray, edge_index: np.ndarray, cell_shifts: np.ndarray
) -> np.ndarray:
    """(E,) distances in Å of the pairs in ``edge_index`` (numpy; no gradients)."""
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + cell_shifts @ cell
    return np.sqrt(np.einsum("ed,ed->e", vectors, vectors))


@dataclass
class _Build:
    """What the cached list was built from, to decide when it is stale."""

    positions: np.ndarray
    atomic_numbers: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    edge_index: np.ndarray
    cell_shifts: np.ndarray


class NeighbourListCache:
    """A Verlet neighbour list: built with ``cutoff + skin``, reused until an atom moved skin/2.

    The list is rebuilt when any atom moved more than ``skin / 2`` since the last build, or when
    the atomic numbers, cell or pbc changed. Until then every call returns the same arrays: all
    pairs within ``cutoff`` at the current positions, and those that were within ``cutoff + skin``
    at the last build. The extra pairs change nothing (each model's envelope is zero beyond its
    cutoff; :func:`eqff.nn.forces.graph_for_model` drops them on a CPU and keeps them on a GPU),
    and what a model derives from the list alone (GemNet-T's triplets) is rebuilt only with it.

    Args:
        cutoff: Å.
        skin: Å; ``0`` rebuilds at every call.
    """

    def __init__(self, cutoff: float, skin: float) -> None:
        if cutoff <= 0 or skin < 0:
            raise ValueError(f"need cutoff > 0 and skin >= 0, got cutoff={cutoff}, skin={skin}")
        self.cutoff = cutoff
        self.skin = skin
        self.num_builds = 0
        self._build: _Build | None = None

    def _is_stale(self, positions: np.ndarray, atomic_numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> bool:
        build = self._build
        if build is None or self.skin == 0:
            return True
        if not (
            np.array_equal(build.atomic_numbers, atomic_numbers)
            and np.array_equal(build.cell, cell)
            and np.array_equal(build.pbc, pbc)
        ):
            return True
        displacement = positions - build.positions
        return bool(np.einsum("ad,ad->a", displacement, displacement).max() > (self.skin / 2) ** 2)

    def __call__(
        self, positions: np.ndarray, atomic_numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The Verlet list at ``positions``; same arguments and returns as :func:`neighbour_list`,
        with the pairs of the last build (a superset of those within ``cutoff``)."""
        if self._is_stale(positions, atomic_numbers, cell, pbc):
            edge_index, cell_shifts = neighbour_list(positions, cell, pbc, self.cutoff + self.skin)
            self._build = _Build(positions.copy(), atomic_numbers.copy(), cell.copy(), pbc.copy(), edge_index, cell_shifts)
            self.num_builds += 1
        else:
            check_structure(positions, cell, pbc)
        return self._build.edge_index, self._build.cell_shifts
