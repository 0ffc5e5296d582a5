"""Committees: the physics suite, the mean and spread of the members, model files, the calculator's
uncertainties, eqff md's log and threshold, training, and frames chosen by uncertainty.

Committees here hold two or three tiny random PaiNNs, so the module runs in about a minute on a CPU.
"""

import copy
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule as build_molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from eqff import EqffCalculator
from eqff.active_learning import committee_predictions, learning_curve, most_uncertain, uncertainty_against_error
from eqff.cli import main
from eqff.data import keys
from eqff.data.frames import Frame
from eqff.data.graph import atoms_to_graph
from eqff.model_file import load_model, save_model
from eqff.models import ARCHITECTURES, Committee, build_model
from eqff.nn.forces import energy_forces_stress
from eqff.testing import ModelTests, evaluate
from eqff.train.config import ConfigError, parse_config
from eqff.train.loss import EnergyForceLoss
from eqff.train.run import train
from eqff.train.splits import read_split

ELEMENTS = [1, 6, 7, 8]
CUTOFF = 4.0
MEMBER = {"num_features": 8, "num_interactions": 2, "num_radial": 4}
"""A tiny PaiNN member."""
OFFSETS = torch.tensor([-13.6, -37.8, -54.6, -75.1])
TRAINING_DIR = Path(__file__).resolve().parent.parent / "training"
DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_RMD17 = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz").is_file()


def make_committee(size: int = 3, seed: int = 0, elements: list[int] = ELEMENTS) -> Committee:
    """A committee of ``size`` tiny random PaiNNs (float32, eval mode, energy statistics set)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Committee(elements, CUTOFF, "painn", MEMBER, size)
    model.scale_shift.set_statistics(OFFSETS[[ELEMENTS.index(z) for z in elements]], 1.7)
    return model.eval()


def member_alone(committee: Committee, k: int) -> torch.nn.Module:
    """Member ``k`` as a model of its own, with the committee's energy statistics."""
    member = copy.deepcopy(committee.members[k])
    member.scale_shift.set_statistics(committee.scale_shift.offsets, float(committee.scale_shift.scale))
    return member


@pytest.fixture
def committee() -> Committee:
    return make_committee()


@pytest.fixture
def ethanol():
    atoms = build_molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    return atoms


class TestCommitteePhysics(ModelTests):
    """The physics suite on the committee's mean energy and forces."""

    @pytest.fixture
    def model(self) -> Committee:
        return make_committee()


# --- the model -------------------------------------------------------------------------------


def test_registered_and_rebuilt_from_its_hyperparameters(committee):
    assert ARCHITECTURES["committee"] is Committee
    rebuilt = build_model("committee", committee.hyperparameters)
    assert rebuilt.hyperparameters == committee.hyperparameters
    assert committee.hyperparameters == {"elements": ELEMENTS, "cutoff": CUTOFF, "member_architecture": "painn",
                                         "member_hyperparameters": MEMBER, "size": 3}  # fmt: skip
    assert committee.num_members == 3 and all(member.cutoff == CUTOFF for member in committee.members)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"size": 1}, "at least 2 members"),
        ({"member_hyperparameters": {"cutoff": 3.0}}, r"give the committee's \['cutoff'\]"),
        ({"member_architecture": "committee"}, "cannot be committees"),
        ({"member_architecture": "painn", "member_hyperparameters": {"num_feature": 8}}, "bad hyperparameters"),
    ],
)
def test_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        Committee(ELEMENTS, CUTOFF, **arguments)


def test_members_start_from_different_weights(committee):
    first, second = (dict(member.named_parameters()) for member in committee.members[:2])
    assert not torch.equal(first["embedding.weight"], second["embedding.weight"])


def test_energy_and_forces_are_the_means_of_the_members(committee, ethanol, dtype):
    graph = atoms_to_graph(ethanol, CUTOFF, dtype)
    members = [energy_forces_stress(member_alone(committee, k).to(dtype), graph) for k in range(3)]
    out = energy_forces_stress(committee.to(dtype), graph)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    for k, member in enumerate(members):
        torch.testing.assert_close(out[keys.MEMBER_ENERGIES][k], member[keys.ENERGY], rtol=1e-12, atol=tolerance)
        torch.testing.assert_close(out[keys.MEMBER_FORCES][k], member[keys.FORCES], rtol=0, atol=tolerance)
    mean_energy = torch.stack([m[keys.ENERGY] for m in members]).mean(dim=0)
    mean_forces = torch.stack([m[keys.FORCES] for m in members]).mean(dim=0)
    torch.testing.assert_close(out[keys.ENERGY], mean_energy, rtol=1e-12, atol=tolerance)
    torch.testing.assert_close(out[keys.FORCES], mean_forces, rtol=0, atol=tolerance)


