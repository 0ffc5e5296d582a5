"""``eqff export --format metatomic``: the exported model gives eqff's energies, forces and stress.

metatomic-ase's ``MetatomicCalculator`` on the exported file is compared with
:class:`~eqff.integrations.ase.EqffCalculator` on the eqff model file, in float64 to 1e-8
(relative), for every architecture: a molecule, a periodic water box, and a small triclinic cell
whose atoms see their own images (cell shifts up to ±2, so the pair convention is tested).
Skipped where metatomic-torch or metatomic-ase is not installed.
"""

from pathlib import Path

import ase.build
import numpy as np
import pytest
import torch
from ase import Atoms

from eqff.cli import main
from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.integrations.ase import EqffCalculator
from eqff.md.systems import water_box
from eqff.model_file import load_model, save_model
from eqff.models import build_model

mta = pytest.importorskip("metatomic.torch")
metatomic_ase = pytest.importorskip("metatomic_ase")
# Imports that need metatomic come after the skips.
from metatensor.torch import Labels

from eqff.integrations.metatomic import (
    build_atomistic_model,
    export_metatomic,
    receptive_field_hops,
)
from tiny_models import TINY

ELEMENTS = [1, 6, 8]
CUTOFF = 4.0
OFFSETS = {1: -13.6, 6: -37.8, 8: -75.1}
"""eV per atom: non-trivial energy statistics, as in conftest."""
ARCHITECTURES = list(TINY)
RELATIVE = 1e-8
"""float64 agreement asked of energies, forces and stress (relative to the largest value)."""


def _random_model(
    architecture: str, elements: list[int] = ELEMENTS, cutoff: float = CUTOFF, **overrides
) -> torch.nn.Module:
    """A seeded random ``architecture`` model in float64 with energy statistics set, eval mode.

    Built under float64 as the default dtype: e3nn computes SEGNN's Clebsch–Gordan coefficients
    in it (see tests/test_segnn.py).
    """
    default_dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_default_dtype(torch.float64)
        try:
            hyperparameters = {"elements": elements, "cutoff": cutoff, **TINY[architecture], **overrides}
            model = build_model(architecture, hyperparameters)
        finally:
            torch.set_default_dtype(default_dtype)
    model = model.to(torch.float64)
    model.scale_shift.set_statistics(torch.tensor([OFFSETS[z] for z in elements], dtype=torch.float64), 1.7)
    return model.eval()


def _export(model: torch.nn.Module, folder: Path, name: str) -> tuple[Path, Path]:
    """``model`` saved as an eqff model file and exported from it; (eqff file, metatomic file)."""
    eqff_file = save_model(folder / f"{name}.eqff", model)
    return eqff_file, export_metatomic(eqff_file, folder / f"{name}.pt")


def _ethanol() -> Atoms:
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    return atoms


def _small_triclinic_cell() -> Atoms:
    """An OH pair in a triclinic cell with vectors about half the cutoff: atoms see their own images
    (cell shifts up to ±2 at the 4 Å cutoff; 100 pairs)."""
    cell = np.array([[2.2, 0.0, 0.0], [0.6, 2.0, 0.0], [0.35, 0.5, 2.3]])  # Å
    return Atoms("OH", positions=[[0.0, 0.0, 0.0], [0.75, 0.55, 0.3]], cell=cell, pbc=True)


def _compare(eqff_file: Path, exported: Path, atoms: Atoms, stress: bool) -> None:
    """Energy, forces (and stress) of the two calculators agree to :data:`RELATIVE`; metatomic's checks pass."""
    reference = atoms.copy()
    reference.calc = EqffCalculator(eqff_file, dtype="float64")
    candidate = atoms.copy()
    candidate.calc = metatomic_ase.MetatomicCalculator(exported, device="cpu", check_consistency=True)
    energy = reference.get_potential_energy()
    assert candidate.get_potential_energy() == pytest.approx(energy, rel=RELATIVE)
    forces = reference.get_forces()
    assert np.abs(forces).max() > 1e-3, "forces too small for the comparison to mean anything"
    np.testing.assert_allclose(candidate.get_forces(), forces, rtol=0, atol=RELATIVE * np.abs(forces).max())
    if stress:
        expected = reference.get_stress()
        np.testing.assert_allclose(candidate.get_stress(), expected, rtol=0, atol=RELATIVE * np.abs(expected).max())


