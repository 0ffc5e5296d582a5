"""Readers for MD17 and rMD17 as laid out in the project's data folder (see its README).

rMD17 split files ``rmd17/splits/rmd17_<mol>_{train,test}_<NN>.npz`` and original-MD17
(sGDML layout) files ``md17/md17_<mol>.npz`` hold Å, kcal/mol and kcal/mol/Å; energies and
forces are converted to eV and eV/Å here, once, with :data:`eqff.data.units.KCAL_PER_MOL`.
"""

import os
import zipfile
from pathlib import Path
from typing import Final, Literal

import numpy as np

from eqff.data.frames import Frame
from eqff.data.units import KCAL_PER_MOL
from eqff.errors import DataFileError

MOLECULES: Final[tuple[str, ...]] = (
    "aspirin", "azobenzene", "benzene", "ethanol", "malonaldehyde",
    "naphthalene", "paracetamol", "salicylic", "toluene", "uracil",
)  # fmt: skip
"""The ten molecules of MD17 and rMD17, as spelled in the file names."""

DATA_ENV_VAR: Final[str] = "EQFF_DATA"
"""Environment variable naming the data folder when no root is passed."""

RMD17_KEYS: Final[tuple[str, ...]] = ("nuclear_charges", "coords", "energies", "forces")
SGDML_KEYS: Final[tuple[str, ...]] = ("z", "R", "E", "F")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$EQFF_DATA``; it must exist."""
    if root is None:
        root = os.environ.get(DATA_ENV_VAR)
        if not root:
            raise DataFileError(
                f"no data folder given: pass --data FOLDER (in Python, the root argument) "
                f"or set the {DATA_ENV_VAR} environment variable"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataFileError(f"data folder {path} does not exist")
    return path


def read_rmd17(
    molecule: str, split: int, part: Literal["train", "test"], root: str | os.PathLike | None = None
) -> list[Frame]:
    """The frames of an official rMD17 split file (rMD17 labels), in Å, eV and eV/Å.

    Reads ``<root>/rmd17/splits/rmd17_<molecule>_<part>_<split:02d>.npz`` (keys ``nuclear_charges``
    (A,), ``coords`` (n, A, 3) Å, ``energies`` (n,) kcal/mol, ``forces`` (n, A, 3) kcal/mol/Å).

    Args:
        molecule: one of :data:`MOLECULES`.
        split: the split number N of ``..._<part>_0N.npz`` (1 to 3 in the project's data folder).
        part: "train" or "test".
        root: data folder (default ``$EQFF_DATA``).
    """
    _check_molecule(molecule)
    if part not in ("train", "test"):
        raise DataFileError(f"part must be 'train' or 'test', got {part!r}")
    path = data_root(root) / "rmd17" / "splits" / f"rmd17_{molecule}_{part}_{split:02d}.npz"
    z, coords, energies, forces = _load_npz(path, RMD17_KEYS)
    return _frames_from_arrays(path, z, coords, energies * KCAL_PER_MOL, forces * KCAL_PER_MOL)


def read_md17(molecule: str, root: str | os.PathLike | None = None) -> list[Frame]:
    """The original-MD17 frames of ``<root>/md17/md17_<molecule>.npz``, in Å, eV and eV/Å.

    Args:
        molecule: one of :data:`MOLECULES`.
        root: data folder (default ``$EQFF_DATA``).
    """
    _check_molecule(molecule)
    return read_sgdml_npz(data_root(root) / "md17" / f"md17_{molecule}.npz")


def read_sgdml_npz(path: str | os.PathLike) -> list[Frame]:
    """The frames of any sGDML-layout npz, in Å, eV and eV/Å.

    Keys: ``z`` (A,) atomic numbers, ``R`` (n, A, 3) Å, ``E`` (n, 1) or (n,) kcal/mol,
    ``F`` (n, A, 3) kcal/mol/Å; other keys (``name``, ``theory``, ``md5``, ...) are ignored.
    """
    path = Path(path)
    z, coords, energies, forces = _load_npz(path, SGDML_KEYS)
    return _frames_from_arrays(path, z, coords, energies * KCAL_PER_MOL, forces * KCAL_PER_MOL)


def _check_molecule(molecule: str) -> None:
    if molecule not in MOLECULES:
        raise DataFileError(f"unknown molecule {molecule!r}; known: {', '.join(MOLECULES)}")


def _load_npz(path: Path, required: tuple[str, ...]) -> list[np.ndarray]:
    """The ``required`` arrays of an npz file, in that order; all must be numeric."""
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as content:
            missing = [key for key in required if key not in content.files]
            if missing:
                raise DataFileError(f"{path}: missing keys {missing} (keys present: {sorted(content.files)})")
            arrays = [content[key] for key in required]
    except DataFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{path}: not a readable npz file: {error}") from None
    for key, values in zip(required, arrays):
        if not np.issubdtype(values.dtype, np.number):
            raise DataFileError(f"{path}: key {key!r} has non-numeric dtype {values.dtype}")
    return arrays


def _frames_from_arrays(
    path: Path, atomic_numbers: np.ndarray, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray
) -> list[Frame]:
    """Check whole arrays at once, then split them into frames (units unchanged).

    Args:
        path: the file, for error messages.
        atomic_numbers: (A,); positions: (n, A, 3); energies: (n,) or (n, 1); forces: (n, A, 3).
    """
    _check_shapes(path, atomic_numbers, positions, energies, forces)
    energies = energies.reshape(-1)
    for name, values in (("positions", positions), ("energies", energies), ("forces", forces)):
        _check_finite(path, name, values)
    frames = []
    for k in range(len(positions)):
        try:
            frames.append(Frame(atomic_numbers, positions[k], energy=energies[k], forces=forces[k]))
        except ValueError as error:
            raise DataFileError(f"{path}: frame {k}: {error}") from None
    return frames


def _check_shapes(
    path: Path, atomic_numbers: np.ndarray, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray
) -> None:
    """Raise :class:`DataFileError` unless the shapes are (A,), (n, A, 3), (n,) or (n, 1), (n, A, 3), n, A > 0."""
    if atomic_numbers.ndim != 1 or len(atomic_numbers) == 0:
        raise DataFileError(f"{path}: mismatched shapes: atomic numbers have shape {atomic_numbers.shape}, not (A,)")
    num_atoms = len(atomic_numbers)
    if positions.ndim != 3 or positions.shape[1:] != (num_atoms, 3):
        raise DataFileError(
            f"{path}: mismatched shapes: positions have shape {positions.shape}, not (n, {num_atoms}, 3) "
            f"for {num_atoms} atomic numbers"
        )
    n = len(positions)
    if n == 0:
        raise DataFileError(f"{path}: contains no frames")
    if energies.shape not in ((n,), (n, 1)):
        raise DataFileError(f"{path}: mismatched shapes: energies have shape {energies.shape}, not ({n},) or ({n}, 1)")
    if forces.shape != positions.shape:
        raise DataFileError(
            f"{path}: mismatched shapes: forces have shape {forces.shape}, positions {positions.shape}"
        )
    invalid = (atomic_numbers < 1) | (atomic_numbers > 118) | (atomic_numbers != np.round(atomic_numbers))
    if invalid.any():
        raise DataFileError(f"{path}: invalid atomic numbers {np.unique(atomic_numbers[invalid]).tolist()}")


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    """Raise :class:`DataFileError` naming the first bad frame if ``values`` (n, ...) has NaN or inf."""
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        frames = np.flatnonzero(bad)
        raise DataFileError(
            f"{path}: {name} contain NaN or infinite values in {len(frames)} frame(s), first at frame {frames[0]}"
        )
