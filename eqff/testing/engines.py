"""Checks of a model inside the engines, as a pytest mixin: :class:`EngineTests`.

Where :class:`~eqff.testing.physics.ModelTests` checks the model's physics on graphs, these check
what a user runs: an atom without neighbours, the ASE calculator against numerical derivatives
of its own energy, and openmm-ml's ``eqff`` potential against the model (skipped where OpenMM or
openmm-ml is not installed).
"""

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces

from eqff.data import keys
from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import load_model, save_model
from eqff.testing.physics import evaluate


class EngineTests:
    """Subclass it beside :class:`~eqff.testing.physics.ModelTests`, with the same ``model`` and
    ``molecule`` fixtures (a small model in float32, an ``ase.Atoms`` molecule)."""

    def test_isolated_atom_is_finite(self, model):
        """An atom without edges: its energy is finite and its force zero."""
        result = evaluate(model, Atoms("O", positions=[[0.0, 0.0, 0.0]]))
        assert bool(torch.isfinite(result[keys.ENERGY])) and not result[keys.FORCES].any()

    def test_ase_calculator_forces_are_numerical_derivatives(self, model, molecule):
        molecule = molecule.copy()
        molecule.calc = EqffCalculator(copy.deepcopy(model), dtype="float64")
        assert molecule.get_potential_energy() == pytest.approx(float(evaluate(model, molecule)[keys.ENERGY]), rel=1e-12)
        numerical = calculate_numerical_forces(molecule, eps=1e-4)
        np.testing.assert_allclose(molecule.get_forces(), numerical, rtol=0, atol=1e-6)

    def test_openmm_force_matches_the_model(self, model, molecule, tmp_path):
        """The OpenMM PythonForce of openmm-ml's ``eqff`` potential gives the model's energy and forces."""
        openmm = pytest.importorskip("openmm", reason="OpenMM is not installed")
        pytest.importorskip("openmmml", reason="openmm-ml is not installed")
        from openmm import unit
        from openmmml import MLPotential

        from eqff.integrations.openmm import molecule_topology

        path = save_model(tmp_path / "model.eqff", model)
        system = MLPotential("eqff", modelPath=str(path)).createSystem(
            molecule_topology(molecule.numbers), precision="double", device="cpu"
        )
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(molecule.positions * unit.angstrom)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        expected = evaluate(load_model(path, dtype=torch.float64)[0], molecule)
        assert energy == pytest.approx(float(expected[keys.ENERGY]) * EV_IN_KJ_PER_MOL, rel=1e-6)
        reference = expected[keys.FORCES].numpy() * EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
        np.testing.assert_allclose(forces, reference, rtol=0, atol=1e-6 * np.abs(reference).max())