def test_shipped_potential_matches_the_eqff_calculator(tmp_path):
    exported = export_metatomic("painn-aspirin", tmp_path / "painn-aspirin.pt", dtype="float64")
    mta.check_atomistic_model(str(exported))
    atoms = _ethanol()
    reference = atoms.copy()
    reference.calc = EqffCalculator("painn-aspirin", dtype="float64")
    candidate = atoms.copy()
    candidate.calc = metatomic_ase.MetatomicCalculator(exported, device="cpu", check_consistency=True)
    assert candidate.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=RELATIVE)
    forces = reference.get_forces()
    np.testing.assert_allclose(candidate.get_forces(), forces, rtol=0, atol=RELATIVE * np.abs(forces).max())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_molecule_matches_the_eqff_calculator(architecture, tmp_path):
    eqff_file, exported = _export(_random_model(architecture), tmp_path, architecture)
    mta.check_atomistic_model(str(exported))
    _compare(eqff_file, exported, _ethanol(), stress=False)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_periodic_water_box_matches_the_eqff_calculator(architecture, tmp_path):
    """192 atoms (64 molecules), periodic: energy, forces and stress, then after the atoms moved."""
    eqff_file, exported = _export(_random_model(architecture, elements=[1, 8]), tmp_path, architecture)
    atoms = water_box(64)
    _compare(eqff_file, exported, atoms, stress=True)
    atoms.positions += np.random.default_rng(0).normal(0.0, 0.05, atoms.positions.shape)  # Å
    _compare(eqff_file, exported, atoms, stress=True)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_cell_smaller_than_the_cutoff_matches_the_eqff_calculator(architecture, tmp_path):
    """Pairs of an atom with its own images and shifts up to ±2: metatomic's pair (i, j, S) is eqff's edge."""
    eqff_file, exported = _export(_random_model(architecture, elements=[1, 8]), tmp_path, architecture)
    atoms = _small_triclinic_cell()
    shifts = atoms_to_graph(atoms, CUTOFF)[keys.CELL_SHIFTS]
    assert shifts.abs().max() >= 2
    _compare(eqff_file, exported, atoms, stress=True)


def test_ipi_metatomic_driver_matches_the_eqff_calculator(tmp_path):
    """i-PI's ``metatomic`` driver (what ``i-pi-py_driver -m metatomic`` runs), called in-process
    in i-PI's atomic units: energy, forces and virial (−stress × volume) of the water box."""
    pytest.importorskip("ipi.pes.metatomic")
    from ase.stress import voigt_6_to_full_3x3_stress
    from ipi.pes.metatomic import MetatomicDriver
    from ipi.utils.units import unit_to_internal, unit_to_user

    eqff_file, exported = _export(_random_model("painn", elements=[1, 8]), tmp_path, "water-painn")
    atoms = water_box(64)
    atoms.write(tmp_path / "template.xyz")
    driver = MetatomicDriver(template=str(tmp_path / "template.xyz"), model=str(exported), device="cpu")
    cell = unit_to_internal("length", "angstrom", atoms.cell.array.T)  # i-PI's h: cell vectors as columns, Bohr
    positions = unit_to_internal("length", "angstrom", atoms.positions)  # Bohr
    energy, forces, virial, _ = driver(cell, positions)  # Hartree, Hartree/Bohr, Hartree

    atoms.calc = EqffCalculator(eqff_file, dtype="float64")
    assert unit_to_user("energy", "electronvolt", energy) == pytest.approx(atoms.get_potential_energy(), rel=RELATIVE)
    expected_forces = atoms.get_forces()
    np.testing.assert_allclose(
        unit_to_user("force", "ev/ang", np.asarray(forces)).reshape(-1, 3), expected_forces,
        rtol=0, atol=RELATIVE * np.abs(expected_forces).max(),
    )
    expected_virial = -voigt_6_to_full_3x3_stress(atoms.get_stress()) * atoms.get_volume()  # eV
    np.testing.assert_allclose(
        unit_to_user("energy", "electronvolt", np.asarray(virial)), expected_virial,
        rtol=0, atol=RELATIVE * np.abs(expected_virial).max(),
    )


