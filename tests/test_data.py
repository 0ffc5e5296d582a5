"""Readers of rMD17, MD17 (sGDML layout) and extended-XYZ data: units, shapes and refusals.

Tests marked by the ``root`` fixture use the real data in ``shared/data`` (or ``$EQFF_DATA``)
and are skipped when it is absent; the refusal tests write small bad files to ``tmp_path``.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from eqff.data import MOLECULES, Frame, data_root, read_extxyz, read_md17, read_rmd17, read_sgdml_npz
from eqff.data.units import KCAL_PER_MOL, NANOMETRE
from eqff.errors import DataFileError


@pytest.fixture(scope="module")
def root() -> Path:
    """The data folder: ``$EQFF_DATA``, else ``shared/data`` next to the repository."""
    path = Path(os.environ.get("EQFF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (path / "rmd17").is_dir():
        pytest.skip(f"MD17/rMD17 data not found at {path} (set EQFF_DATA to the data folder)")
    return path


def _sorted_atoms(frame: Frame) -> np.ndarray:
    """The atom order that sorts a frame's positions (x, then y, then z), independent of file order."""
    return np.lexsort(frame.positions.T[::-1])


def _position_key(frame: Frame) -> bytes:
    """A hashable key of a frame's geometry up to atom order (positions rounded to 1e-5 Å)."""
    return np.round(frame.positions[_sorted_atoms(frame)], 5).tobytes()


def test_rmd17_split_is_converted_to_ev(root):
    frames = read_rmd17("ethanol", 1, "train", root)
    with np.load(root / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz") as raw:
        raw = dict(raw)
    assert len(frames) == 1000 and {f.num_atoms for f in frames} == {9}
    energies = np.array([f.energy for f in frames])
    np.testing.assert_array_equal(energies, raw["energies"] * KCAL_PER_MOL)
    np.testing.assert_allclose(energies / KCAL_PER_MOL, raw["energies"], rtol=1e-9)
    np.testing.assert_allclose(frames[7].forces / KCAL_PER_MOL, raw["forces"][7], rtol=1e-9)
    np.testing.assert_array_equal(frames[7].positions, raw["coords"][7])
    np.testing.assert_array_equal(frames[0].atomic_numbers, [6, 6, 8, 1, 1, 1, 1, 1, 1])
    assert -4210 < energies.mean() < -4209  # ethanol: about -97,076 kcal/mol


def test_md17_and_sgdml_files(root):
    md17 = read_md17("ethanol", root)
    assert len(md17) == 5902 and md17[0].num_atoms == 9
    assert -4216 < md17[0].energy < -4213  # original MD17 ethanol: about -97,196 kcal/mol
    ccsd = read_sgdml_npz(root / "md17" / "ccsd_t" / "ethanol_ccsd_t-train.npz")
    assert len(ccsd) == 1000 and sorted(ccsd[0].atomic_numbers.tolist()) == [1] * 6 + [6, 6, 8]
    with np.load(root / "md17" / "ccsd_t" / "ethanol_ccsd_t-train.npz") as raw:
        assert ccsd[3].energy == raw["E"][3, 0] * KCAL_PER_MOL


def test_extxyz_in_kcal_per_mol_matches_the_rmd17_frame(root):
    """The 100-frame ethanol extxyz (kcal/mol, other atom order) agrees with the split files in eV."""
    path = root / "rmd17" / "extxyz" / "rmd17_ethanol_reduced_100.xyz"
    (frame,) = read_extxyz(path, energy_unit="kcal/mol", index=0)
    assert frame.atomic_numbers.tolist() == [1] * 6 + [6, 6, 8]
    candidates = read_rmd17("ethanol", 1, "train", root) + read_rmd17("ethanol", 1, "test", root)
    matches = [c for c in candidates if _position_key(c) == _position_key(frame)]
    assert matches, "frame 0 of rmd17_ethanol_reduced_100.xyz not found in rmd17_ethanol_{train,test}_01"
    match = matches[0]
    order, match_order = _sorted_atoms(frame), _sorted_atoms(match)
    np.testing.assert_array_equal(frame.atomic_numbers[order], match.atomic_numbers[match_order])
    assert frame.energy == pytest.approx(match.energy, rel=1e-12)
    np.testing.assert_allclose(frame.forces[order], match.forces[match_order], rtol=1e-9, atol=1e-12)


def test_extxyz_in_ev_matches_the_rmd17_frame(root):
    """The mace-jax aspirin file (eV, eV/Å) read without conversion agrees with the kcal/mol split files.

    That file was written with 1 kcal/mol = 0.04336412 eV, 3.6e-7 relative from ASE's value, hence rel=1e-6.
    """
    frames = read_extxyz(root / "rmd17" / "extxyz" / "rmd17_aspirin_macejax_train.xyz")
    assert len(frames) == 1200 and frames[0].num_atoms == 21
    assert not frames[0].pbc.any() and not frames[0].cell.any()
    split = {_position_key(f): f for f in read_rmd17("aspirin", 1, "train", root)}
    shared = [(f, split[key]) for f in frames if (key := _position_key(f)) in split]
    assert len(shared) >= 10, "too few frames of the extxyz file occur in rmd17_aspirin_train_01"
    for frame, match in shared:
        np.testing.assert_array_equal(frame.atomic_numbers, match.atomic_numbers)
        assert frame.energy == pytest.approx(match.energy, rel=1e-6)
        np.testing.assert_allclose(frame.forces, match.forces, rtol=1e-6, atol=1e-6)


def test_extxyz_keeps_cell_and_converts_lengths(tmp_path):
    """Positions and cell scale with the length unit, forces with energy/length; labels in info/arrays work."""
    atoms = Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.074]], cell=[0.5, 0.6, 0.7], pbc=[True, True, False])
    atoms.info["REF_energy"] = -2.0
    atoms.arrays["REF_forces"] = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    write(tmp_path / "h2.xyz", atoms, format="extxyz")
    frame = read_extxyz(tmp_path / "h2.xyz", "REF_energy", "REF_forces", energy_unit="kcal/mol", length_unit="nm")[0]
    np.testing.assert_allclose(frame.positions, atoms.positions * NANOMETRE)
    np.testing.assert_allclose(frame.cell, atoms.cell.array * NANOMETRE)
    assert frame.pbc.tolist() == [True, True, False]
    assert frame.energy == pytest.approx(-2.0 * KCAL_PER_MOL)
    np.testing.assert_allclose(frame.forces[0], [0.0, 0.0, KCAL_PER_MOL / NANOMETRE])


