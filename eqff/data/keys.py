"""Field names of eqff's data contract: a plain ``dict[str, Tensor]`` called a *graph*.

One graph may hold several frames (a batch). ``n`` is the total number of atoms,
``E`` the number of directed edges and ``B`` the number of frames. Units are eqff's
internal ones (ASE's): Å, eV, eV/Å, eV/Å³.
"""

from typing import Final

ATOMIC_NUMBERS: Final[str] = "atomic_numbers"
"""(n,) int64: atomic number of each atom."""

POSITIONS: Final[str] = "positions"
"""(n, 3) float: Cartesian positions, Å."""

CELL: Final[str] = "cell"
"""(B, 3, 3) float: cell vectors as rows, Å (zeros for an isolated molecule)."""

PBC: Final[str] = "pbc"
"""(B, 3) bool: periodic along each cell vector."""

BATCH: Final[str] = "batch"
"""(n,) int64: index of the frame each atom belongs to."""

EDGE_INDEX: Final[str] = "edge_index"
"""(2, E) int64: ``edge_index[0]`` is the centre atom i, ``edge_index[1]`` the neighbour j."""

CELL_SHIFTS: Final[str] = "cell_shifts"
"""(E, 3) float: integer multiples of the cell vectors, so that the edge vector is
``positions[j] - positions[i] + cell_shifts @ cell``."""

ENERGY: Final[str] = "energy"
"""(B,) float: total potential energy of each frame, eV."""

ATOMIC_ENERGIES: Final[str] = "atomic_energies"
"""(n,) float: per-atom contributions to the energy, eV."""

FORCES: Final[str] = "forces"
"""(n, 3) float: forces, eV/Å."""

STRESS: Final[str] = "stress"
"""(B, 3, 3) float: stress, eV/Å³ (ASE's sign convention: (1/V) dE/dstrain)."""
