"""The in-memory frame: one structure with its reference labels, in eqff's internal units."""

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms


@dataclass(frozen=True)
class Frame:
    """One structure and, optionally, its reference energy and forces.

    Attributes:
        atomic_numbers: (n,) int64.
        positions: (n, 3) float64, Å.
        energy: total energy, eV, or ``None`` when unlabelled.
        forces: (n, 3) float64, eV/Å, or ``None`` when unlabelled.
        cell: (3, 3) float64, cell vectors as rows, Å; zeros for an isolated molecule.
        pbc: (3,) bool.

    Construction checks shapes and finiteness and raises ``ValueError`` naming the problem.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "atomic_numbers", np.asarray(self.atomic_numbers, dtype=np.int64))
        set_(self, "positions", np.asarray(self.positions, dtype=np.float64))
        set_(self, "cell", np.asarray(self.cell, dtype=np.float64))
        set_(self, "pbc", np.asarray(self.pbc, dtype=bool))
        n = len(self.atomic_numbers)
        if self.atomic_numbers.shape != (n,) or n == 0:
            raise ValueError(f"atomic numbers must have shape (n,) with n > 0, got {self.atomic_numbers.shape}")
        if self.positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3), got {self.positions.shape}")
        if not np.isfinite(self.positions).all():
            raise ValueError("positions contain NaN or infinite values")
        if self.cell.shape != (3, 3) or self.pbc.shape != (3,):
            raise ValueError(f"cell must be (3, 3) and pbc (3,), got {self.cell.shape} and {self.pbc.shape}")
        if self.energy is not None:
            set_(self, "energy", float(self.energy))
            if not np.isfinite(self.energy):
                raise ValueError("energy is NaN or infinite")
        if self.forces is not None:
            set_(self, "forces", np.asarray(self.forces, dtype=np.float64))
            if self.forces.shape != (n, 3):
                raise ValueError(f"forces must have shape ({n}, 3), got {self.forces.shape}")
            if not np.isfinite(self.forces).all():
                raise ValueError("forces contain NaN or infinite values")

    @property
    def num_atoms(self) -> int:
        return len(self.atomic_numbers)

    def to_atoms(self) -> Atoms:
        """An ``ase.Atoms`` with this frame's structure (labels are not attached)."""
        return Atoms(numbers=self.atomic_numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)

    @classmethod
    def from_atoms(cls, atoms: Atoms, energy: float | None = None, forces: np.ndarray | None = None) -> "Frame":
        """A frame from an ``ase.Atoms`` (Å) with optional labels already in eV and eV/Å."""
        return cls(
            atomic_numbers=atoms.numbers,
            positions=atoms.positions,
            energy=energy,
            forces=forces,
            cell=atoms.cell.array,
            pbc=atoms.pbc,
        )
