"""Training and evaluation: configs, splits, statistics, tiny runs, resume, atomic checkpoints, metrics.

Runs use tiny models and a few frames (rMD17 ethanol from ``$EQFF_DATA``, or a hand-made
extended-XYZ file), so the whole module takes seconds on a CPU.
"""

import copy
import csv
import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write
from lightning.pytorch.callbacks import EarlyStopping

import eqff
import eqff.train.lightning
from eqff.cli import main
from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.data.frames import Frame
from eqff.data.units import KCAL_PER_MOL
from eqff.errors import DataFileError, ModelFileError, UnknownElementError
from eqff.model_file import read_model_file, save_model
from eqff.models import PaiNN, build_model
from eqff.nn.forces import energy_forces_stress
from eqff.rotations import random_rotations
from eqff.train.augment import rotate_frames
from eqff.train.checkpoint import AtomicCheckpointIO
from eqff.train.config import ConfigError, load_config, parse_config
from eqff.train.dataset import frame_to_graph
from eqff.train.lightning import MONITOR, ConfiguredEarlyStopping, LitPotential
from eqff.train.loss import EnergyForceLoss
from eqff.train.metrics import evaluate
from eqff.train.run import build_initial_model, split_frames, train
from eqff.train.run_folder import RunFolderError, keep_earlier_metrics
from eqff.train.splits import random_split, read_split
from eqff.train.stats import energy_statistics

TRAINING_DIR = Path(__file__).resolve().parent.parent / "training"
DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_RMD17 = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_ethanol_train_01.npz").is_file()
needs_rmd17 = pytest.mark.skipif(not HAVE_RMD17, reason="rMD17 data not found (set EQFF_DATA)")


def tiny_config(tmp_path: Path, name: str = "tiny", **training) -> dict:
    """The tiny-ethanol config as a dict, writing into ``tmp_path``, with training overrides."""
    content = yaml.safe_load((TRAINING_DIR / "tiny-ethanol.yaml").read_text())
    content.update(name=name, output_dir=str(tmp_path))
    content["data"]["root"] = DATA_ROOT
    content["training"].update(training)
    return content


def read_metrics(run_dir: Path, column: str) -> list[float]:
    with open(run_dir / "metrics.csv") as file:
        return [float(row[column]) for row in csv.DictReader(file) if row.get(column)]


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(TRAINING_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    assert load_config(path).name == path.stem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(epochs=3), "unknown key 'epochs'"),
        (lambda c: c["data"].update(molecul="ethanol"), "unknown key 'data.molecul' (did you mean 'molecule'?)"),
        (lambda c: c["training"].update(bach_size=3), "unknown key 'training.bach_size' (did you mean 'batch_size'?)"),
        (lambda c: c["model"]["hyperparameters"].update(num_feature=8), "did you mean 'num_features'?"),
        (lambda c: c["data"].pop("molecule"), "dataset 'rmd17' needs 'molecule'"),
        (lambda c: c["data"].update(molecule="ethanl"), "unknown molecule 'ethanl' (did you mean 'ethanol'?)"),
        (lambda c: c["data"].update(energy_unit="kcal"), "unknown energy unit 'kcal'"),
        (lambda c: c["optimiser"].update(name="sgd"), "optimiser.name"),
        (lambda c: c["training"].update(batch_size=0), "training.batch_size"),
    ],
)
def test_config_errors_name_the_key_and_file(tmp_path, change, expected):
    content = tiny_config(tmp_path)
    change(content)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content, allow_unicode=True))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_overrides_set_nested_values_parsed_as_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path), allow_unicode=True))
    config = load_config(path, ["name=other", "model.hyperparameters.cutoff=4.0", "training.max_time_minutes=null"])
    assert config.name == "other"
    assert config.model.hyperparameters["cutoff"] == 4.0
    assert config.training.max_time_minutes is None
    assert load_config(path).name == "tiny"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("name", "is not KEY=VALUE"),
        ("=3", "is not KEY=VALUE"),
        ("name.first=a", "'name' is not a section"),
        ("training.bach_size=3", "unknown key 'training.bach_size' (did you mean 'batch_size'?)"),
        ("training.batch_size=[1", "not valid YAML"),
    ],
)
def test_override_errors_name_the_override(tmp_path, override, expected):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path), allow_unicode=True))
    with pytest.raises(ConfigError) as error:
        load_config(path, [override])
    assert expected in str(error.value)