def test_stress_is_the_mean_of_the_members(committee, periodic_atoms):
    stress = evaluate(committee, periodic_atoms, torch.float64, compute_stress=True)[keys.STRESS]
    members = [evaluate(member_alone(committee, k), periodic_atoms, torch.float64, compute_stress=True)[keys.STRESS]
               for k in range(3)]  # fmt: skip
    torch.testing.assert_close(stress, torch.stack(members).mean(dim=0), rtol=0, atol=1e-12)


def test_uncertainties_are_the_spread_of_the_members(committee, ethanol):
    out = energy_forces_stress(committee.double(), atoms_to_graph(ethanol, CUTOFF, torch.float64))
    energies = out[keys.MEMBER_ENERGIES].detach().numpy()[:, 0]  # (K,)
    forces = out[keys.MEMBER_FORCES].detach().numpy()  # (K, n, 3)
    assert out[keys.ENERGY_UNCERTAINTY].item() == pytest.approx(np.std(energies), rel=1e-10)
    per_atom = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=2), axis=0))  # (n,)
    np.testing.assert_allclose(out[keys.FORCES_UNCERTAINTY].detach().numpy(), per_atom, rtol=1e-10)
    assert (per_atom > 0).all() and np.std(energies) > 0


def test_identical_members_have_no_uncertainty(committee, ethanol):
    for member in committee.members[1:]:
        member.load_state_dict(committee.members[0].state_dict())
    out = energy_forces_stress(committee.double(), atoms_to_graph(ethanol, CUTOFF, torch.float64))
    assert out[keys.ENERGY_UNCERTAINTY].item() < 1e-15 * abs(out[keys.ENERGY].item())  # the mean's round-off
    assert out[keys.FORCES_UNCERTAINTY].abs().max().item() < 1e-15


def test_torchscript_gives_the_same_energies(committee, ethanol):
    graph = atoms_to_graph(ethanol, CUTOFF, torch.float32)
    scripted = torch.jit.script(committee)
    for key in (keys.ENERGY, keys.ATOMIC_ENERGIES, keys.MEMBER_ENERGIES):
        torch.testing.assert_close(scripted(graph)[key], committee(graph)[key])


def test_model_file_round_trip(tmp_path, committee, ethanol):
    loaded, content = load_model(save_model(tmp_path / "committee.eqff", committee))
    assert type(loaded) is Committee and content["architecture"] == "committee"
    assert loaded.hyperparameters == committee.hyperparameters
    graph = atoms_to_graph(ethanol, CUTOFF, torch.float32)
    before, after = energy_forces_stress(committee, graph), energy_forces_stress(loaded, graph)
    for key in (keys.ENERGY, keys.FORCES, keys.MEMBER_ENERGIES, keys.ENERGY_UNCERTAINTY, keys.FORCES_UNCERTAINTY):
        assert torch.equal(before[key], after[key]), key


# --- the calculator and eqff md --------------------------------------------------------------


def test_calculator_gives_the_uncertainties(committee, ethanol):
    ethanol.calc = EqffCalculator(committee, dtype="float64")
    expected = energy_forces_stress(committee.double(), atoms_to_graph(ethanol, CUTOFF, torch.float64))
    assert ethanol.get_potential_energy() == pytest.approx(expected[keys.ENERGY].item(), rel=1e-12)
    assert {"energy_uncertainty", "forces_uncertainty"} <= set(ethanol.calc.implemented_properties)
    uncertainty = ethanol.calc.get_property("forces_uncertainty", ethanol)
    assert uncertainty.shape == (len(ethanol),)
    np.testing.assert_allclose(uncertainty, expected[keys.FORCES_UNCERTAINTY].detach().numpy(), rtol=1e-10)
    energy_uncertainty = ethanol.calc.results["energy_uncertainty"]
    assert energy_uncertainty == pytest.approx(expected[keys.ENERGY_UNCERTAINTY].item(), rel=1e-10)


