"""Readers of rMD17, MD17 (sGDML layout) and extended-XYZ data: units, shapes and refusals."""

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from eqff.data import MOLECULES, data_root, read_extxyz, read_md17, read_rmd17, read_sgdml_npz
from eqff.data.units import KCAL_PER_MOL
from eqff.errors import DataFileError


@pytest.fixture(scope="module")
def root() -> Path:
    path = Path(os.environ.get("EQFF_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (path / "rmd17").is_dir():
        pytest.skip(f"MD17/rMD17 data not found at {path} (set EQFF_DATA)")
    return path


def test_rmd17_split_is_converted_to_ev(root):
    frames = read_rmd17("ethanol", 1, "train", root)
    raw = np.load(root / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz")
    assert len(frames) == 1000 and frames[0].num_atoms == 9
    energies = np.array([f.energy for f in frames])
    np.testing.assert_allclose(energies / KCAL_PER_MOL, raw["energies"], rtol=1e-12)
    np.testing.assert_allclose(frames[7].forces / KCAL_PER_MOL, raw["forces"][7], rtol=1e-12)
    np.testing.assert_array_equal(frames[7].positions, raw["coords"][7])


def test_md17_and_sgdml_files(root):
    assert len(read_md17("uracil", root)) == 5902
    ccsd = read_sgdml_npz(root / "md17" / "ccsd_t" / "ethanol_ccsd_t-train.npz")
    assert len(ccsd) == 1000 and sorted(ccsd[0].atomic_numbers.tolist()) == [1] * 6 + [6, 6, 8]


def test_extxyz_in_kcal_per_mol_matches_the_rmd17_frame(root):
    """The 100-frame ethanol extxyz (kcal/mol, other atom order) agrees with the split files in eV."""
    frame = read_extxyz(root / "rmd17" / "extxyz" / "rmd17_ethanol_reduced_100.xyz", energy_unit="kcal/mol")[0]
    candidates = read_rmd17("ethanol", 1, "train", root) + read_rmd17("ethanol", 1, "test", root)
    order = np.lexsort(frame.positions.T)
    match = next(c for c in candidates if np.allclose(c.positions[np.lexsort(c.positions.T)], frame.positions[order]))
    assert frame.energy == pytest.approx(match.energy, rel=1e-10)
    np.testing.assert_allclose(
        frame.forces[order], match.forces[np.lexsort(match.positions.T)], rtol=1e-6, atol=1e-9
    )


def test_extxyz_in_ev(root):
    frames = read_extxyz(root / "rmd17" / "extxyz" / "rmd17_aspirin_macejax_train.xyz", index=":5")
    assert len(frames) == 5 and -17700 < frames[0].energy < -17500  # aspirin, eV


def test_data_root_from_environment(root, monkeypatch):
    monkeypatch.setenv("EQFF_DATA", str(root))
    assert data_root() == root and len(read_rmd17("benzene", 2, "test")) == 1000
    monkeypatch.delenv("EQFF_DATA")
    with pytest.raises(DataFileError, match="EQFF_DATA"):
        data_root()


def test_unknown_molecule_and_missing_file(root, tmp_path):
    with pytest.raises(DataFileError, match="known: aspirin"):
        read_rmd17("caffeine", 1, "train", root)
    with pytest.raises(DataFileError, match="not found"):
        read_rmd17(MOLECULES[0], 9, "train", root)
    with pytest.raises(DataFileError, match="does not exist"):
        data_root(tmp_path / "nowhere")


def _write_rmd17_like(folder: Path, **changes) -> Path:
    """A 3-frame, 2-atom rMD17-layout split file for ethanol with some arrays changed."""
    arrays = {
        "nuclear_charges": np.array([1, 8]),
        "coords": np.random.default_rng(0).normal(size=(3, 2, 3)),
        "energies": np.zeros(3),
        "forces": np.zeros((3, 2, 3)),
    }
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = folder / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"forces": None}, "missing keys"),
        ({"coords": np.full((3, 2, 3), np.nan)}, "NaN"),
        ({"forces": np.zeros((3, 3, 3))}, "mismatched shapes"),
        ({"energies": np.zeros(4)}, "mismatched shapes"),
        ({"energies": np.array([0.0, np.inf, 0.0])}, "energies contain NaN or infinite values \\(frame 1\\)"),
    ],
)
def test_bad_npz_files_are_refused_naming_file_and_problem(tmp_path, changes, problem):
    path = _write_rmd17_like(tmp_path, **changes)
    with pytest.raises(DataFileError, match=problem) as error:
        read_rmd17("ethanol", 1, "train", tmp_path)
    assert str(path) in str(error.value)


def test_extxyz_without_forces_is_refused(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.info["energy"] = -1.0
    path = tmp_path / "no_forces.xyz"
    write(path, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="no_forces.xyz: frame 0 has no 'forces'"):
        read_extxyz(path)


def test_extxyz_with_pbc_and_no_cell_is_refused(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], pbc=True)
    atoms.info["energy"] = -1.0
    atoms.arrays["forces"] = np.zeros((2, 3))
    path = tmp_path / "pbc.xyz"
    write(path, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="zero or singular cell"):
        read_extxyz(path)
