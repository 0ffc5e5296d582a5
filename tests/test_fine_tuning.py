"""Several data sources in one run, and fine-tuning a trained model on a new molecule's frames.

Tiny runs on rMD17 ethanol (C, H, O) and uracil (C, H, N, O) from ``$EQFF_DATA``.
"""

import json

import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule as ase_molecule

from eqff.cli import main
from eqff.data.frames import Frame
from eqff.model_file import load_model, read_model_file, save_model
from eqff.train.config import ConfigError, parse_config
from eqff.train.dataset import frame_to_graph
from eqff.train.metrics import evaluate
from eqff.train.run import build_initial_model, split_frames, train
from eqff.train.splits import random_split, read_split
from eqff.train.stats import average_num_neighbours, energy_statistics, refit_energy_offsets
from test_training import needs_rmd17, read_metrics, tiny_config

pytestmark = needs_rmd17


def two_molecule_config(tmp_path, name: str = "two", **training) -> dict:
    """The tiny config on ethanol and uracil: 20 training and 5 validation frames of each."""
    content = tiny_config(tmp_path, name=name, **training)
    ethanol = content["data"]
    content["data"] = [ethanol, {**ethanol, "molecule": "uracil", "seed": 1}]
    return content


@pytest.fixture(scope="module")
def two_molecule_run(tmp_path_factory):
    config = parse_config(two_molecule_config(tmp_path_factory.mktemp("runs"), max_epochs=2))
    return config, train(config, progress_bar=False)


# --- configs -----------------------------------------------------------------------------------


def test_one_source_is_a_list_of_one(tmp_path):
    config = parse_config(tiny_config(tmp_path))
    assert [data.label for data in config.data] == ["ethanol"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda data: data[1].update(molecule="ethanol"), "each data source must be named once; repeated: ethanol"),
        (lambda data: data[1].update(molecul="x"), "unknown key 'data[1].molecul' (did you mean 'molecule'?)"),
        (lambda data: data[0].update(molecule="urcil"), "data[0].molecule: unknown molecule 'urcil'"),
        (lambda data: data.clear(), "data: List should have at least 1 item"),
    ],
)
def test_source_list_errors_name_the_source(tmp_path, change, expected):
    content = two_molecule_config(tmp_path)
    change(content["data"])
    with pytest.raises(ConfigError) as error:
        parse_config(content)
    assert expected in str(error.value)


def test_a_one_source_config_names_its_keys_without_an_index(tmp_path):
    content = tiny_config(tmp_path)
    content["data"]["molecul"] = "ethanol"
    with pytest.raises(ConfigError, match=r"unknown key 'data.molecul' \(did you mean 'molecule'\?\)"):
        parse_config(content)


# --- a run on two molecules --------------------------------------------------------------------


def test_each_source_is_split_on_its_own_and_offsets_fit_all_training_frames(two_molecule_run):
    config, result = two_molecule_run
    records = read_split(result.run_dir / "split.json")
    assert [record["pool"] for record in records] == ["rMD17 ethanol train_01", "rMD17 uracil train_01"]
    assert records[0]["train"] == random_split(1000, 20, 5, seed=0)["train"]
    assert records[1]["train"] == random_split(1000, 20, 5, seed=1)["train"]
    sources, _ = split_frames(config, None)
    train_frames = sources[0].train + sources[1].train
    model = build_initial_model(config, train_frames)
    offsets, _ = energy_statistics(train_frames, model.elements)
    assert model.elements == [1, 6, 7, 8]
    assert torch.equal(model.scale_shift.offsets, offsets)
    # two compositions of four elements: offsets that fit only ethanol would miss uracil by eV
    counts = np.array([[6, 2, 0, 1], [4, 4, 2, 2]])  # H, C, N, O of ethanol and uracil
    means = [np.mean([f.energy for f in source.train]) for source in sources]
    assert np.allclose(counts @ offsets.numpy(), means, atol=1.0)


