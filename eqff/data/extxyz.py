"""Reader for extended-XYZ files with energies and forces (via ``ase.io``), into eqff's units."""

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from eqff.data.frames import Frame
from eqff.data.units import energy_unit_factor, length_unit_factor
from eqff.errors import DataFileError


def read_extxyz(
    path: str | os.PathLike,
    energy_key: str = "energy",
    forces_key: str = "forces",
    energy_unit: str = "eV",
    length_unit: str = "Å",
    index: str | int = ":",
) -> list[Frame]:
    """Frames of an extended-XYZ file, converted to Å, eV and eV/Å; cell and pbc are kept.

    Args:
        path: the file.
        energy_key: the per-frame total energy, in ``atoms.info`` or, where ASE parsed it into a
            ``SinglePointCalculator`` (keys named ``energy``), in its results.
        forces_key: the per-atom (n, 3) forces, in ``atoms.arrays`` or the calculator results.
        energy_unit: unit of the energies (a key of :data:`eqff.data.units.ENERGY_UNITS`).
        length_unit: unit of positions and cell (a key of :data:`eqff.data.units.LENGTH_UNITS`);
            forces are taken to be in energy_unit / length_unit.
        index: ASE index of the frames to read (``":"``, ``":5"``, ``"-1"``, ``3``, ...).
    """
    path = Path(path)
    try:
        to_ev, to_angstrom = energy_unit_factor(energy_unit), length_unit_factor(length_unit)
    except ValueError as error:
        raise DataFileError(f"{path}: {error}") from None
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        structures = read(path, index=index, format="extxyz")
    except Exception as error:  # ase raises many exception types for malformed files
        raise DataFileError(f"{path}: not a readable extended-XYZ file: {error}") from None
    if isinstance(structures, Atoms):
        structures = [structures]
    return [
        _frame_from_atoms(path, k, atoms, energy_key, forces_key, to_ev, to_angstrom)
        for k, atoms in enumerate(structures)
    ]


def _frame_from_atoms(
    path: Path, k: int, atoms: Atoms, energy_key: str, forces_key: str, to_ev: float, to_angstrom: float
) -> Frame:
    """Frame ``k`` of ``path``: positions and cell times ``to_angstrom``, energy times ``to_ev``, forces
    times ``to_ev / to_angstrom``."""
    results = atoms.calc.results if atoms.calc is not None else {}
    labels = {}
    for key, own in ((energy_key, atoms.info), (forces_key, atoms.arrays)):
        labels[key] = own.get(key, results.get(key))
        if labels[key] is None:
            present = sorted(set(atoms.info) | set(atoms.arrays) | set(results))
            raise DataFileError(f"{path}: frame {k} is missing key {key!r}; keys present: {present}")
    _check_cell(path, k, atoms)
    try:
        return Frame(
            atomic_numbers=atoms.numbers,
            positions=atoms.positions * to_angstrom,
            energy=float(labels[energy_key]) * to_ev,
            forces=np.asarray(labels[forces_key], dtype=np.float64) * (to_ev / to_angstrom),
            cell=atoms.cell.array * to_angstrom,
            pbc=atoms.pbc,
        )
    except (TypeError, ValueError) as error:
        raise DataFileError(f"{path}: frame {k}: {error}") from None


def _check_cell(path: Path, k: int, atoms: Atoms) -> None:
    """Raise :class:`DataFileError` unless the cell vectors of the periodic directions are independent."""
    periodic = atoms.cell.array[atoms.pbc]
    if len(periodic) and np.linalg.matrix_rank(periodic) < len(periodic):
        raise DataFileError(
            f"{path}: frame {k} has pbc={atoms.pbc.tolist()} but a zero or singular cell along the periodic "
            f"directions: {atoms.cell.array.tolist()}"
        )
