"""EqffCalculator: results, derivatives against finite differences, input errors and a short NVE run."""

import copy

import ase.build
import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from eqff import EqffCalculator
from eqff.errors import EqffInputError, UnknownElementError
from eqff.testing import FLOAT_TOLERANCE, evaluate

try:  # ASE ≥ 3.24; the Calculator methods of the same names are deprecated wrappers of these.
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
except ImportError:  # pragma: no cover - older ASE

    def calculate_numerical_forces(atoms, eps):
        return atoms.calc.calculate_numerical_forces(atoms, d=eps)

    def calculate_numerical_stress(atoms, eps):
        return atoms.calc.calculate_numerical_stress(atoms, d=eps)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def calculator(model, **kwargs) -> EqffCalculator:
    """A calculator on a private copy of ``model`` (EqffCalculator converts the model it is given in place)."""
    return EqffCalculator(copy.deepcopy(model), **kwargs)


@pytest.fixture
def diamond():
    """Conventional diamond cell, 8 atoms, rattled: periodic, with a non-trivial stress."""
    atoms = ase.build.bulk("C", "diamond", a=3.57, cubic=True)
    atoms.rattle(0.05, seed=0)
    return atoms


class TestResults:
    def test_energy_free_energy_and_forces(self, painn_model, molecule, dtype_name):
        molecule.calc = calculator(painn_model, dtype=dtype_name)
        energy = molecule.get_potential_energy()
        forces = molecule.get_forces()
        assert isinstance(energy, float)
        assert molecule.get_potential_energy(force_consistent=True) == energy  # free_energy
        assert forces.shape == (len(molecule), 3) and forces.dtype == np.float64
        dtype = DTYPES[dtype_name]
        expected = evaluate(painn_model, molecule, dtype)
        tolerance = FLOAT_TOLERANCE[dtype] * max(1.0, abs(energy))
        assert energy == pytest.approx(float(expected["energy"]), abs=tolerance)
        np.testing.assert_allclose(forces, expected["forces"].numpy(), rtol=0, atol=FLOAT_TOLERANCE[dtype])
        assert np.abs(forces).max() > 1e-2

    def test_no_stress_key_for_a_molecule(self, painn_model, molecule):
        molecule.calc = calculator(painn_model)
        molecule.get_forces()
        assert set(molecule.calc.results) == {"energy", "free_energy", "forces"}

    def test_periodic_results_include_stress(self, painn_model, diamond):
        diamond.calc = calculator(painn_model, dtype="float64")
        diamond.get_potential_energy()
        stress = diamond.get_stress()
        assert stress.shape == (6,)
        expected = evaluate(painn_model, diamond, torch.float64, compute_stress=True)["stress"].numpy()
        np.testing.assert_allclose(stress, expected[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]], rtol=0, atol=1e-12)
        full = diamond.get_stress(voigt=False)
        np.testing.assert_allclose(full, full.T, atol=1e-12)

    def test_recomputes_when_atoms_move(self, painn_model, molecule):
        molecule.calc = calculator(painn_model, dtype="float64")
        before = molecule.get_potential_energy()
        molecule.positions[0] += [0.1, 0.0, 0.0]
        assert molecule.get_potential_energy() != before

    def test_float32_and_float64_agree(self, painn_model, molecule, diamond):
        for atoms in (molecule, diamond):
            results = {}
            for name in ("float32", "float64"):
                atoms.calc = calculator(painn_model, dtype=name)
                results[name] = (atoms.get_potential_energy(), atoms.get_forces())
            energy = results["float64"][0]
            tolerance = FLOAT_TOLERANCE[torch.float32]
            assert results["float32"][0] == pytest.approx(energy, abs=tolerance * max(1, abs(energy)))
            np.testing.assert_allclose(results["float32"][1], results["float64"][1], rtol=0, atol=tolerance)
            assert results["float32"][0] != results["float64"][0], "the two calculators should differ in precision"


class TestDerivatives:
    @pytest.mark.parametrize("system", ["molecule", "diamond"])
    def test_forces_match_numerical_forces(self, painn_model, system, request):
        atoms = request.getfixturevalue(system)
        atoms.calc = calculator(painn_model, dtype="float64")
        numerical = calculate_numerical_forces(atoms, eps=1e-4)
        np.testing.assert_allclose(atoms.get_forces(), numerical, rtol=0, atol=1e-6)

    def test_stress_matches_numerical_stress(self, painn_model, diamond):
        diamond.calc = calculator(painn_model, dtype="float64")
        stress = diamond.get_stress()
        numerical = calculate_numerical_stress(diamond, eps=1e-5)
        assert np.abs(stress).max() > 1e-3
        np.testing.assert_allclose(stress, numerical, rtol=0, atol=1e-7)

    def test_stress_of_a_strained_triclinic_cell(self, painn_model, periodic_atoms):
        """The 2-atom primitive cell (60° angles, smaller than the cutoff), sheared."""
        deformation = np.array([[1, 0.03, 0], [0, 0.98, 0], [0.02, 0, 1.01]])
        periodic_atoms.set_cell(periodic_atoms.cell.array @ deformation, scale_atoms=True)
        periodic_atoms.calc = calculator(painn_model, dtype="float64")
        numerical = calculate_numerical_stress(periodic_atoms, eps=1e-5)
        np.testing.assert_allclose(periodic_atoms.get_stress(), numerical, rtol=0, atol=1e-7)


