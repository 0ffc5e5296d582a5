"""The training domain: compositions stored with a model, and one warning per composition outside them."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from eqff import EqffCalculator
from eqff.cli import main
from eqff.domain import DomainCheck, composition, training_domain
from eqff.errors import OutOfDomainWarning
from eqff.model_file import SHIPPED_POTENTIALS_DIR, load_model

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ETHANOL = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz").is_file()
ETHANOL = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def test_composition_is_the_reduced_formula_in_hill_order():
    assert composition(ETHANOL) == "C2H6O"
    assert composition(list(reversed(ETHANOL))) == "C2H6O"
    assert composition([8, 1, 1] * 64) == "H2O"  # every water box is water
    assert composition([6] * 9 + [1] * 8 + [8] * 4) == "C9H8O4"


def test_training_domain_counts_frames_per_composition_and_atoms_per_element():
    domain = training_domain([ETHANOL, ETHANOL, [8, 1, 1]])
    assert domain == {"compositions": {"C2H6O": 2, "H2O": 1}, "elements": {"C": 4, "H": 14, "O": 3}}


def test_check_warns_once_per_composition_outside_the_domain_naming_both():
    check = DomainCheck(training_domain([ETHANOL]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(np.array(ETHANOL))
        check(np.array([8, 1, 1]))
        check(np.array([1, 8, 1]))  # the same composition again
        check(np.array([6, 1, 1, 1, 1]))
    assert [w.category for w in caught] == [OutOfDomainWarning, OutOfDomainWarning]
    assert "H2O never occurred" in str(caught[0].message) and "(C2H6O)" in str(caught[0].message)
    assert "CH4 never occurred" in str(caught[1].message)


def test_a_model_without_a_domain_is_not_checked():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DomainCheck(None)(np.array([8, 1, 1]))


@pytest.mark.parametrize("path", sorted(SHIPPED_POTENTIALS_DIR.glob("*.eqff")), ids=lambda path: path.stem)
def test_every_shipped_potential_records_its_molecules(path):
    """Each rMD17 molecule it was trained on, by reduced formula, with its number of training frames."""
    _, content = load_model(path)
    formulas = {"aspirin": "C9H8O4", "azobenzene": "C6H5N", "benzene": "CH", "ethanol": "C2H6O",
                "malonaldehyde": "C3H4O2", "naphthalene": "C5H4", "paracetamol": "C8H9NO2", "salicylic": "C7H6O3",
                "toluene": "C7H8", "uracil": "C2H2NO"}  # fmt: skip
    sources = content["metadata"]["config"]["data"]
    expected = {formulas[data["molecule"]]: data["num_train"] for data in sources}
    assert content["metadata"]["training_domain"]["compositions"] == expected


def test_calculator_warns_once_for_another_molecule_of_the_same_elements(painn_model):
    calc = EqffCalculator("painn-aspirin")
    ethanol = molecule("CH3CH2OH")
    with pytest.warns(OutOfDomainWarning, match=r"composition C2H6O never occurred .*\(C9H8O4\)"):
        calc.get_potential_energy(ethanol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ethanol.rattle(0.01, seed=0)
        calc.get_potential_energy(ethanol)


@pytest.mark.skipif(not HAVE_ETHANOL, reason="rMD17 data not found (set EQFF_DATA)")
def test_evaluate_prints_one_warning_line(capsys):
    argv = ["evaluate", "painn-aspirin", "--dataset", "rmd17", "--molecule", "ethanol", "--split", "1",
            "--part", "test", "--max-frames", "3", "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "C2H6O" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: this structure's composition C2H6O never occurred")


def test_openmm_force_warns_for_another_molecule():
    import openmm
    from openmmml import MLPotential

    from eqff.integrations.openmm import molecule_topology

    acetic_acid = molecule("CH3COOH")
    system = MLPotential("eqff", modelPath="painn-aspirin").createSystem(
        molecule_topology(acetic_acid.numbers), precision="double", device="cpu"
    )
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(acetic_acid.positions * openmm.unit.angstrom)
    with pytest.warns(OutOfDomainWarning, match=r"composition CH2O never occurred"):
        context.getState(getEnergy=True)
