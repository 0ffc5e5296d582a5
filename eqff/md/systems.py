"""Structures built on the fly for benchmarks and examples."""

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from scipy.spatial.transform import Rotation

from eqff.data.md17 import MOLECULES, read_rmd17
from eqff.errors import DataFileError

WATER_MOLAR_MASS = 18.015  # g/mol

WATER_BOXES = {"water-192": 64, "water-1029": 343, "water-10125": 3375}
"""Benchmark water boxes: name → number of molecules (1.0 g/cm³)."""


def water_box(num_molecules: int, density: float = 1.0, seed: int = 0) -> Atoms:
    """A periodic cube of randomly oriented water molecules on a cubic lattice.

    Args:
        num_molecules: number of H2O molecules; the lattice is the smallest cube that holds them.
        density: g/cm³; sets the cube edge.
        seed: for the molecular orientations.

    Returns:
        ``Atoms`` with 3 × num_molecules atoms, pbc and a cubic cell, positions in Å.
    """
    volume = num_molecules * WATER_MOLAR_MASS / units.mol / density * 1e24  # Å³ (1 cm³ = 1e24 Å³)
    edge = volume ** (1 / 3)
    per_side = int(np.ceil(num_molecules ** (1 / 3)))
    spacing = edge / per_side
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:num_molecules]
    centres = (grid + 0.5) * spacing  # (M, 3)
    water = molecule("H2O")
    local = water.positions - water.get_center_of_mass()  # (3, 3)
    rotations = Rotation.random(num_molecules, random_state=seed).as_matrix()  # (M, 3, 3)
    positions = centres[:, None, :] + np.einsum("mij,aj->mai", rotations, local)  # (M, 3, 3)
    numbers = np.tile(water.numbers, num_molecules)
    return Atoms(numbers=numbers, positions=positions.reshape(-1, 3), cell=np.eye(3) * edge, pbc=True)


def benchmark_system(name: str, data_root: str | None) -> Atoms:
    """The structure called ``name``: an rMD17 molecule (its first train_01 frame, read from the
    data folder) or a water box of :data:`WATER_BOXES` (built, no data needed)."""
    if name in WATER_BOXES:
        return water_box(WATER_BOXES[name])
    if name in MOLECULES:
        return read_rmd17(name, 1, "train", data_root)[0].to_atoms()
    raise DataFileError(
        f"unknown system {name!r}; known: the rMD17 molecules ({', '.join(MOLECULES)}), {', '.join(WATER_BOXES)}"
    )