def test_config_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(path)


# --- splits and statistics -------------------------------------------------------------------


def test_split_is_reproducible_and_disjoint():
    split = random_split(10, 4, 3, seed=3)
    assert split == random_split(10, 4, 3, seed=3)
    # numpy's default_rng(3).permutation(10); fixed so that a change of generator is noticed
    assert split == {"train": [9, 6, 0, 2], "validation": [1, 4, 7], "test": [5, 3, 8]}
    assert random_split(10, 4, 3, seed=4) != split
    with pytest.raises(ValueError, match="cannot take"):
        random_split(5, 4, 3, seed=0)


def test_energy_statistics_recover_per_element_energies():
    rng = np.random.default_rng(0)
    per_element = {1: -13.6, 8: -2041.0}
    frames = []
    for numbers in ([8, 1, 1], [8, 8, 1, 1], [8, 1], [1, 1]):
        forces = rng.normal(scale=0.5, size=(len(numbers), 3))
        energy = sum(per_element[z] for z in numbers)
        frames.append(Frame(np.array(numbers), rng.normal(size=(len(numbers), 3)), energy, forces))
    offsets, scale = energy_statistics(frames, [1, 8])
    np.testing.assert_allclose(offsets.numpy(), [-13.6, -2041.0], atol=1e-9)
    all_forces = np.concatenate([f.forces.ravel() for f in frames])
    assert scale == pytest.approx(np.sqrt(np.mean(all_forces**2)))


@pytest.mark.parametrize("kind", ["mse", "l2mae"])
def test_loss_terms_match_hand_computed_errors(kind):
    # two frames of 2 and 1 atoms; energy errors 0.4 and -0.3 eV, i.e. 0.2 and -0.3 eV/atom
    batch = {
        keys.ENERGY: torch.tensor([1.0, 2.0], dtype=torch.float64),
        keys.FORCES: torch.zeros(3, 3, dtype=torch.float64),
        keys.BATCH: torch.tensor([0, 0, 1]),
    }
    force_errors = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, -2.0, 0.0]])  # lengths 5, 1, 2
    predicted = {keys.ENERGY: torch.tensor([1.4, 1.7]), keys.FORCES: force_errors}
    losses = EnergyForceLoss(energy_weight=2.0, forces_weight=10.0, kind=kind)(predicted, batch)
    if kind == "mse":
        energy, forces = (0.2**2 + 0.3**2) / 2, (9 + 16 + 1 + 4) / 9
    else:
        energy, forces = (0.2 + 0.3) / 2, (5 + 1 + 2) / 3
    assert losses["energy"].item() == pytest.approx(energy, rel=1e-6)
    assert losses["forces"].item() == pytest.approx(forces, rel=1e-6)
    assert losses["loss"].item() == pytest.approx(2 * energy + 10 * forces, rel=1e-6)