def test_data_root_from_environment(root, monkeypatch):
    monkeypatch.setenv("EQFF_DATA", str(root))
    assert data_root() == root and len(read_rmd17("benzene", 2, "test")) == 1000
    monkeypatch.delenv("EQFF_DATA")
    with pytest.raises(DataFileError, match="EQFF_DATA"):
        data_root()


def test_unknown_molecule_missing_file_and_missing_folder(root, tmp_path):
    with pytest.raises(DataFileError, match="unknown molecule 'caffeine'; known: aspirin"):
        read_rmd17("caffeine", 1, "train", root)
    with pytest.raises(DataFileError, match="unknown molecule"):
        read_md17("caffeine", root)
    with pytest.raises(DataFileError, match=r"rmd17_aspirin_train_09\.npz: file not found"):
        read_rmd17(MOLECULES[0], 9, "train", root)
    with pytest.raises(DataFileError, match="does not exist"):
        data_root(tmp_path / "nowhere")


def _write_rmd17_like(folder: Path, **changes: np.ndarray | None) -> Path:
    """A 3-frame, 2-atom rMD17-layout split file for ethanol, with some arrays replaced (``None``: left out)."""
    arrays = {
        "nuclear_charges": np.array([1, 8], dtype=np.uint8),
        "coords": np.random.default_rng(0).normal(size=(3, 2, 3)),
        "energies": np.zeros(3),
        "forces": np.zeros((3, 2, 3)),
    }
    arrays.update(changes)
    path = folder / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def _nan_in_frame_1() -> np.ndarray:
    coords = np.random.default_rng(0).normal(size=(3, 2, 3))
    coords[1, 0, 2] = np.nan
    return coords


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"forces": None}, r"missing keys \['forces'\]"),
        ({"coords": _nan_in_frame_1()}, r"positions contain NaN .* first at frame 1"),
        ({"energies": np.array([0.0, np.inf, 0.0])}, r"energies contain NaN .* first at frame 1"),
        ({"forces": np.zeros((3, 3, 3))}, "mismatched shapes: forces"),
        ({"energies": np.zeros(4)}, "mismatched shapes: energies"),
        ({"nuclear_charges": np.array([1, 8, 6])}, "mismatched shapes: positions"),
        ({"nuclear_charges": np.array([1, 0])}, "invalid atomic numbers"),
    ],
    ids=["missing-key", "nan-coords", "inf-energy", "forces-shape", "energies-length", "charges-length", "z=0"],
)
def test_bad_npz_files_are_refused_naming_file_and_problem(tmp_path, changes, problem):
    path = _write_rmd17_like(tmp_path, **changes)
    with pytest.raises(DataFileError, match=problem) as error:
        read_rmd17("ethanol", 1, "train", tmp_path)
    assert str(path) in str(error.value)


def test_bad_sgdml_file_is_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, R=np.zeros((2, 3, 3)), z=np.array([1, 1, 8]), E=np.zeros((3, 1)), F=np.zeros((2, 3, 3)))
    with pytest.raises(DataFileError, match="bad.npz: mismatched shapes: energies"):
        read_sgdml_npz(path)
    path.write_bytes(b"not an npz")
    with pytest.raises(DataFileError, match="bad.npz: not a readable npz"):
        read_sgdml_npz(path)


def test_extxyz_without_forces_is_refused(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.info["energy"] = -1.0
    path = tmp_path / "no_forces.xyz"
    write(path, atoms, format="extxyz")
    with pytest.raises(DataFileError, match=r"no_forces.xyz: frame 0 is missing key 'forces'; keys present: \[") as e:
        read_extxyz(path)
    assert "'energy'" in str(e.value)


def test_extxyz_with_pbc_and_no_cell_is_refused(tmp_path):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[3.0, 0.0, 3.0], pbc=[False, True, False])
    atoms.info["energy"] = -1.0
    atoms.arrays["forces"] = np.zeros((2, 3))
    path = tmp_path / "pbc.xyz"
    write(path, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="pbc.xyz: frame 0 .* zero or singular cell"):
        read_extxyz(path)
