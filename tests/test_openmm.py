"""OpenMM through openmm-ml: agreement with the ASE calculator, periodicity, ML/MM, precision, errors.

OpenMM runs on its Reference platform (double precision throughout), so that float64 results
can be compared with the ASE calculator's to round-off.
"""

import os
from pathlib import Path

import ase.build
import numpy as np
import pytest
import torch
from ase import Atoms

openmm = pytest.importorskip("openmm", reason="OpenMM is not installed")
pytest.importorskip("openmmml", reason="openmm-ml is not installed")

from openmm import unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402

from eqff import EqffCalculator, save_model  # noqa: E402
from eqff.cli import main  # noqa: E402
from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM, NANOMETRE  # noqa: E402
from eqff.errors import EqffInputError, ModelFileError, UnknownElementError  # noqa: E402
from eqff.integrations.openmm import EqffPotentialImpl, build_torch_module, molecule_topology  # noqa: E402
from eqff.potential import Potential  # noqa: E402
from eqff.md.systems import water_box  # noqa: E402

RTOL = 1e-6
"""Relative agreement asked of float64 OpenMM results with the ASE calculator's."""


@pytest.fixture
def model_file(painn_model, tmp_path):
    """The conftest PaiNN (H, C, N, O; F=16, 2 interactions, cutoff 4 Å) saved as a model file."""
    return save_model(tmp_path / "painn.eqff", painn_model)


@pytest.fixture
def water_model_file(make_painn, tmp_path):
    """A small random PaiNN of H and O for the periodic water box."""
    return save_model(tmp_path / "water.eqff", make_painn(seed=1, elements=[1, 8]))


def evaluate(system, positions: np.ndarray, groups: int | set[int] = -1) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and (N, 3) forces (kJ/mol/nm) of ``system`` at ``positions`` (Å) on the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions * unit.angstrom)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return energy, state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)