@pytest.mark.parametrize("kind", ["mse", "l2mae"])
def test_torque_term_is_the_net_torque_of_each_isolated_frames_force_error(kind):
    """Frame 0 (two atoms 2 Å apart on x, opposite force errors along y): torque (0, 0, 2) eV
    about its centroid; frame 1 is periodic and left out; a rigid shift of the force errors
    (no torque) adds nothing."""
    batch = {
        keys.ENERGY: torch.zeros(2, dtype=torch.float64),
        keys.FORCES: torch.zeros(4, 3, dtype=torch.float64),
        keys.POSITIONS: torch.tensor([[1.0, 5.0, 0.0], [3.0, 5.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        keys.BATCH: torch.tensor([0, 0, 1, 1]),
        keys.PBC: torch.tensor([[False] * 3, [True] * 3]),
    }
    force_errors = torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 7.0, 0.0], [0.0, -7.0, 0.0]])
    predicted = {keys.ENERGY: torch.zeros(2), keys.FORCES: force_errors}
    plain = EnergyForceLoss(energy_weight=1.0, forces_weight=1.0, kind=kind)(predicted, batch)
    assert "torque" not in plain
    losses = EnergyForceLoss(energy_weight=1.0, forces_weight=1.0, kind=kind, torque_weight=3.0)(predicted, batch)
    expected = 4.0 / 3 if kind == "mse" else 2.0  # τ = (0, 0, 2): mean squared component, or length
    assert losses["torque"].item() == pytest.approx(expected, rel=1e-6)
    assert losses["loss"].item() == pytest.approx(plain["loss"].item() + 3.0 * expected, rel=1e-6)
    shifted = {**predicted, keys.FORCES: force_errors + torch.tensor([0.5, -0.2, 0.3])}
    shifted_losses = EnergyForceLoss(1.0, 1.0, kind, torque_weight=3.0)(shifted, batch)
    assert shifted_losses["torque"].item() == pytest.approx(expected, rel=1e-6)


