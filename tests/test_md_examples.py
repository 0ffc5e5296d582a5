"""The ASE MD examples in ``md_examples/``: short runs end to end, and their analysis functions on hand-made data.

The runs use the shipped default potential for a few tens of steps; those of ``ase_nvt.py`` and
``analysis.py`` need rMD17 aspirin from ``$EQFF_DATA`` and MDAnalysis, and are skipped without them.
"""

import os
import shutil
import sys
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "md_examples"
sys.path.insert(0, str(EXAMPLES_DIR))

import ase_nve  # noqa: E402
import ase_nvt  # noqa: E402

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_RMD17 = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()
needs_rmd17 = pytest.mark.skipif(not HAVE_RMD17, reason="rMD17 aspirin not found (set EQFF_DATA)")


@pytest.fixture(scope="module")
def analysis():
    """The ``analysis.py`` example as a module; skips when MDAnalysis is missing."""
    pytest.importorskip("MDAnalysis", reason="MDAnalysis is not installed: analysis.py reads trajectories with it")
    import analysis

    return analysis


# --- analysis.py's functions on hand-made data ---------------------------------------------------


def test_histogram_overlap_is_one_for_identical_and_zero_for_disjoint_values(analysis):
    values, bins = np.linspace(0.0, 1.0, 100), np.linspace(0.0, 3.0, 31)
    assert analysis.histogram_overlap(values, values, bins) == pytest.approx(1.0)
    assert analysis.histogram_overlap(values, values + 2.0, bins) == 0.0


@needs_rmd17
def test_aspirin_torsions_from_the_bond_graph_of_an_rmd17_frame(analysis):
    from ase.data import chemical_symbols

    from eqff.data.md17 import read_rmd17
    from eqff.md.observables import bonds_of

    atoms = read_rmd17("aspirin", 1, "train", DATA_ROOT)[0].to_atoms()
    elements = [chemical_symbols[z] for z in atoms.numbers]
    torsions = analysis.aspirin_torsions(elements, bonds_of(atoms))
    patterns = {"ring–COOH": "CCCO", "COOH O–H": "OCOH", "ring–ester": "CCOC", "ester C–O": "COCC"}
    assert {name: "".join(elements[i] for i in atoms_) for name, atoms_ in torsions.items()} == patterns
    with pytest.raises(ValueError, match="hydroxyl O"):
        analysis.aspirin_torsions(elements, np.zeros((0, 2), dtype=int))


# --- the examples, end to end ----------------------------------------------------------------------


def test_ase_nve_runs_and_prints_its_summary(tmp_path, capsys):
    assert ase_nve.main(["--steps", "30", "--interval", "10", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NVE aspirin (21 atoms)" in out and "float64" in out
    assert "energy drift" in out and "meV/atom/ps" in out and "energy fluctuation" in out
    assert (tmp_path / "ase_nve.png").stat().st_size > 0
    header = (tmp_path / "ase_nve.csv").read_text().splitlines()[0].split(",")
    assert header == ["time_ps", "potential_eV", "kinetic_eV", "total_eV", "temperature_K", "angular_momentum_hbar"]
    samples = np.loadtxt(tmp_path / "ase_nve.csv", delimiter=",", skiprows=1)
    assert samples.shape == (4, 6)  # steps 0, 10, 20, 30
    assert samples[:, 3] == pytest.approx(samples[:, 1] + samples[:, 2])
    assert np.all(samples[:, 5] < 1e-6)  # PaiNN's forces exert no net torque: angular momentum stays zero


def test_examples_refuse_runs_with_fewer_than_two_frames(tmp_path):
    with pytest.raises(SystemExit):
        ase_nve.main(["--steps", "5", "--interval", "10", "--output", str(tmp_path)])


@needs_rmd17
def test_ase_nvt_then_analysis_run_and_print_their_summaries(tmp_path, capsys, analysis):
    assert ase_nvt.main(["--steps", "40", "--interval", "10", "--output", str(tmp_path), "--data", DATA_ROOT]) == 0
    out = capsys.readouterr().out
    assert "Langevin at 500 K" in out and "stability" in out and "h(r) MAE" in out
    assert "stable for the whole run" in out  # 20 fs from an rMD17 frame: no bond can break
    assert (tmp_path / "ase_nvt.png").stat().st_size > 0
    assert len(ase.io.read(tmp_path / "ase_nvt.xyz", index=":")) == 5  # steps 0, 10, 20, 30, 40

    trajectory = str(tmp_path / "ase_nvt.xyz")
    assert analysis.main(["--trajectory", trajectory, "--output", str(tmp_path), "--data", DATA_ROOT]) == 0
    out = capsys.readouterr().out
    assert "5 frames of 21 atoms" in out and "21, guessed from the first frame" in out
    for line in ("bond C-H", "dihedral ring–COOH", "dihedral ester C–O"):
        assert line in out
    assert (tmp_path / "analysis_bonds.png").stat().st_size > 0
    assert (tmp_path / "analysis_dihedrals.png").stat().st_size > 0


@needs_rmd17
def test_openmm_examples_run_and_print_their_summaries(tmp_path, capsys):
    pytest.importorskip("openmmml", reason="openmm-ml is not installed")
    import openmm_gas_phase
    import openmm_mlmm

    common = ["--steps", "20", "--interval", "10", "--output", str(tmp_path), "--data", DATA_ROOT, "--device", "cpu"]
    assert openmm_gas_phase.main(common) == 0
    assert openmm_mlmm.main([*common, "--minimise", "10"]) == 0
    out = capsys.readouterr().out
    assert out.count("summary") == 2 and "TIP3P waters (MM)" in out
    for name in ("openmm_gas_phase", "openmm_mlmm"):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0 and (tmp_path / f"{name}.dcd").stat().st_size > 0


@pytest.mark.skipif(shutil.which("i-pi") is None, reason="i-PI (the ipi package) is not installed")
def test_ipi_path_integral_md_with_two_eqff_clients_stops_by_itself(tmp_path, capsys):
    import ipi_pimd

    args = ["--steps", "4", "--beads", "2", "--clients", "2", "--interval", "2", "--output", str(tmp_path),
            "--timeout", "300"]  # fmt: skip
    assert ipi_pimd.main(args) == 0
    out = capsys.readouterr().out
    assert "2 beads, 4 steps" in out and "summary" in out and "10 force calls" in out
    step, _, conserved, temperature, potential = np.loadtxt(tmp_path / "ipi_pimd.out", ndmin=2).T
    assert step.tolist() == [0.0, 2.0, 4.0] and np.all(np.isfinite(potential)) and np.all(temperature > 0)