def test_capabilities_and_metadata(tmp_path):
    model = _random_model("painn", elements=[1, 8])
    _, exported = _export(model, tmp_path, "water-painn")
    loaded = mta.load_atomistic_model(str(exported))
    capabilities = loaded.capabilities()
    assert capabilities.atomic_types == [1, 8]
    assert capabilities.length_unit == "angstrom"
    assert capabilities.dtype == "float64"
    assert capabilities.supported_devices == ["cpu", "cuda"]
    assert capabilities.interaction_range == pytest.approx(2 * CUTOFF)  # two interactions
    assert capabilities.outputs["energy"].unit == "eV"
    (options,) = loaded.requested_neighbor_lists()
    assert (options.cutoff, options.full_list, options.strict) == (CUTOFF, True, True)
    metadata = loaded.metadata()
    assert metadata.name == "water-painn"
    assert "painn" in metadata.description and metadata.extra["eqff_architecture"] == "painn"


def test_float32_export_matches_the_float32_calculator(tmp_path):
    exported = export_metatomic("painn-aspirin", tmp_path / "painn-aspirin-32.pt", dtype="float32")
    assert mta.load_atomistic_model(str(exported)).capabilities().dtype == "float32"
    atoms = _ethanol()
    reference = atoms.copy()
    reference.calc = EqffCalculator("painn-aspirin", dtype="float32")
    candidate = atoms.copy()
    candidate.calc = metatomic_ase.MetatomicCalculator(exported, device="cpu")
    assert candidate.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-6)
    np.testing.assert_allclose(candidate.get_forces(), reference.get_forces(), rtol=0, atol=1e-3)


def _systems(model, structures: list[Atoms]) -> list:
    """metatomic Systems of ``structures`` in float64, with the neighbour list ``model`` requests."""
    from vesin.metatomic import NeighborList

    systems = mta.systems_to_torch(structures, dtype=torch.float64)
    for options in model.requested_neighbor_lists():
        NeighborList(options, length_unit="angstrom").add_neighbor_list(systems)
    return systems


def _run(model, systems: list, per_atom: bool, selected_atoms: "Labels | None" = None):
    options = mta.ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"energy": mta.ModelOutput(unit="eV", sample_kind="atom" if per_atom else "system")},
        selected_atoms=selected_atoms,
    )
    return model(systems, options, check_consistency=True)["energy"].block()