def test_torque_term_is_zero_for_an_invariant_model(painn_model, molecule):
    """PaiNN's forces have no net torque, so against torque-free labels the term vanishes."""
    graph = atoms_to_graph(molecule, painn_model.cutoff, torch.float64)
    predicted = energy_forces_stress(copy.deepcopy(painn_model).double(), graph)
    batch = {**graph, keys.ENERGY: predicted[keys.ENERGY].detach(), keys.FORCES: torch.zeros_like(predicted[keys.FORCES])}
    losses = EnergyForceLoss(1.0, 1.0, "mse", torque_weight=1.0)(predicted, batch)
    assert losses["torque"].item() < 1e-24


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.arange(4.0)}, path)
    real_save = torch.save

    def crash_halfway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial checkpoint bytes")
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="simulated crash"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(4)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    previous = io.load_checkpoint(path, weights_only=True)
    assert previous["step"] == 1 and torch.equal(previous["weights"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


# --- training runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny-ethanol config trained for 3 epochs."""
    if not HAVE_RMD17:
        pytest.skip("rMD17 data not found (set EQFF_DATA)")
    config = parse_config(tiny_config(tmp_path_factory.mktemp("runs"), max_epochs=3))
    return config, train(config, progress_bar=False)


def test_tiny_run_lowers_the_loss_and_writes_its_folder(tiny_run):
    config, result = tiny_run
    run_dir = result.run_dir
    assert result.epochs == 3 and len(result.epoch_seconds) == 3
    losses = read_metrics(run_dir, "train/loss_epoch")
    maes = read_metrics(run_dir, "val/forces_mae")
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert maes[-1] < maes[0] and result.best_forces_mae == pytest.approx(min(maes))
    for name in ("config.yaml", "split.json", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (run_dir / name).is_file(), name
    [split] = read_split(run_dir / "split.json")
    assert split["num_frames"] == 1000 and split["test"] is None
    assert split["train"] == random_split(1000, 20, 5, seed=0)["train"]
    assert result.model_path == run_dir / "tiny.eqff"
    metadata = read_model_file(result.model_path)["metadata"]
    assert metadata["split_file"] == "split.json" and metadata["config"]["name"] == "tiny"
    assert metadata["training_domain"] == {"compositions": {"C2H6O": 20}, "elements": {"C": 40, "H": 120, "O": 20}}
    assert metadata["example_structure"]["atomic_numbers"] == [6, 6, 8, 1, 1, 1, 1, 1, 1]  # rMD17 ethanol order
    example = metadata["example_structure"]
    atoms = Atoms(numbers=example["atomic_numbers"], positions=example["positions"])
    atoms.calc = eqff.EqffCalculator(result.model_path)
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_forces().shape == (9, 3)


def test_new_run_refuses_an_existing_folder_and_resume_needs_one(tiny_run, tmp_path):
    config, _ = tiny_run
    with pytest.raises(RunFolderError, match="--resume"):
        train(config, progress_bar=False)
    with pytest.raises(RunFolderError, match="cannot resume"):
        train(parse_config(tiny_config(tmp_path, name="never-ran")), resume=True, progress_bar=False)


def test_a_resume_without_data_leaves_the_run_folder_as_it_was(tiny_run, tmp_path):
    config, result = tiny_run
    before = sorted(path.name for path in result.run_dir.iterdir())
    with pytest.raises(DataFileError, match="no-data does not exist"):
        train(config, resume=True, data_root=str(tmp_path / "no-data"), progress_bar=False)
    assert sorted(path.name for path in result.run_dir.iterdir()) == before
    assert "metrics.1.csv" not in before


def test_earlier_metrics_never_overwrite_a_kept_segment(tmp_path):
    """With metrics.1.csv and metrics.3.csv kept (metrics.2.csv deleted by hand), the next is metrics.4.csv."""
    for name in ("metrics.1.csv", "metrics.3.csv", "metrics.csv"):
        (tmp_path / name).write_text(name)
    keep_earlier_metrics(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.1.csv", "metrics.3.csv", "metrics.4.csv"]
    assert (tmp_path / "metrics.3.csv").read_text() == "metrics.3.csv"
    assert (tmp_path / "metrics.4.csv").read_text() == "metrics.csv"


def test_resuming_a_finished_run_keeps_its_metrics_file(tiny_run):
    """A resume that trains no epoch (the run had reached max_epochs) logs nothing and renames nothing."""
    config, result = tiny_run
    metrics = (result.run_dir / "metrics.csv").read_text()
    assert train(config, resume=True, progress_bar=False).epochs == 3
    assert (result.run_dir / "metrics.csv").read_text() == metrics
    assert not list(result.run_dir.glob("metrics.*.csv"))


def test_initial_weights_start_a_run_from_a_model_file(tiny_run, tmp_path):
    _, result = tiny_run
    content = tiny_config(tmp_path, name="continued")
    content["model"]["initial_weights"] = str(result.model_path)
    config = parse_config(content)
    [source], _ = split_frames(config, None)
    started = build_initial_model(config, source.train).state_dict()
    stored = read_model_file(result.model_path)["state_dict"]
    assert started.keys() == stored.keys()
    offsets = "scale_shift.offsets"  # refitted to the training frames: see tests/test_fine_tuning.py
    assert all(torch.equal(started[name], stored[name]) for name in stored if name != offsets)
    assert not torch.equal(started[offsets], stored[offsets])

    content["model"]["hyperparameters"]["num_features"] = 32
    with pytest.raises(ConfigError, match=r"num_features: 16 in the file, 32 in the config"):
        build_initial_model(parse_config(content), source.train)


@needs_rmd17
def test_initial_weights_of_ponita_run_on_the_configs_grid(tmp_path):
    """PONITA's weights do not depend on its sphere grid: a model file of 8 orientations starts a
    run on 16, with every weight but the grid (and the refitted offsets) unchanged; PNITA's do not fit."""
    content = tiny_config(tmp_path, name="regridded")
    size = dict(cutoff=4.0, num_features=8, num_layers=1, basis_dim=8, num_radial=4)
    content["model"] = {"architecture": "ponita", "hyperparameters": {**size, "num_orientations": 16}}
    config = parse_config(content)
    [source], _ = split_frames(config, None)
    start_file = tmp_path / "coarse.eqff"
    save_model(start_file, build_model("ponita", {"elements": [1, 6, 8], **size, "num_orientations": 8}))
    content["model"]["initial_weights"] = str(start_file)
    started = build_initial_model(parse_config(content), source.train)
    assert len(started.orientations) == 16
    stored = read_model_file(start_file)["state_dict"]
    assert all(torch.equal(started.state_dict()[name], stored[name])
               for name in stored if name not in ("orientations", "scale_shift.offsets"))  # fmt: skip

    content["model"]["hyperparameters"]["num_orientations"] = 0
    with pytest.raises(ConfigError, match="0 orientations"):
        build_initial_model(parse_config(content), source.train)


def test_resuming_a_run_does_not_need_its_initial_weights_file(tiny_run, tmp_path):
    """The checkpoint holds the weights, so a run folder resumes after the file it started from is gone."""
    _, result = tiny_run
    start_file = tmp_path / "start.eqff"
    start_file.write_bytes(result.model_path.read_bytes())
    content = tiny_config(tmp_path, name="from-file", max_epochs=1)
    content["model"]["initial_weights"] = str(start_file)
    train(parse_config(content), progress_bar=False)
    start_file.unlink()
    content["training"]["max_epochs"] = 2
    assert train(parse_config(content), resume=True, progress_bar=False).epochs == 2
    with pytest.raises(ModelFileError, match="start.eqff"):  # a new run still needs it
        train(parse_config({**content, "name": "new-from-file"}), progress_bar=False)


def test_warmup_scales_the_first_steps(tiny_run, tmp_path):
    """From the same weights, one epoch (4 steps at lr × (step + 1) / 1000) moves them far less with warm-up."""
    _, result = tiny_run
    start = read_model_file(result.model_path)["state_dict"]

    def weight_change(warmup_steps: int) -> float:
        content = tiny_config(tmp_path, name=f"warmup-{warmup_steps}", max_epochs=1, ema_decay=None)
        content["model"]["initial_weights"] = str(result.model_path)
        content["schedule"]["warmup_steps"] = warmup_steps
        trained = read_model_file(train(parse_config(content), progress_bar=False).model_path)["state_dict"]
        weights = [name for name in start if name != "scale_shift.offsets"]  # offsets are refitted, not trained
        return max(float((trained[name] - start[name]).abs().max()) for name in weights)

    assert 0 < weight_change(1000) < 0.01 * weight_change(0)


@needs_rmd17
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    schedule = {"name": "cosine", "min_lr": 0.0}  # the learning rate changes every epoch
    uninterrupted = tiny_config(tmp_path, name="uninterrupted", max_epochs=4)
    interrupted = tiny_config(tmp_path, name="interrupted", max_epochs=4)
    uninterrupted["schedule"] = interrupted["schedule"] = schedule
    train(parse_config(uninterrupted), progress_bar=False)

    def crash_in_third_epoch(self):
        if self.current_epoch == 2:
            raise RuntimeError("simulated kill")

    with monkeypatch.context() as patch:
        patch.setattr(LitPotential, "on_train_epoch_start", crash_in_third_epoch)
        with pytest.raises(RuntimeError, match="simulated kill"):
            train(parse_config(interrupted), progress_bar=False)
    result = train(parse_config(interrupted), resume=True, progress_bar=False)
    assert result.epochs == 4 and len(result.epoch_seconds) == 2
    run_dir = tmp_path / "interrupted"  # the metrics of the crashed segment are kept beside the new ones
    assert set(read_metrics(run_dir, "epoch")) == {2.0, 3.0}
    with open(run_dir / "metrics.1.csv") as file:
        assert {float(row["epoch"]) for row in csv.DictReader(file) if row["epoch"]} == {0.0, 1.0}

    load = AtomicCheckpointIO().load_checkpoint
    a = load(tmp_path / "uninterrupted" / "checkpoints" / "last.ckpt")
    b = load(tmp_path / "interrupted" / "checkpoints" / "last.ckpt")
    for key in ("state_dict", "current_model_state"):  # EMA and raw weights
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert a["eqff_lr_scheduler"] == b["eqff_lr_scheduler"]
    assert a["optimizer_states"][0]["param_groups"] == b["optimizer_states"][0]["param_groups"]
    model_a = read_model_file(tmp_path / "uninterrupted" / "uninterrupted.eqff")["state_dict"]
    model_b = read_model_file(tmp_path / "interrupted" / "interrupted.eqff")["state_dict"]
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)


@pytest.mark.compiles
def test_compiled_training_steps_reach_the_weights_of_eager_ones(tiny_run, tmp_path):
    """training.compile changes how the steps' energies and forces are computed, not what they are."""
    eager_config, eager_result = tiny_run
    content = tiny_config(tmp_path, name="compiled", max_epochs=eager_config.training.max_epochs, compile=True)
    compiled_result = train(parse_config(content), progress_bar=False)
    eager_weights = read_model_file(eager_result.model_path)["state_dict"]
    compiled_weights = read_model_file(compiled_result.model_path)["state_dict"]
    assert eager_weights.keys() == compiled_weights.keys()
    for name, eager in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], eager, rtol=1e-4, atol=1e-5, msg=name)
    # the compiled kernels round differently: bit-identical weights would mean no compilation
    assert any(not torch.equal(compiled_weights[name], eager) for name, eager in eager_weights.items())
    assert read_metrics(tmp_path / "compiled", MONITOR) == pytest.approx(
        read_metrics(eager_result.run_dir, MONITOR), rel=1e-4
    )


def test_resume_keeps_the_configs_early_stopping_patience():
    """Lightning restores the checkpoint's patience; eqff's callback keeps the config's and reads
    the state that Lightning's own EarlyStopping wrote."""
    written = EarlyStopping(MONITOR, patience=300, mode="min")
    written.wait_count, written.best_score = 120, torch.tensor(4.8)
    resumed = ConfiguredEarlyStopping(patience=700)
    assert resumed.state_key == written.state_key
    resumed.load_state_dict(written.state_dict())
    assert resumed.patience == 700 and resumed.wait_count == 120 and float(resumed.best_score) == pytest.approx(4.8)


@needs_rmd17
def test_time_budget_stops_after_an_epoch(tmp_path):
    config = parse_config(tiny_config(tmp_path, max_epochs=50, max_time_minutes=1e-4))
    result = train(config, progress_bar=False)
    assert result.epochs == 1 and result.model_path.is_file()


# --- random rotations of training frames ----------------------------------------------------


def test_random_rotations_are_proper_and_reproducible():
    rotations = random_rotations(4, seed=3)
    identity = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), identity, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(4, dtype=torch.float64))
    assert torch.equal(rotations, random_rotations(4, seed=3))
    assert not torch.allclose(rotations, random_rotations(4, seed=4))