def test_validation_errors_are_logged_per_source_and_over_all(two_molecule_run):
    _, result = two_molecule_run
    model, _ = load_model(result.model_path)
    sources, _ = split_frames(two_molecule_run[0], None)
    per_source = {s.label: evaluate(model, s.validation)["forces_mae_meV_per_A"] for s in sources}
    overall = evaluate(model, [f for s in sources for f in s.validation])["forces_mae_meV_per_A"]
    run_dir = result.run_dir
    best_epoch = read_model_file(result.model_path)["metadata"]["best_epoch"] - 1
    for label, mae in per_source.items():
        assert read_metrics(run_dir, f"val/{label}/forces_mae")[best_epoch] == pytest.approx(mae, rel=1e-5)
    assert read_metrics(run_dir, "val/forces_mae")[best_epoch] == pytest.approx(overall, rel=1e-5)
    assert min(per_source.values()) < overall < max(per_source.values())


def test_evaluate_reports_each_source_and_all_together(two_molecule_run, tmp_path, capsys):
    _, result = two_molecule_run
    report = tmp_path / "report.json"
    split = str(result.run_dir / "split.json")
    assert main(["evaluate", str(result.model_path), "--split-file", split, "--part", "validation",
                 "--json", str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["ethanol"], ["uracil"], ["all"])}
    assert [rows[label][1] for label in ("ethanol", "uracil", "all")] == ["5", "5", "10"]
    content = json.loads(report.read_text())
    assert content["num_frames"] == 10 and set(content["sources"]) == {"ethanol", "uracil"}
    forces = [content["sources"][label]["forces_mae_meV_per_A"] for label in ("ethanol", "uracil")]
    assert content["forces_mae_meV_per_A"] == pytest.approx(np.average(forces, weights=[9, 12]))  # atoms per frame
    assert float(rows["all"][4]) == pytest.approx(content["forces_mae_meV_per_A"], abs=1e-3)


# --- fine-tuning ---------------------------------------------------------------------------------


def fine_tuning_config(tmp_path, initial_weights, molecule: str, name: str = "fine", **training) -> dict:
    content = tiny_config(tmp_path, name=name, **training)
    content["data"]["molecule"] = molecule
    content["model"]["initial_weights"] = str(initial_weights)
    return content


def test_fine_tuning_keeps_the_pretrained_elements_and_refits_the_offsets(two_molecule_run, tmp_path):
    _, pretrained = two_molecule_run
    config = parse_config(fine_tuning_config(tmp_path, pretrained.model_path, "ethanol"))
    [source], _ = split_frames(config, None)
    stored = read_model_file(pretrained.model_path)["state_dict"]
    model = build_initial_model(config, source.train)
    assert model.elements == [1, 6, 7, 8]  # nitrogen kept, though ethanol has none
    state = model.state_dict()
    assert all(torch.equal(state[name], stored[name]) for name in stored if name != "scale_shift.offsets")
    correction = state["scale_shift.offsets"] - stored["scale_shift.offsets"]
    assert correction[2] == 0 and torch.all(correction[[0, 1, 3]] != 0)  # N absent from ethanol: unchanged
    with torch.no_grad():
        energies = [float(model(frame_to_graph(f, model.cutoff, torch.float32))["energy"]) for f in source.train]
    assert np.mean(np.subtract(energies, [f.energy for f in source.train])) == pytest.approx(0.0, abs=1e-3)


def test_refit_corrects_an_energy_shift_of_every_composition_exactly(two_molecule_run):
    _, pretrained = two_molecule_run
    model, _ = load_model(pretrained.model_path, torch.float64)
    sources, _ = split_frames(two_molecule_run[0], None)
    frames = sources[0].train + sources[1].train
    graphs = [frame_to_graph(frame, model.cutoff, torch.float64) for frame in frames]
    refit_energy_offsets(model, graphs, frames)  # the model's own best offsets for these frames
    shifted = [frame.__class__(frame.atomic_numbers, frame.positions, frame.energy - 0.5 * len(frame.atomic_numbers),
                               frame.forces) for frame in frames]
    correction = refit_energy_offsets(model, graphs, shifted).numpy()  # every atom 0.5 eV lower
    counts = np.array([[6, 2, 0, 1], [4, 4, 2, 2]])  # H, C, N, O of ethanol and uracil
    assert counts @ correction == pytest.approx([-4.5, -6.0], abs=1e-9)