def test_per_atom_energies_batches_and_selected_atoms():
    """Per-atom energies are the model's atomic energies; two systems in one call give each its
    energy; ``selected_atoms`` sums (or returns) the energies of the selected atoms only."""
    eqff_model = _random_model("painn", elements=[1, 8])
    model = build_atomistic_model(eqff_model, name="test")
    box, cell = water_box(8), _small_triclinic_cell()
    expected = [eqff_model(atoms_to_graph(atoms, CUTOFF))[keys.ATOMIC_ENERGIES].detach() for atoms in (box, cell)]

    per_atom = _run(model, _systems(model, [box, cell]), per_atom=True)
    assert per_atom.samples.names == ["system", "atom"]
    torch.testing.assert_close(per_atom.values[:, 0], torch.cat(expected))
    totals = _run(model, _systems(model, [box, cell]), per_atom=False)
    assert totals.samples.names == ["system"]
    torch.testing.assert_close(totals.values[:, 0], torch.stack([e.sum() for e in expected]))

    chosen = torch.tensor([[0, 3], [0, 5], [1, 1]], dtype=torch.int32)  # (system, atom)
    selected = Labels(["system", "atom"], chosen)
    partial = _run(model, _systems(model, [box, cell]), per_atom=False, selected_atoms=selected)
    torch.testing.assert_close(partial.values[:, 0], torch.stack([expected[0][[3, 5]].sum(), expected[1][1]]))
    partial_per_atom = _run(model, _systems(model, [box, cell]), per_atom=True, selected_atoms=selected)
    assert torch.equal(partial_per_atom.samples.values, chosen)
    expected_selected = torch.stack([expected[0][3], expected[0][5], expected[1][1]])
    torch.testing.assert_close(partial_per_atom.values[:, 0], expected_selected)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_interaction_range_covers_the_receptive_field(architecture):
    """On a chain whose atoms are within the cutoff of their two neighbours only, atom 0's energy
    depends on the atom :func:`receptive_field_hops` hops away and on none farther: the
    ``interaction_range`` (hops × cutoff) is the model's true range."""
    overrides = {"gemnet-t": {"num_blocks": 2}, "segnn": {"num_layers": 2}}.get(architecture, {})
    model = _random_model(architecture, elements=[1, 8], cutoff=3.0, **overrides)
    hops = receptive_field_hops(model)
    count = hops + 3
    positions = np.zeros((count, 3))
    positions[:, 0] = np.arange(count) * 0.6 * 3.0  # Å: neighbours at 1.8 Å, second neighbours at 3.6 Å
    positions[:, 1] = 0.3 * np.sin(np.arange(count))  # not collinear
    chain = Atoms(numbers=[1, 8] * (count // 2) + [1] * (count % 2), positions=positions)

    def first_atom_energy(moved: int) -> float:
        atoms = chain.copy()
        atoms.positions[moved] += [0.0, 0.2, 0.1]
        return float(model(atoms_to_graph(atoms, 3.0))[keys.ATOMIC_ENERGIES][0].detach())

    reference = float(model(atoms_to_graph(chain, 3.0))[keys.ATOMIC_ENERGIES][0].detach())
    changes = [abs(first_atom_energy(k) - reference) for k in range(1, count)]
    # Random weights: the dependence fades with the hops (3e-11 eV at GemNet-T's fifth), and is exactly 0 beyond.
    assert changes[hops - 1] > 1e-14, f"atom 0 does not see the atom {hops} hops away"
    assert max(changes[hops:]) < 1e-14, f"atom 0 sees atoms beyond {hops} hops"


def test_export_command(tmp_path, capsys):
    out = tmp_path / "painn.pt"
    assert main(["export", "--format", "metatomic", "--dtype", "float64", "painn-aspirin", str(out)]) == 0
    assert "interaction range 15 Å" in capsys.readouterr().out
    mta.check_atomistic_model(str(out))
    assert mta.load_atomistic_model(str(out)).capabilities().dtype == "float64"
    with pytest.raises(SystemExit, match="error: no model file"):
        main(["export", str(tmp_path / "missing.eqff"), str(tmp_path / "x.pt")])
    with pytest.raises(SystemExit, match="error: cannot write .*: no folder"):
        main(["export", "painn-aspirin", str(tmp_path / "missing" / "x.pt")])


def test_loaded_model_file_round_trips_through_load_model(tmp_path):
    """The exported model is the model file's: same weights, so the same energy as load_model's model."""
    model, _ = load_model("painn-ethanol", dtype=torch.float64)
    exported = export_metatomic("painn-ethanol", tmp_path / "painn-ethanol.pt", dtype="float64")
    loaded = mta.load_atomistic_model(str(exported))
    atoms = _ethanol()
    energy = _run(loaded, _systems(loaded, [atoms]), per_atom=False).values[0, 0]
    torch.testing.assert_close(energy, model(atoms_to_graph(atoms, model.cutoff))[keys.ENERGY][0].detach())