def test_rotated_frames_carry_the_forces_an_invariant_model_predicts_for_them():
    """Positions, cell and force labels turn together: PaiNN's predictions on the rotated frames
    equal the rotated labels, for a molecule and a periodic crystal in one batch."""
    model = PaiNN([1, 6, 8, 14], cutoff=3.0, num_features=8, num_interactions=2, num_radial=4).double().eval()
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=1)
    graph = collate([atoms_to_graph(molecule("CH3CH2OH"), 3.0), atoms_to_graph(crystal, 3.0)])
    predicted = energy_forces_stress(model, graph)
    graph[keys.ENERGY], graph[keys.FORCES] = predicted[keys.ENERGY].detach(), predicted[keys.FORCES].detach()
    rotated = rotate_frames(graph, random_rotations(2, seed=0))
    assert not torch.allclose(rotated[keys.POSITIONS], graph[keys.POSITIONS])
    assert torch.equal(rotated[keys.CELL_SHIFTS], graph[keys.CELL_SHIFTS])
    on_rotated = energy_forces_stress(model, rotated)
    assert torch.allclose(on_rotated[keys.ENERGY], graph[keys.ENERGY], rtol=1e-12)
    assert torch.allclose(on_rotated[keys.FORCES], rotated[keys.FORCES], atol=1e-10)