def test_single_model_calculator_gives_no_uncertainty(painn_model, ethanol):
    ethanol.calc = EqffCalculator(painn_model)
    assert "forces_uncertainty" not in ethanol.calc.implemented_properties
    with pytest.raises(PropertyNotImplementedError):
        ethanol.calc.get_property("forces_uncertainty", ethanol)


@pytest.mark.parametrize("implementation", ["python", "torch"])
def test_openmm_force_is_the_committees_mean(tmp_path, committee, ethanol, implementation):
    openmm = pytest.importorskip("openmm")
    from openmm import unit
    from openmmml import MLPotential

    from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM
    from eqff.integrations.openmm import molecule_topology

    path = save_model(tmp_path / "committee.eqff", committee)
    if implementation == "torch":
        pytest.importorskip("openmmtorch")
    system = MLPotential("eqff", modelPath=str(path)).createSystem(
        molecule_topology(ethanol.numbers), precision="double", device="cpu", implementation=implementation
    )
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(ethanol.positions * unit.angstrom)
    state = context.getState(getEnergy=True, getForces=True)
    ethanol.calc = EqffCalculator(path, dtype="float64")
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert energy == pytest.approx(ethanol.get_potential_energy() * EV_IN_KJ_PER_MOL, rel=1e-9)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    np.testing.assert_allclose(forces, ethanol.get_forces() * EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM, rtol=0, atol=1e-6)


@pytest.fixture
def committee_file(tmp_path) -> Path:
    """A committee of two tiny PaiNNs of H, C, O, saved."""
    return save_model(tmp_path / "committee.eqff", make_committee(size=2, elements=[1, 6, 8]))


def test_md_logs_the_uncertainty(tmp_path, committee_file, ethanol, capsys):
    write(tmp_path / "ethanol.xyz", ethanol)
    log = tmp_path / "md.csv"
    assert main(["md", "--model", str(committee_file), "--structure", str(tmp_path / "ethanol.xyz"), "--steps", "10",
                 "--interval", "5", "--log", str(log)]) == 0  # fmt: skip
    rows = list(csv.DictReader(log.open()))
    assert [int(row["step"]) for row in rows] == [0, 5, 10]
    assert all(float(row["max_forces_uncertainty_eV_per_A"]) > 0 for row in rows)
    assert all(float(row["energy_uncertainty_eV"]) > 0 for row in rows)
    assert "force uncertainty   largest" in capsys.readouterr().out