class TestInputErrors:
    def test_stress_of_a_molecule_is_not_implemented_as_ase_expects(self, painn_model, molecule):
        molecule.calc = calculator(painn_model)
        with pytest.raises(PropertyNotImplementedError, match="periodic in all three directions"):
            molecule.get_stress()
        with pytest.raises(EqffInputError, match="periodic in all three directions"):  # the Potential below it
            molecule.calc.potential(molecule.numbers, molecule.positions, molecule.cell.array, molecule.pbc, True)

    def test_stress_of_a_slab(self, painn_model, periodic_atoms):
        periodic_atoms.pbc = [True, True, False]
        periodic_atoms.calc = calculator(painn_model)
        periodic_atoms.get_potential_energy()  # energy and forces are fine
        with pytest.raises(PropertyNotImplementedError, match="periodic in all three directions"):
            periodic_atoms.get_stress()

    def test_unknown_element(self, painn_model, molecule):
        molecule.numbers[2] = 17  # Cl
        molecule.calc = calculator(painn_model)
        with pytest.raises(UnknownElementError, match=r"Cl \(17\).*H \(1\).*O \(8\)"):
            molecule.get_potential_energy()
        assert issubclass(UnknownElementError, ValueError)

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite_positions(self, painn_model, molecule, bad):
        molecule.positions[4, 2] = bad
        molecule.calc = calculator(painn_model)
        with pytest.raises(EqffInputError, match="NaN or infinite"):
            molecule.get_forces()

    def test_pbc_without_a_cell(self, painn_model, molecule):
        molecule.pbc = True
        molecule.calc = calculator(painn_model)
        with pytest.raises(EqffInputError, match="zero vector"):
            molecule.get_potential_energy()

    def test_cuda_without_cuda(self, painn_model):
        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
        with pytest.raises(ValueError, match="CUDA") as error:
            EqffCalculator(copy.deepcopy(painn_model), device="cuda")
        assert isinstance(error.value, EqffInputError)

    @pytest.mark.parametrize(
        ("device", "message"),
        [("meta", "is not supported"), ("mps", "is not supported"), ("cpu:0x", "is not a device name"),
         ("tpu", "is not a device name"), ("gpu", "is not a device name; use 'cpu', 'cuda' or 'cuda:N'")],
    )  # fmt: skip
    def test_unsupported_device(self, painn_model, device, message):
        with pytest.raises(EqffInputError, match=f"device '{device}' {message}"):
            EqffCalculator(copy.deepcopy(painn_model), device=device)

    def test_unknown_dtype(self, painn_model):
        with pytest.raises(ValueError, match="float16"):
            EqffCalculator(copy.deepcopy(painn_model), dtype="float16")


def test_calculator_leaves_the_callers_model_alone(painn_model, molecule):
    painn_model.train()
    first = EqffCalculator(painn_model, dtype="float64")
    EqffCalculator(painn_model, dtype="float32")
    assert next(painn_model.parameters()).dtype == torch.float32 and painn_model.training
    molecule.calc = first
    molecule.get_potential_energy()  # RuntimeError today: float64 graph, float32 weights


def test_nve_conserves_energy(painn_model, molecule):
    """Velocity Verlet, 0.5 fs, 200 steps (100 fs) at 300 K in float64: no drift of the total energy.

    The tolerance (1 meV over 100 fs for 9 atoms) is several times the O(dt²) fluctuations of
    this smooth potential (about 0.15 meV at 0.5 fs, 0.6 meV at 1 fs) and far below what a
    non-conservative force or an energy jump at the cutoff gives; the potential energy itself
    changes by much more (checked, about 0.5 eV).
    """
    thermalize_momenta(molecule, temperature_K=300, rng=np.random.default_rng(0))
    molecule.calc = calculator(painn_model, dtype="float64")
    totals, potentials = [], []

    def record():
        potentials.append(molecule.get_potential_energy())
        totals.append(potentials[-1] + molecule.get_kinetic_energy())

    dynamics = VelocityVerlet(molecule, timestep=0.5 * units.fs)
    dynamics.attach(record, interval=1)
    dynamics.run(200)
    totals, potentials = np.array(totals), np.array(potentials)
    assert len(totals) == 201 and np.isfinite(totals).all()
    drift = np.abs(totals - totals[0]).max()
    assert np.ptp(potentials) > 0.1, "the molecule barely moved: the test would prove nothing"
    assert drift < 1e-3, f"total energy drifted by {drift:.2e} eV over 100 fs"


def test_float32_model_sums_large_energies_without_float32_rounding(painn_model, molecule):
    """A molecule's energy is thousands of eV: offsets and sums are float64 even in a float32 model."""
    offsets = torch.tensor([-13.6, -1029.8, -1484.3, -2041.3], dtype=torch.float64)  # eV, H C N O
    painn_model.scale_shift.set_statistics(offsets, 1.0)
    energies = {}
    for dtype in ("float32", "float64"):
        atoms = molecule.copy()
        atoms.calc = EqffCalculator(painn_model, dtype=dtype)
        energies[dtype] = atoms.get_potential_energy()
    assert abs(energies["float64"]) > 5000
    # float32 has a spacing of about 1 meV at 5000 eV; only the network's own float32 rounding remains
    assert energies["float32"] == pytest.approx(energies["float64"], abs=2e-5)


@pytest.mark.parametrize("distance", [0.0, 1e4])
def test_float32_forces_do_not_lose_digits_far_from_the_origin(painn_model, molecule, distance):
    """Positions are centred before the cast to float32, so a molecule 10,000 Å away gets the
    float64 forces to float32 round-off, as one at the origin does."""
    far = molecule.copy()
    far.positions += distance
    far.calc = calculator(painn_model, dtype="float32")
    molecule.calc = calculator(painn_model, dtype="float64")
    np.testing.assert_allclose(far.get_forces(), molecule.get_forces(), rtol=0, atol=FLOAT_TOLERANCE[torch.float32])