@needs_rmd17
def test_random_rotations_turn_every_training_step_differently(tmp_path, monkeypatch):
    drawn = []

    def recording_rotate_frames(graph, rotations):
        drawn.append(rotations)
        return rotate_frames(graph, rotations)

    monkeypatch.setattr(eqff.train.lightning, "rotate_frames", recording_rotate_frames)
    train(parse_config(tiny_config(tmp_path, max_epochs=1, random_rotations=True)), progress_bar=False)
    assert len(drawn) == 4  # 20 training frames in batches of 5
    assert all(not torch.allclose(a, b) for a, b in itertools.combinations(drawn, 2))


# --- own data and the command line -----------------------------------------------------------


def write_own_data(path: Path, numbers: list[int], num_frames: int) -> list[Frame]:
    """Rattled copies of one molecule labelled by a harmonic bond model, written in kcal/mol."""
    rng = np.random.default_rng(1)
    reference = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0], [0.5, 0.5, 1.0]])[: len(numbers)]
    structures, frames = [], []
    for _ in range(num_frames):
        positions = reference + rng.normal(scale=0.05, size=reference.shape)
        displacement = positions - reference
        energy, forces = -2000.0 + 10.0 * np.sum(displacement**2), -20.0 * displacement  # eV, eV/Å
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["E_total"] = energy / KCAL_PER_MOL
        atoms.arrays["F_total"] = forces / KCAL_PER_MOL
        structures.append(atoms)
        frames.append(Frame(np.array(numbers), positions, energy, forces))
    write(path, structures, format="extxyz")
    return frames


