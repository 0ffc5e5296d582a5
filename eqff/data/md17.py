"""Readers for MD17 and rMD17 as laid out in the project's data folder (see its README).

rMD17 split files ``rmd17/splits/rmd17_<mol>_{train,test}_<NN>.npz`` and original-MD17
(sGDML layout) files ``md17/md17_<mol>.npz`` hold kcal/mol and kcal/mol/Å; they are converted
to eV and eV/Å here, once.
"""

import os
from pathlib import Path
from typing import Literal

import numpy as np

from eqff.data.frames import Frame
from eqff.data.units import KCAL_PER_MOL
from eqff.errors import DataFileError

MOLECULES = (
    "aspirin", "azobenzene", "benzene", "ethanol", "malonaldehyde",
    "naphthalene", "paracetamol", "salicylic", "toluene", "uracil",
)  # fmt: skip
DATA_ENV_VAR = "EQFF_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$EQFF_DATA``."""
    if root is None:
        root = os.environ.get(DATA_ENV_VAR)
        if not root:
            raise DataFileError(f"no data folder given: pass a data root option or set {DATA_ENV_VAR}")
    path = Path(root)
    if not path.is_dir():
        raise DataFileError(f"data folder {path} does not exist")
    return path


def _check_molecule(molecule: str) -> None:
    if molecule not in MOLECULES:
        raise DataFileError(f"unknown molecule {molecule!r}; known: {', '.join(MOLECULES)}")


def _load_npz(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with np.load(path) as content:
            missing = [key for key in required if key not in content]
            if missing:
                raise DataFileError(f"{path}: missing keys {missing} (has {sorted(content.files)})")
            return {key: content[key] for key in required}
    except (OSError, ValueError) as error:
        raise DataFileError(f"{path}: not a readable npz file: {error}") from None


def frames_from_arrays(
    path: Path, atomic_numbers: np.ndarray, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray
) -> list[Frame]:
    """Check shapes and finiteness of whole arrays, then split them into frames (units unchanged).

    Args:
        atomic_numbers: (A,); positions: (n, A, 3); energies: (n,) or (n, 1); forces: (n, A, 3).
    """
    energies = energies.reshape(len(energies), -1)
    n, num_atoms = len(positions), len(atomic_numbers)
    problems = {
        f"atomic numbers have shape {atomic_numbers.shape}, not (A,)": atomic_numbers.ndim != 1,
        f"positions have shape {positions.shape}, not ({n}, {num_atoms}, 3)": positions.shape != (n, num_atoms, 3),
        f"forces have shape {forces.shape}, not ({n}, {num_atoms}, 3)": forces.shape != (n, num_atoms, 3),
        f"energies have shape {energies.shape}, not ({n},) or ({n}, 1)": energies.shape != (n, 1),
    }
    for problem, present in problems.items():
        if present:
            raise DataFileError(f"{path}: mismatched shapes: {problem}")
    for name, values in (("positions", positions), ("energies", energies), ("forces", forces)):
        bad = ~np.isfinite(values).reshape(n, -1).all(axis=1)
        if bad.any():
            raise DataFileError(f"{path}: {name} contain NaN or infinite values (frame {int(np.argmax(bad))})")
    return [
        Frame(atomic_numbers=atomic_numbers, positions=positions[k], energy=energies[k, 0], forces=forces[k])
        for k in range(n)
    ]


def read_rmd17(molecule: str, split: int, part: Literal["train", "test"], root: str | os.PathLike | None = None) -> list[Frame]:
    """The 1,000 frames of an official rMD17 split file, in eV and eV/Å (rMD17 labels).

    Args:
        molecule: one of :data:`MOLECULES`.
        split: the split number N of ``..._<part>_0N.npz``.
        part: "train" or "test".
        root: data folder (default ``$EQFF_DATA``).
    """
    _check_molecule(molecule)
    if part not in ("train", "test"):
        raise DataFileError(f"part must be 'train' or 'test', got {part!r}")
    path = data_root(root) / "rmd17" / "splits" / f"rmd17_{molecule}_{part}_{split:02d}.npz"
    arrays = _load_npz(path, ("nuclear_charges", "coords", "energies", "forces"))
    return frames_from_arrays(
        path,
        arrays["nuclear_charges"],
        arrays["coords"],
        arrays["energies"] * KCAL_PER_MOL,
        arrays["forces"] * KCAL_PER_MOL,
    )


def read_sgdml_npz(path: str | os.PathLike) -> list[Frame]:
    """Frames of an sGDML-layout npz (keys R Å, z, E kcal/mol, F kcal/mol/Å), in eV and eV/Å."""
    path = Path(path)
    arrays = _load_npz(path, ("R", "z", "E", "F"))
    return frames_from_arrays(path, arrays["z"], arrays["R"], arrays["E"] * KCAL_PER_MOL, arrays["F"] * KCAL_PER_MOL)


def read_md17(molecule: str, root: str | os.PathLike | None = None) -> list[Frame]:
    """The original-MD17 frames of ``md17/md17_<molecule>.npz``, in eV and eV/Å."""
    _check_molecule(molecule)
    return read_sgdml_npz(data_root(root) / "md17" / f"md17_{molecule}.npz")
