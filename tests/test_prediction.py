"""``eqff.predict``: many structures in batches, the same numbers as one calculator call each."""

import copy

import numpy as np
import pytest
from ase.build import molecule as ase_molecule

import eqff
from eqff import EqffCalculator
from eqff.data.frames import Frame
from eqff.errors import UnknownElementError


def structures(molecule, periodic_atoms) -> list:
    """Molecules of different sizes and a periodic cell, interleaved, one of them as a Frame."""
    water = ase_molecule("H2O")
    return [molecule, periodic_atoms, water, Frame.from_atoms(ase_molecule("CH3OH")), periodic_atoms.copy(), water]


def test_predict_gives_the_calculators_numbers_in_order(painn_model, molecule, periodic_atoms):
    given = structures(molecule, periodic_atoms)
    predictions = eqff.predict(copy.deepcopy(painn_model), given, batch_size=2, dtype="float64")
    calculator = EqffCalculator(copy.deepcopy(painn_model), dtype="float64")
    assert len(predictions) == len(given)
    for structure, prediction in zip(given, predictions, strict=True):
        atoms = structure.to_atoms() if isinstance(structure, Frame) else structure.copy()
        atoms.calc = calculator
        assert prediction.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(prediction.forces, atoms.get_forces(), rtol=0, atol=1e-10)
        if atoms.pbc.all():
            np.testing.assert_allclose(prediction.stress, calculator.potential(
                atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, compute_stress=True)["stress"],
                rtol=0, atol=1e-10)  # fmt: skip
        else:
            assert prediction.stress is None


def test_predict_refuses_an_unknown_element_before_evaluating_anything(painn_model, molecule):
    salt = ase_molecule("NaCl")
    with pytest.raises(UnknownElementError, match=r"Na \(11\), Cl \(17\)"):
        eqff.predict(copy.deepcopy(painn_model), [molecule, salt])


def test_predict_needs_a_positive_batch_size(painn_model, molecule):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        eqff.predict(copy.deepcopy(painn_model), [molecule], batch_size=0)