def test_training_on_own_extxyz_data(tmp_path):
    write_own_data(tmp_path / "water.xyz", [8, 1, 1], 12)
    content = tiny_config(tmp_path, name="own", max_epochs=2)
    content["data"] = {
        "dataset": "extxyz", "path": "water.xyz", "root": str(tmp_path), "energy_key": "E_total",
        "forces_key": "F_total", "energy_unit": "kcal/mol", "num_train": 8, "num_validation": 2, "seed": 5,
    }
    result = train(parse_config(content), progress_bar=False)
    [split] = read_split(result.run_dir / "split.json")
    assert split["train"] == random_split(12, 8, 2, seed=5)["train"] and len(split["test"]) == 2
    assert read_model_file(result.model_path)["hyperparameters"]["elements"] == [1, 8]


@needs_rmd17
def test_cli_train_and_evaluate(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, name="cli", max_epochs=1), allow_unicode=True))
    assert main(["train", str(config), "--no-progress"]) == 0
    assert "epochs/hour" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="^error: .*already holds a run; continue it with --resume"):
        main(["train", str(config), "--no-progress"])
    model = tmp_path / "cli" / "cli.eqff"
    report = tmp_path / "report.json"
    monkeypatch.setenv("EQFF_DATA", DATA_ROOT)
    args = ["evaluate", str(model), "--dataset", "rmd17", "--molecule", "ethanol", "--part", "test",
            "--max-frames", "7", "--json", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "meV/Å" in out and "kcal/mol" in out
    results = json.loads(report.read_text())
    assert results["num_frames"] == 7
    assert results["energy_mae_kcal_per_mol"] == pytest.approx(results["energy_mae_meV"] * 1e-3 / KCAL_PER_MOL)
    split_file = str(tmp_path / "cli" / "split.json")
    assert main(["evaluate", str(model), "--split-file", split_file, "--part", "validation"]) == 0
    assert "5 frames" in capsys.readouterr().out


# --- evaluation ------------------------------------------------------------------------------


def constant_model() -> PaiNN:
    """A float64 PaiNN whose readout is zero: E = Σ offsets (H −13.6 eV, O −2041 eV), F = 0."""
    model = PaiNN([1, 8], cutoff=3.0, num_features=8, num_interactions=1, num_radial=4).double()
    for parameter in model.readout.parameters():
        torch.nn.init.zeros_(parameter)
    model.scale_shift.set_statistics(torch.tensor([-13.6, -2041.0], dtype=torch.float64), 1.0)
    return model.eval()


def test_evaluate_gives_hand_computed_errors():
    rng = np.random.default_rng(2)
    energy_errors = np.array([0.01, -0.03, 0.02])  # eV: model minus label
    frames, force_labels = [], []
    for error in energy_errors:
        forces = rng.normal(scale=0.1, size=(3, 3))  # the model predicts zero forces
        force_labels.append(forces)
        frames.append(Frame(np.array([8, 1, 1]), rng.normal(size=(3, 3)), -2041.0 - 27.2 - error, forces))
    report = evaluate(constant_model(), frames, batch_size=2)
    all_forces = np.concatenate(force_labels).ravel()
    assert report["num_frames"] == 3
    assert report["energy_mae_meV"] == pytest.approx(1e3 * np.abs(energy_errors).mean(), rel=1e-6)
    assert report["energy_rmse_meV"] == pytest.approx(1e3 * np.sqrt((energy_errors**2).mean()), rel=1e-6)
    assert report["energy_mae_kcal_per_mol"] == pytest.approx(np.abs(energy_errors).mean() / KCAL_PER_MOL, rel=1e-6)
    assert report["forces_mae_meV_per_A"] == pytest.approx(1e3 * np.abs(all_forces).mean(), rel=1e-9)
    assert report["forces_rmse_kcal_per_mol_per_A"] == pytest.approx(
        np.sqrt((all_forces**2).mean()) / KCAL_PER_MOL, rel=1e-9
    )


def random_water_frames() -> list[Frame]:
    """Five H2O frames with random positions and labels."""
    rng = np.random.default_rng(3)
    return [
        Frame(np.array([8, 1, 1]), rng.normal(scale=0.8, size=(3, 3)), rng.normal(), rng.normal(size=(3, 3)))
        for _ in range(5)
    ]


def test_evaluate_matches_a_direct_computation():
    torch.manual_seed(0)
    model = PaiNN([1, 8], cutoff=3.0, num_features=8, num_interactions=2, num_radial=4).double().eval()
    frames = random_water_frames()
    report = evaluate(model, frames, batch_size=3)
    energy_errors, force_errors = [], []
    for frame in frames:
        out = energy_forces_stress(model, frame_to_graph(frame, model.cutoff, torch.float64))
        energy_errors.append(out[keys.ENERGY].item() - frame.energy)
        force_errors.append(out[keys.FORCES].detach().numpy() - frame.forces)
    force_errors = np.concatenate(force_errors).ravel()
    assert report["energy_mae_meV"] == pytest.approx(1e3 * np.abs(energy_errors).mean(), rel=1e-9)
    assert report["forces_rmse_meV_per_A"] == pytest.approx(1e3 * np.sqrt((force_errors**2).mean()), rel=1e-9)


def test_evaluate_refuses_unknown_elements(tmp_path, capsys):
    frames = [Frame(np.array([6, 1]), np.array([[0.0, 0, 0], [1.1, 0, 0]]), -1.0, np.zeros((2, 3)))]
    with pytest.raises(UnknownElementError, match=r"data contain C \(6\), which .* knows H \(1\), O \(8\)"):
        evaluate(constant_model(), frames)
    model_path = save_model(tmp_path / "water.eqff", constant_model())
    write_own_data(tmp_path / "ammonia.xyz", [7, 1, 1, 1], 2)
    with pytest.raises(SystemExit, match=r"N \(7\), which the model was not trained on"):
        main(["evaluate", str(model_path), "--extxyz", str(tmp_path / "ammonia.xyz"), "--energy-key", "E_total",
              "--forces-key", "F_total", "--energy-unit", "kcal/mol"])


def test_a_run_folder_copied_elsewhere_resumes_and_exports_its_best_model(tiny_run, tmp_path):
    """Lightning forgets the best checkpoint of a run whose folder moved; the export finds it in the folder."""
    config, result = tiny_run
    shutil.copytree(result.run_dir, tmp_path / config.name)
    moved = parse_config({**config.model_dump(mode="json"), "output_dir": str(tmp_path)})
    resumed = train(moved, resume=True, progress_bar=False)
    assert resumed.best_forces_mae == pytest.approx(result.best_forces_mae)
    assert read_model_file(resumed.model_path)["metadata"]["best_epoch"] == read_model_file(result.model_path)["metadata"]["best_epoch"]