def test_md_stops_when_the_uncertainty_passes_the_threshold(tmp_path, committee_file, ethanol, capsys):
    write(tmp_path / "ethanol.xyz", ethanol)
    trajectory = tmp_path / "md.traj"
    assert main(["md", "--model", str(committee_file), "--structure", str(tmp_path / "ethanol.xyz"), "--steps", "50",
                 "--interval", "10", "--max-uncertainty", "1e-6", "--trajectory", str(trajectory)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "eqff md: stopped at step 1 (0.0005 ps): the force uncertainty of atom" in out
    assert "above --max-uncertainty 1e-06 eV/Å" in out
    assert len(read(trajectory, ":")) == 2  # step 0, and the step that passed the threshold


def test_md_threshold_needs_a_committee(tmp_path, ethanol):
    write(tmp_path / "ethanol.xyz", ethanol)
    with pytest.raises(SystemExit, match="error: --max-uncertainty needs a committee model"):
        main(["md", "--structure", str(tmp_path / "ethanol.xyz"), "--steps", "5", "--max-uncertainty", "0.1"])


# --- training --------------------------------------------------------------------------------


def test_loss_is_the_mean_of_the_members_losses():
    batch = {keys.ENERGY: torch.tensor([1.0, 2.0], dtype=torch.float64), keys.BATCH: torch.tensor([0, 0, 1]),
             keys.FORCES: torch.zeros(3, 3, dtype=torch.float64)}  # fmt: skip
    member_energies = torch.tensor([[1.5, 2.0], [0.0, 3.0]], dtype=torch.float64)  # (K, B)
    member_forces = torch.arange(18, dtype=torch.float64).reshape(2, 3, 3) / 10  # (K, n, 3)
    predicted = {keys.ENERGY: member_energies.mean(0), keys.FORCES: member_forces.mean(0),
                 keys.MEMBER_ENERGIES: member_energies, keys.MEMBER_FORCES: member_forces}  # fmt: skip
    for kind in ("mse", "l2mae"):
        loss = EnergyForceLoss(2.0, 10.0, kind)
        members = [loss({keys.ENERGY: member_energies[k], keys.FORCES: member_forces[k]}, batch) for k in range(2)]
        for term in ("loss", "energy", "forces"):
            assert loss(predicted, batch)[term].item() == pytest.approx(np.mean([m[term].item() for m in members]))


def test_config_trains_a_committee_by_its_size_only():
    content = {"name": "x", "data": {"dataset": "rmd17", "molecule": "ethanol"},
               "model": {"architecture": "committee", "hyperparameters": {"size": 2}}}  # fmt: skip
    with pytest.raises(ConfigError, match="train a committee with 'model.committee_size: K'"):
        parse_config(content)
    content["model"] = {"architecture": "painn", "committee_size": 0}
    with pytest.raises(ConfigError, match="committee_size"):
        parse_config(content)


def tiny_committee_config(tmp_path: Path, **changes) -> dict:
    """training/tiny-ethanol.yaml as a committee of two, one epoch, writing into ``tmp_path``."""
    content = yaml.safe_load((TRAINING_DIR / "tiny-ethanol.yaml").read_text())
    content.update(name="tiny-committee", output_dir=str(tmp_path))
    content["data"]["root"] = DATA_ROOT
    content["model"]["committee_size"] = 2
    content["training"]["max_epochs"] = 1
    content.update(changes)
    return content


@pytest.mark.skipif(not HAVE_RMD17, reason="rMD17 data not found (set EQFF_DATA)")
def test_train_a_tiny_committee_and_resume(tmp_path, ethanol):
    config = parse_config(tiny_committee_config(tmp_path))
    result = train(config, progress_bar=False)
    model, content = load_model(result.model_path)
    assert type(model) is Committee and model.num_members == 2
    assert model.hyperparameters["member_hyperparameters"] == {"num_features": 16, "num_interactions": 1, "num_radial": 8}
    assert model.hyperparameters["cutoff"] == 4.0
    assert float(model.scale_shift.scale) != 1.0  # fitted to the frames
    assert all(float(member.scale_shift.scale) == 1.0 for member in model.members)  # the committee's apply
    ethanol.calc = EqffCalculator(result.model_path)
    assert ethanol.calc.get_property("energy_uncertainty", ethanol) > 0
    resumed = train(config.model_copy(update={"training": config.training.model_copy(update={"max_epochs": 2})}),
                    resume=True, progress_bar=False)  # fmt: skip
    assert resumed.epochs == 2


# --- frames chosen by uncertainty ------------------------------------------------------------


def toy_pool(count: int, teacher: torch.nn.Module) -> list:
    """``count`` rattled ethanol molecules, every third one distorted more, labelled by ``teacher``."""
    structures = []
    for index in range(count):
        atoms = build_molecule("CH3CH2OH")
        atoms.rattle(0.25 if index % 3 == 0 else 0.03, seed=index)
        out = evaluate(teacher, atoms, torch.float64)
        atoms.calc = SinglePointCalculator(atoms, energy=out[keys.ENERGY].item(), forces=out[keys.FORCES].numpy())
        structures.append(atoms)
    return structures


def test_committee_predictions_score_frames_as_the_calculator(committee):
    pool = toy_pool(5, committee)
    predictions = committee_predictions(committee, [Frame.from_atoms(atoms) for atoms in pool], batch_size=2)
    for index, atoms in enumerate(pool):
        atoms.calc = EqffCalculator(committee)
        per_atom = atoms.calc.get_property("forces_uncertainty", atoms)
        assert predictions.forces_uncertainty[index] == pytest.approx(np.sqrt(np.mean(per_atom**2)), rel=1e-5)
        np.testing.assert_allclose(predictions.forces[index], atoms.get_forces(), rtol=0, atol=1e-5)


def test_most_uncertain_takes_the_highest_scores_first():
    assert most_uncertain(np.array([0.1, 0.5, 0.3, 0.5, 0.2]), 3).tolist() == [1, 3, 2]


def test_select_command_picks_the_most_uncertain_frames(tmp_path, committee_file, capsys):
    committee, _ = load_model(committee_file)
    pool = toy_pool(9, make_committee(elements=[1, 6, 8], seed=1))
    write(tmp_path / "pool.xyz", pool)
    scores = committee_predictions(committee, [Frame.from_atoms(atoms) for atoms in pool]).forces_uncertainty
    chosen_file, scores_file = tmp_path / "chosen.xyz", tmp_path / "scores.json"
    assert main(["select", str(committee_file), "--structures", str(tmp_path / "pool.xyz"), "--count", "3",
                 "--output", str(chosen_file), "--json", str(scores_file)]) == 0  # fmt: skip
    expected = np.argsort(-scores)[:3].tolist()
    assert json.loads(scores_file.read_text())["chosen"] == expected
    chosen = read(chosen_file, ":")
    assert [atoms.info["pool_index"] for atoms in chosen] == expected
    np.testing.assert_allclose(chosen[0].positions, pool[expected[0]].positions, rtol=0, atol=1e-7)
    assert "eqff select: model" in capsys.readouterr().out


def test_evaluate_reports_how_the_uncertainty_ranks_the_errors(tmp_path, committee_file, capsys):
    committee, _ = load_model(committee_file)
    pool = toy_pool(9, make_committee(elements=[1, 6, 8], seed=1))
    write(tmp_path / "labelled.xyz", pool)
    frames = [Frame.from_atoms(atoms, atoms.get_potential_energy(), atoms.get_forces()) for atoms in pool]
    spearman, mean_uncertainty = uncertainty_against_error(committee_predictions(committee, frames), frames)
    assert main(["evaluate", str(committee_file), "--extxyz", str(tmp_path / "labelled.xyz"),
                 "--json", str(tmp_path / "errors.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "errors.json").read_text())
    assert report["uncertainty_error_spearman"] == pytest.approx(spearman, abs=1e-6)
    assert report["forces_uncertainty_mean_meV_per_A"] == pytest.approx(mean_uncertainty, rel=1e-6)
    assert f"Spearman rank correlation of each frame's force uncertainty and force error {spearman:.3f}" in capsys.readouterr().out


def test_learning_curve_on_a_toy_pool(tmp_path):
    """Two rounds on a toy pool labelled by a random teacher: uncertainty adds the frames the first
    round's committee is least sure of; random adds the next ones of the pool's order."""
    write(tmp_path / "pool.xyz", toy_pool(30, make_committee(elements=[1, 6, 8], seed=1)))
    config = parse_config({
        "name": "toy", "output_dir": str(tmp_path / "runs"),
        "data": {"dataset": "extxyz", "path": str(tmp_path / "pool.xyz"), "num_train": 16, "num_validation": 4},
        "model": {"architecture": "painn", "hyperparameters": {"cutoff": CUTOFF, **MEMBER}, "committee_size": 2},
        "training": {"batch_size": 4, "validation_batch_size": 4, "max_epochs": 1, "log_every_n_steps": 1},
    })  # fmt: skip
    output = tmp_path / "curve"
    results = learning_curve(config, output, initial=4, step=3, rounds=2)
    assert [(r.strategy, r.num_labelled) for r in results] == [
        ("uncertainty", 4), ("random", 4), ("uncertainty", 7), ("random", 7)
    ]
    assert results[0].model == results[1].model  # the first round is shared
    assert all(np.isfinite(r.forces_mae) and r.mean_forces_uncertainty > 0 for r in results)
    assert json.loads((output / "active-learning.json").read_text())["rounds"][2]["num_labelled"] == 7
    assert (output / "active-learning.png").is_file()

    [first] = read_split(output / "toy-uncertainty-0004" / "split.json")
    [by_uncertainty] = read_split(output / "toy-uncertainty-0007" / "split.json")
    [at_random] = read_split(output / "toy-random-0007" / "split.json")
    pool_order = np.random.default_rng(0).permutation(30)[:16].tolist()
    assert first["train"] == pool_order[:4] and at_random["train"] == pool_order[:7]
    remaining = pool_order[4:]
    pool = read(tmp_path / "pool.xyz", ":")
    first_model, _ = load_model(results[0].model)
    scores = committee_predictions(first_model, [Frame.from_atoms(pool[i]) for i in remaining]).forces_uncertainty
    assert by_uncertainty["train"][4:] == [remaining[j] for j in np.argsort(-scores)[:3]]