def test_fine_tuning_refuses_an_element_the_pretrained_model_never_saw(tmp_path, capsys):
    ethanol_only = parse_config(tiny_config(tmp_path, name="ethanol-only", max_epochs=1))
    model_path = train(ethanol_only, progress_bar=False).model_path
    config_file = tmp_path / "fine.yaml"
    config_file.write_text(yaml.safe_dump(fine_tuning_config(tmp_path, model_path, "uracil"), allow_unicode=True))
    with pytest.raises(SystemExit) as error:
        main(["train", str(config_file), "--no-progress"])
    message = str(error.value)
    assert message.startswith("error: model.initial_weights") and "\n" not in message
    assert "the training frames hold N (7), which the pretrained model never saw (it knows H (1), C (6), O (8))" in message
    assert not (tmp_path / "fine").exists()


def test_a_fine_tuned_run_resumes_with_the_pretrained_elements(two_molecule_run, tmp_path):
    _, pretrained = two_molecule_run
    content = fine_tuning_config(tmp_path, pretrained.model_path, "ethanol", max_epochs=1)
    train(parse_config(content), progress_bar=False)
    content["training"]["max_epochs"] = 2
    result = train(parse_config(content), resume=True, progress_bar=False)
    assert result.epochs == 2 and read_model_file(result.model_path)["hyperparameters"]["elements"] == [1, 6, 7, 8]


# --- a second stage ------------------------------------------------------------------------------


def test_stage_two_raises_the_energy_weight_fixes_the_lr_and_exports_its_own_best(tmp_path):
    content = tiny_config(tmp_path, name="two-stages", max_epochs=4)
    content["training"]["stage_two"] = {"start_epoch": 2, "energy_weight": 500.0, "lr": 1.0e-4}
    result = train(parse_config(content), progress_bar=False)
    run_dir = result.run_dir
    assert read_metrics(run_dir, "lr-Adam")[2:] == [1.0e-4, 1.0e-4]
    assert read_metrics(run_dir, "lr-Adam")[1] == 5.0e-3  # the first stage's, from the config
    energy, forces = read_metrics(run_dir, "train/energy_loss"), read_metrics(run_dir, "train/forces_loss")
    total = read_metrics(run_dir, "train/loss_epoch")
    for epoch, weight in ((1, 1.0), (3, 500.0)):  # the tiny config's energy weight is 1
        assert total[epoch] == pytest.approx(weight * energy[epoch] + 1000.0 * forces[epoch], rel=1e-5)
    metadata = read_model_file(result.model_path)["metadata"]
    stage_two_maes = read_metrics(run_dir, "val/forces_mae")[2:]
    assert metadata["best_epoch"] in (3, 4) and result.best_forces_mae == pytest.approx(min(stage_two_maes))


def test_stage_two_must_start_before_the_last_epoch(tmp_path):
    content = tiny_config(tmp_path, max_epochs=4)
    content["training"]["stage_two"] = {"start_epoch": 4, "energy_weight": 500.0}
    with pytest.raises(ConfigError, match="stage_two.start_epoch 4 is not before max_epochs 4"):
        parse_config(content)
    content["training"]["stage_two"] = {"start_epoh": 1, "energy_weight": 500.0}
    with pytest.raises(ConfigError, match=r"unknown key 'training.stage_two.start_epoh' \(did you mean 'start_epoch'\?\)"):
        parse_config(content)


# --- snapshots and learning curves ---------------------------------------------------------------


