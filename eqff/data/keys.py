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

# A committee (eqff.models.committee) of K members of one architecture gives, besides the
# members' mean energy, forces and atomic energies under the keys above, each member's
# predictions and their spread.

MEMBER_ENERGIES: Final[str] = "member_energies"
"""(K, B) float: each committee member's energy of each frame, eV."""

MEMBER_FORCES: Final[str] = "member_forces"
"""(K, n, 3) float: each committee member's forces, eV/Å."""

ENERGY_UNCERTAINTY: Final[str] = "energy_uncertainty"
"""(B,) float: the standard deviation of the members' energies of each frame (over the K
members, not divided by K − 1), eV."""

FORCES_UNCERTAINTY: Final[str] = "forces_uncertainty"
"""(n,) float: per atom, the root mean square over the members of the length of the member's
force minus the mean force, sqrt(mean_k ‖F_k − F̄‖²), eV/Å."""

# Indices a model derives from the edge list alone (GemNet-T's triplets, see
# eqff.nn.triplets.triplet_indices). A graph carries them only where a model's ``prepare_graph``
# added them, so that a compiled forward gets them as inputs (eqff.nn.forces.compiled_energy_forces).

TRIPLET_INPUT_EDGES: Final[str] = "triplet_input_edges"
"""(T,) int64: the input edge k → j of each triplet k → j → i."""

TRIPLET_OUTPUT_EDGES: Final[str] = "triplet_output_edges"
"""(T,) int64: the output edge j → i of each triplet, ascending."""

TRIPLET_SLOTS: Final[str] = "triplet_slots"
"""(T,) int64: the position of each triplet among those of its output edge."""

TRIPLET_WIDTH: Final[str] = "triplet_width"
"""(K,) int64, values unused: its length K is the largest number of triplets of one output edge
(a length rather than a number, so that a compiled forward sees a size, not data)."""

REVERSE_EDGES: Final[str] = "reverse_edges"
"""(E,) int64: the index of the reverse of each edge."""