def ase_reference(atoms: Atoms, model) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces (kJ/mol/nm) of the float64 ASE calculator."""
    atoms = atoms.copy()
    atoms.calc = EqffCalculator(model, dtype="float64")
    return atoms.get_potential_energy() * EV_IN_KJ_PER_MOL, atoms.get_forces() * EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM


def periodic_topology(atoms: Atoms):
    """A one-residue topology of ``atoms`` with its cell as periodic box vectors."""
    topology = molecule_topology(atoms.numbers)
    topology.setPeriodicBoxVectors(atoms.cell.array * unit.angstrom)
    return topology


def assert_agree(energy: float, forces: np.ndarray, reference: tuple[float, np.ndarray], rtol: float = RTOL) -> None:
    """Energy to ``rtol`` relative, forces to ``rtol`` relative to the largest reference force."""
    assert energy == pytest.approx(reference[0], rel=rtol)
    np.testing.assert_allclose(forces, reference[1], rtol=0, atol=rtol * np.abs(reference[1]).max())


def test_the_entry_point_registers_eqff():
    assert isinstance(MLPotential("eqff")._impl, EqffPotentialImpl)


def test_unit_factors_agree_with_openmm_unit():
    ev = (1 * unit.elementary_charge * unit.volt * unit.AVOGADRO_CONSTANT_NA).value_in_unit(unit.kilojoule_per_mole)
    assert EV_IN_KJ_PER_MOL == pytest.approx(ev, rel=1e-6)
    assert NANOMETRE == pytest.approx((1 * unit.nanometer).value_in_unit(unit.angstrom), rel=1e-12)
    assert EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM == pytest.approx(ev * NANOMETRE, rel=1e-6)


class TestAgreementWithASE:
    def test_molecule(self, model_file, molecule):
        system = MLPotential("eqff", modelPath=str(model_file)).createSystem(
            molecule_topology(molecule.numbers), precision="double", device="cpu"
        )
        [force] = [f for f in system.getForces() if isinstance(f, openmm.PythonForce)]
        assert not force.usesPeriodicBoundaryConditions() and force.getForceGroup() == 0
        energy, forces = evaluate(system, molecule.positions)
        assert_agree(energy, forces, ase_reference(molecule, model_file))

    @pytest.mark.parametrize("model_path", ["painn-aspirin", None], ids=["by-name", "default"])
    def test_shipped_potential(self, model_path):
        acetic_acid = ase.build.molecule("CH3COOH")  # H, C, O as the aspirin potential knows
        system = MLPotential("eqff", modelPath=model_path).createSystem(
            molecule_topology(acetic_acid.numbers), precision="double", device="cpu"
        )
        energy, forces = evaluate(system, acetic_acid.positions)
        assert_agree(energy, forces, ase_reference(acetic_acid, "painn-aspirin"))

    def test_periodic_water_box(self, water_model_file):
        box = water_box(8)
        system = MLPotential("eqff", modelPath=str(water_model_file)).createSystem(
            periodic_topology(box), precision="double", device="cpu"
        )
        [force] = [f for f in system.getForces() if isinstance(f, openmm.PythonForce)]
        assert force.usesPeriodicBoundaryConditions()
        energy, forces = evaluate(system, box.positions)
        assert_agree(energy, forces, ase_reference(box, water_model_file))

    def test_translation_by_box_vectors(self, water_model_file):
        box = water_box(8)
        system = MLPotential("eqff", modelPath=str(water_model_file)).createSystem(
            periodic_topology(box), precision="double", device="cpu"
        )
        cell = box.cell.array
        energy, forces = evaluate(system, box.positions)
        moved = box.positions.copy()
        moved[:3] += cell[0]  # one molecule one box vector away
        moved[3:] += cell[1] - 2 * cell[2]  # all others elsewhere
        energy_moved, forces_moved = evaluate(system, moved)
        assert energy_moved == pytest.approx(energy, rel=1e-12)
        np.testing.assert_allclose(forces_moved, forces, rtol=0, atol=1e-9 * np.abs(forces).max())


class TestMixedSystem:
    """Acetamide (ML) between three TIP3P-like waters (MM): two before it, one after, in particle order."""

    WATER = [8, 1, 1]
    WATER_CHARGES = [-0.834, 0.417, 0.417]

    @pytest.fixture
    def setup(self, molecule):
        """(topology, MM system, positions Å, ML atom indices) with the ML atoms at indices 6..14."""
        waters = [ase.build.molecule("H2O") for _ in range(3)]
        for water, offset in zip(waters, ([5.0, 0, 0], [0, -5.0, 0], [0, 0, 5.5])):
            water.translate(offset)
        positions = np.concatenate([waters[0].positions, waters[1].positions, molecule.positions, waters[2].positions])
        numbers = [*self.WATER, *self.WATER, *molecule.numbers, *self.WATER]
        topology = molecule_topology(numbers)
        ml_atoms = list(range(6, 6 + len(molecule)))
        return topology, self.mm_system(numbers, ml_atoms), positions, ml_atoms

    def mm_system(self, numbers: list[int], ml_atoms: list[int]):
        """Coulomb and Lennard-Jones between all atoms, O–H bonds in the waters, one bond inside the ML region."""
        system = openmm.System()
        nonbonded = openmm.NonbondedForce()
        bonds = openmm.HarmonicBondForce()
        ml_charges = iter(0.2 * np.array([1, -1, 1, -1, 1, -1, 1, -1, 0]))
        for index, z in enumerate(numbers):
            system.addParticle(openmm.app.Element.getByAtomicNumber(z).mass)
            charge = next(ml_charges) if index in ml_atoms else self.WATER_CHARGES[index % 3]
            nonbonded.addParticle(charge, 0.3 if z > 1 else 0.1, 0.5 if z > 1 else 0.05)
        for oxygen in (0, 3, 15):
            for hydrogen in (oxygen + 1, oxygen + 2):
                bonds.addBond(oxygen, hydrogen, 0.09572, 4e5)
                nonbonded.addException(oxygen, hydrogen, 0.0, 1.0, 0.0)
        bonds.addBond(ml_atoms[0], ml_atoms[1], 0.15, 3e5)
        system.addForce(nonbonded)
        system.addForce(bonds)
        return system

    def test_forces_on_mm_atoms_are_the_mm_forces(self, model_file, setup):
        topology, mm_system, positions, ml_atoms = setup
        mixed = MLPotential("eqff", modelPath=str(model_file)).createMixedSystem(
            topology, mm_system, ml_atoms, precision="double", device="cpu"
        )
        _, mixed_forces = evaluate(mixed, positions)
        _, mm_forces = evaluate(mm_system, positions)
        mm_atoms = [i for i in range(len(positions)) if i not in ml_atoms]
        np.testing.assert_allclose(mixed_forces[mm_atoms], mm_forces[mm_atoms], rtol=1e-12, atol=1e-9)
        assert not np.allclose(mixed_forces[ml_atoms], mm_forces[ml_atoms])

    def test_ml_force_group_holds_the_ase_result_on_the_ml_atoms(self, model_file, molecule, setup):
        topology, mm_system, positions, ml_atoms = setup
        mixed = MLPotential("eqff", modelPath=str(model_file)).createMixedSystem(
            topology, mm_system, ml_atoms, forceGroup=1, precision="double", device="cpu"
        )
        energy, forces = evaluate(mixed, positions, groups={1})
        reference = ase_reference(molecule, model_file)
        assert_agree(energy, forces[ml_atoms], reference)
        assert not np.delete(forces, ml_atoms, axis=0).any()


class TestPrecision:
    @pytest.mark.parametrize(
        "precision, dtype", [("single", torch.float32), ("double", torch.float64), (None, torch.float32)]
    )
    def test_potential_dtype(self, model_file, precision, dtype):
        """None keeps the dtype the file was saved in (float32 here)."""
        assert EqffPotentialImpl("eqff", model_file).load_potential(precision, "cpu").dtype == dtype

    def test_single_and_double_agree_and_differ(self, model_file, molecule):
        potential = MLPotential("eqff", modelPath=str(model_file))
        results = {}
        for precision in ("single", "double"):
            system = potential.createSystem(molecule_topology(molecule.numbers), precision=precision, device="cpu")
            results[precision] = evaluate(system, molecule.positions)
        assert results["single"][0] != results["double"][0]
        assert_agree(*results["single"], results["double"], rtol=1e-4)


class TestTorchScriptModule:
    """The module openmm-torch would run, called directly: the same energy and forces as the Potential."""

    def check(self, model_file, atoms: Atoms, box: np.ndarray | None) -> None:
        pytest.importorskip("vesin_torch", reason="vesin-torch is not installed (it is in the test extra)")
        potential = Potential(str(model_file), dtype="float64")
        expected = potential(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, compute_stress=False)
        # Two extra particles, not modelled, before and after: the module must pick the right ones.
        positions_nm = np.concatenate([[[9.0, 9.0, 9.0]], atoms.positions, [[-9.0, 0.0, 0.0]]]) / NANOMETRE
        module = build_torch_module(potential.model, atoms.numbers, list(range(1, len(atoms) + 1)))
        positions = torch.tensor(positions_nm, requires_grad=True)
        boxvectors = None if box is None else torch.tensor(box / NANOMETRE)
        energy = module(positions, boxvectors)
        (gradient,) = torch.autograd.grad(energy, positions)
        forces = -gradient.numpy()
        assert energy.item() == pytest.approx(expected["energy"] * EV_IN_KJ_PER_MOL, rel=1e-12)
        np.testing.assert_allclose(forces[1:-1], expected["forces"] * EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM, atol=1e-9)
        assert not forces[[0, -1]].any()

    def test_molecule(self, model_file, molecule):
        self.check(model_file, molecule, None)

    def test_periodic_water_box(self, water_model_file):
        box = water_box(8)
        self.check(water_model_file, box, box.cell.array)


def test_torch_force_matches_ase(model_file, molecule):
    pytest.importorskip("openmmtorch", reason="openmm-torch is not installed: the TorchForce path cannot run here")
    system = MLPotential("eqff", modelPath=str(model_file)).createSystem(
        molecule_topology(molecule.numbers), precision="double", device="cpu", implementation="torch"
    )
    energy, forces = evaluate(system, molecule.positions)
    assert_agree(energy, forces, ase_reference(molecule, model_file))


class TestErrors:
    def test_unknown_element(self, model_file, molecule):
        numbers = molecule.numbers.copy()
        numbers[2] = 17  # Cl
        with pytest.raises(UnknownElementError, match=r"Cl \(17\)"):
            MLPotential("eqff", modelPath=str(model_file)).createSystem(molecule_topology(numbers))

    def test_atom_without_an_element(self, model_file, molecule):
        topology = molecule_topology(molecule.numbers)
        topology.addAtom("X1", None, next(topology.residues()))
        with pytest.raises(EqffInputError, match=r"topology atom 9 \('X1'.*has no element"):
            MLPotential("eqff", modelPath=str(model_file)).createSystem(topology)

    def test_missing_model_file(self, tmp_path, molecule):
        with pytest.raises(ModelFileError, match="no model file"):
            MLPotential("eqff", modelPath=str(tmp_path / "missing.eqff")).createSystem(
                molecule_topology(molecule.numbers)
            )

    def test_errors_are_value_errors(self):
        assert all(issubclass(error, ValueError) for error in (UnknownElementError, EqffInputError, ModelFileError))

    @pytest.mark.parametrize("option", [{"precision": "half"}, {"implementation": "jax"}])
    def test_bad_option(self, model_file, molecule, option):
        with pytest.raises(ValueError, match=next(iter(option.values()))):
            MLPotential("eqff", modelPath=str(model_file)).createSystem(molecule_topology(molecule.numbers), **option)

    def test_unknown_argument(self, model_file, molecule):
        with pytest.raises(TypeError, match="precison"):
            MLPotential("eqff", modelPath=str(model_file)).createSystem(
                molecule_topology(molecule.numbers), precison="double"
            )

    def test_torch_implementation_without_openmm_torch(self, model_file, molecule):
        try:
            import openmmtorch  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("openmm-torch is installed here")
        with pytest.raises(ImportError, match="needs openmm-torch and vesin-torch, and openmmtorch does not import"):
            MLPotential("eqff", modelPath=str(model_file)).createSystem(
                molecule_topology(molecule.numbers), implementation="torch"
            )


def test_bench_openmm_reports_ms_per_step_overhead_and_ns_per_day(capsys):
    data = Path(os.environ.get("EQFF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (data / "rmd17").is_dir():
        pytest.skip(f"rMD17 data not found at {data} (set EQFF_DATA to the data folder)")
    argv = ["bench", "--openmm", "--systems", "aspirin", "--dtypes", "float32", "--devices", "cpu", "--repeats", "2"]
    assert main([*argv, "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "OpenMM: gas-phase aspirin (21 atoms), model painn-aspirin" in lines
    device, dtype, _, ase_ms, openmm_ms, overhead, ns_per_day, energy_error, force_error = lines[-1].split()
    assert (device, dtype) == ("cpu", "float32") and overhead.endswith("%")
    assert float(energy_error) < 1e-6 and float(force_error) < 1e-5  # float32 round-off
    assert float(ase_ms) > 0 and float(openmm_ms) > 0
    assert float(ns_per_day) == pytest.approx(0.5e-6 * 86400e3 / float(openmm_ms), rel=1e-2, abs=0.01)


@pytest.mark.parametrize("first", ["openmmml", "eqff.integrations.openmm"])
def test_plugin_imports_in_either_order_and_openmmml_does_not_import_torch(first):
    """openmm-ml loads the plugin while it is itself imported: no cycle, and no torch until a force is made."""
    import subprocess
    import sys

    code = (
        f"import sys, {first}, openmmml\n"
        "assert openmmml.MLPotential('eqff') is not None\n"
        f"print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