def test_snapshots_keep_the_best_model_at_each_mark_and_learning_curve_evaluates_them(tmp_path, capsys):
    content = tiny_config(tmp_path, name="timed", max_epochs=3, snapshot_minutes=[1e-6, 2e-6, 1000.0])
    result = train(parse_config(content), progress_bar=False)
    snapshots = sorted((result.run_dir / "snapshots").glob("*.eqff"))
    assert [path.name for path in snapshots] == ["timed-1e-06min.eqff", "timed-2e-06min.eqff"]  # 1000 min never came
    first = read_model_file(snapshots[0])
    assert first["metadata"]["epochs"] == 1  # both marks passed in the first epoch: its best model
    assert first["state_dict"].keys() == read_model_file(snapshots[1])["state_dict"].keys()
    exported = read_model_file(result.model_path)["metadata"]  # the same record: a snapshot can be shipped
    for key in ("training_data", "split_file", "config", "hardware", "training_domain", "example_structure"):
        assert first["metadata"][key] == exported[key]
    assert first["metadata"]["validation_forces_mae_meV_per_A"] == pytest.approx(
        read_metrics(result.run_dir, "val/forces_mae")[0]
    )
    [source], _ = split_frames(parse_config(content), None)
    model, _ = load_model(snapshots[0])
    assert evaluate(model, source.validation)["forces_mae_meV_per_A"] == pytest.approx(
        first["metadata"]["validation_forces_mae_meV_per_A"], rel=1e-5
    )

    output = tmp_path / "curve"
    assert main(["learning-curve", str(result.run_dir), "--max-frames", "4", "--output", str(output)]) == 0
    rows = json.loads((output / "learning-curve.json").read_text())
    assert [(row["run"], row["num_train"], row["minutes"], row["num_test_frames"]) for row in rows] == [
        ("timed", 20, 1e-6, 4), ("timed", 20, 2e-6, 4)
    ]
    assert (output / "learning-curve.png").stat().st_size > 0
    assert "timed" in capsys.readouterr().out


def test_learning_curve_needs_snapshots_of_a_one_source_run(two_molecule_run):
    _, result = two_molecule_run
    with pytest.raises(SystemExit, match="^error: .* holds no snapshots: train it with training.snapshot_minutes$"):
        main(["learning-curve", str(result.run_dir)])
    (result.run_dir / "snapshots").mkdir()
    model, content = load_model(result.model_path)
    snapshot = result.run_dir / "snapshots" / "two-1min.eqff"
    save_model(snapshot, model, content["metadata"])
    with pytest.raises(SystemExit, match="two-1min.eqff: not snapshots of a run"):
        main(["learning-curve", str(result.run_dir)])
    save_model(snapshot, model, {**content["metadata"], "snapshot_minutes": 1.0})
    with pytest.raises(SystemExit, match="^error: .*: learning curves are for runs on one data source, this one has 2$"):
        main(["learning-curve", str(result.run_dir)])


# --- refusals before anything is written -----------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_training_on_cuda_without_cuda_is_one_error_line_and_no_run_folder(tmp_path):
    config_file = tmp_path / "cuda.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(tmp_path, name="on-cuda"), allow_unicode=True))
    with pytest.raises(SystemExit, match=r"^error: device: 'cuda' was asked for but CUDA is not available on this machine"):
        main(["train", str(config_file), "--no-progress", "--set", "device=cuda"])
    assert not (tmp_path / "on-cuda").exists()


# --- hyperparameters computed from the training frames ---------------------------------------------


def test_average_number_of_neighbours_counts_directed_pairs_per_atom():
    water = Frame.from_atoms(ase_molecule("H2O"))  # O–H 0.97 Å, H–H 1.5 Å
    assert average_num_neighbours([water], 1.2) == pytest.approx(4 / 3)  # O sees 2, each H sees O
    assert average_num_neighbours([water, water], 2.0) == pytest.approx(2.0)


def test_segnn_gets_its_average_number_of_neighbours_from_the_training_frames(tmp_path):
    content = tiny_config(tmp_path, name="segnn-fitted", max_epochs=1)
    content["model"] = {"architecture": "segnn", "hyperparameters": {"cutoff": 4.0, "num_features": 16, "num_layers": 1}}
    config = parse_config(content)
    [source], _ = split_frames(config, None)
    expected = round(average_num_neighbours(source.train, 4.0), 4)
    result = train(config, progress_bar=False)
    assert read_model_file(result.model_path)["hyperparameters"]["average_num_neighbours"] == expected
    content["training"]["max_epochs"] = 2  # a resumed run rebuilds the model with the same value
    resumed = train(parse_config(content), resume=True, progress_bar=False)
    assert read_model_file(resumed.model_path)["hyperparameters"]["average_num_neighbours"] == expected
    content["model"]["hyperparameters"]["average_num_neighbours"] = 9.0  # a value in the config is kept
    assert build_initial_model(parse_config({**content, "name": "segnn-set"}), source.train).hyperparameters[
        "average_num_neighbours"] == 9.0  # fmt: skip
