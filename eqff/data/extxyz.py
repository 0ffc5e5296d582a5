"""Reader for the user's own extended-XYZ files with energies and forces (via ``ase.io``)."""

import os
from pathlib import Path

import numpy as np
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
    index: str = ":",
) -> list[Frame]:
    """Frames of an extended-XYZ file, converted to Å, eV and eV/Å.

    Args:
        path: the file.
        energy_key: per-frame energy in ``atoms.info`` (or the parsed calculator results).
        forces_key: per-atom (n, 3) forces in ``atoms.arrays`` (or the calculator results).
        energy_unit, length_unit: units of the file (see :mod:`eqff.data.units`); forces are
            in energy_unit / length_unit.
        index: ASE index string of the frames to read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    to_ev, to_angstrom = energy_unit_factor(energy_unit), length_unit_factor(length_unit)
    try:
        structures = read(path, index=index, format="extxyz")
    except Exception as error:  # ase raises many types for malformed files
        raise DataFileError(f"{path}: not a readable extended-XYZ file: {error}") from None
    frames = []
    for k, atoms in enumerate(structures):
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = atoms.info.get(energy_key, results.get(energy_key))
        forces = atoms.arrays.get(forces_key, results.get(forces_key))
        for key, value in ((energy_key, energy), (forces_key, forces)):
            if value is None:
                present = sorted(set(atoms.info) | set(atoms.arrays) | set(results))
                raise DataFileError(f"{path}: frame {k} has no {key!r}; keys present: {present}")
        if atoms.pbc.any() and abs(np.linalg.det(atoms.cell.array)) < 1e-12:
            raise DataFileError(f"{path}: frame {k} has pbc={atoms.pbc.tolist()} but a zero or singular cell")
        try:
            frames.append(
                Frame(
                    atomic_numbers=atoms.numbers,
                    positions=atoms.positions * to_angstrom,
                    energy=float(energy) * to_ev,
                    forces=np.asarray(forces) * (to_ev / to_angstrom),
                    cell=atoms.cell.array * to_angstrom,
                    pbc=atoms.pbc,
                )
            )
        except ValueError as error:
            raise DataFileError(f"{path}: frame {k}: {error}") from None
    return frames
