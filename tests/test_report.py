"""``eqff report``: its table and ratios on hand-made numbers, its refusals, and a tiny run end to end."""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from eqff.cli import main
from eqff.commands.report import (
    add_arguments, format_markdown, format_text, in_taxonomy_order, model_architecture, peer_python, speed_ratios,
    table, timed_peers, with_taxonomy,
)  # fmt: skip
from eqff.errors import ModelFileError
from eqff.model_file import resolve_model_path, save_model
from eqff.models import build_model
from eqff.report.measurements import NVEResult, NVTResult, training_data
from eqff.report.progress import MeasuredStore, result_from_json, result_to_json
from eqff.peers.run import check_peers_python
from tiny_models import TINY

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ETHANOL = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_ethanol_test_01.npz").is_file()


def _results() -> tuple[NVEResult, NVTResult]:
    empty = np.zeros(0)
    nve = NVEResult(drift=0.01234, fluctuation=0.5, time_ps=empty, total_energy=empty, ms_per_step=3.0,
                    angular_momentum_drift=2.5e-13)
    nvt = NVTResult(run_ps=50.0, stable_ps=50.0, hr_mae=0.0321, r=empty, h=empty, h_reference=empty,
                    time_ps=empty, bond_deviation=empty, ms_per_step=3.0)  # fmt: skip
    return nve, nvt


def test_table_has_a_row_per_model_then_per_peer_and_dashes_where_a_peer_was_not_measured():
    nve, nvt = _results()
    speeds = {"m": {"aspirin": 2.0, "water-1029": 300.0}, "MACE (peer)": {"aspirin": 20.0, "water-1029": 900.0}}
    errors = {"m": {"energy_mae_meV": 1.234, "forces_mae_meV_per_A": 5.678, "rotation_energy_error_meV": 3.1e-9}}
    rows = table(["m"], {"m": "aspirin"}, errors, speeds, {"m": nve}, {"m": nvt})
    assert rows[0][5:7] == ["ms/call aspirin", "ms/call water-1029"]
    assert rows[1] == ["m", "aspirin", "1.23", "5.68", "3.1e-09", "2.00", "300.00", "0.0123", "0.500", "2.5e-13",
                       "50.00 of 50.00", "0.032"]  # fmt: skip
    assert rows[2] == ["MACE (peer)", "—", "—", "—", "—", "20.00", "900.00", "—", "—", "—", "—", "—"]
    assert format_markdown(rows).splitlines()[1] == "|" + "---|" * 12
    assert len({len(line) for line in format_text(rows).splitlines()}) == 1


def test_speed_ratio_is_the_peers_time_over_the_models():
    speeds = {"m": {"aspirin": 2.0, "water-1029": 300.0}, "MACE (peer)": {"aspirin": 20.0, "water-1029": 900.0}}
    assert speed_ratios(["m"], speeds) == [
        "speed-up of m over MACE (peer): 10.0× on aspirin (ms ratio 0.1), 3.0× on water-1029 (ms ratio 0.33)"
    ]
    del speeds["MACE (peer)"]["water-1029"]  # a peer timed on aspirin only
    assert speed_ratios(["m"], speeds) == ["speed-up of m over MACE (peer): 10.0× on aspirin (ms ratio 0.1)"]


def test_a_model_not_trained_on_rmd17_is_refused_with_its_training_data_named(tmp_path, painn_model):
    path = save_model(tmp_path / "own-data.eqff", painn_model, {"dataset": [{"dataset": "extxyz", "path": "own.xyz"}]})
    with pytest.raises(ModelFileError, match="needs a model trained on one rMD17 molecule.*extxyz own.xyz"):
        training_data(str(path))
    sources = [{"dataset": "rmd17", "molecule": molecule, "split": 1} for molecule in ("ethanol", "uracil")]
    path = save_model(tmp_path / "two.eqff", painn_model, {"dataset": sources})
    with pytest.raises(ModelFileError, match="rmd17 ethanol, rmd17 uracil"):
        training_data(str(path))


def test_a_missing_peers_environment_says_how_to_create_it(tmp_path):
    with pytest.raises(SystemExit, match="create_venv.sh"):
        check_peers_python(tmp_path / "nowhere" / "bin" / "python")
    with pytest.raises(SystemExit, match="create_nequip_venv.sh.*--nequip-python"):
        check_peers_python(tmp_path / "nowhere" / "bin" / "python", "nequip")


def test_nequip_is_timed_by_its_own_environments_python_beside_the_other_peers():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--peers", "--nequip", "--peers-python", "peers/python",
                              "--nequip-python", "nequip/python"])  # fmt: skip
    assert timed_peers(args) == ("mace", "schnetpack-painn", "nequip")
    assert [peer_python(args, peer) for peer in timed_peers(args)] == ["peers/python", "peers/python", "nequip/python"]
    assert timed_peers(parser.parse_args(["--nequip"])) == ("nequip",)
    assert timed_peers(parser.parse_args([])) == ()


@pytest.mark.skipif(not HAVE_ETHANOL, reason="rMD17 ethanol not found (set EQFF_DATA)")
def test_a_tiny_report_of_a_shipped_potential_prints_its_table_and_writes_its_files(tmp_path, capsys, card_test_maes):
    argv = ["report", "painn-ethanol", "--systems", "aspirin", "--repeats", "1", "--rounds", "1",
            "--nve-ps", "0.01", "--nvt-ps", "0.1", "--data", DATA_ROOT, "--output", str(tmp_path)]  # fmt: skip
    peers_python, nequip_python = os.environ.get("EQFF_PEERS_PYTHON"), os.environ.get("EQFF_NEQUIP_PYTHON")
    if peers_python:
        argv += ["--peers", "--peers-python", peers_python]
    if nequip_python:
        argv += ["--nequip", "--nequip-python", nequip_python]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "painn-ethanol" in out and "ethanol" in out
    # the test errors are those of the shipped card (eqff evaluate on test_01)
    energy_mae, forces_mae = card_test_maes(resolve_model_path("painn-ethanol").with_suffix(".md"))
    assert f"{energy_mae:.2f}" in out and f"{forces_mae:.2f}" in out
    assert "0.10 of 0.10" in out
    for name in ("report.md", "report.json", "speed.png", "nve.png", "nvt.png"):
        assert (tmp_path / name).is_file()
    record = json.loads((tmp_path / "report.json").read_text())["models"]["painn-ethanol"]
    # PaiNN is exactly invariant: rotations change its energy, and its forces the angular momentum, by round-off only
    assert record["test_errors"]["rotation_energy_error_meV"] < 1e-6
    assert record["nve_angular_momentum_drift_hbar_per_ps"] < 1e-6
    if peers_python:
        assert "MACE (peer)" in out and "speed-up of painn-ethanol over MACE (peer)" in out
    if nequip_python:
        assert "speed-up of painn-ethanol over NequIP (peer)" in out and "ms ratio" in out


def test_taxonomy_orders_models_by_message_then_features_and_adds_both_columns_after_the_name():
    architectures = {"segnn-x": "segnn", "schnet-x": "schnet", "egnn-x": "egnn", "painn-x": "painn"}
    models = in_taxonomy_order(list(architectures), architectures)
    assert models == ["schnet-x", "painn-x", "egnn-x", "segnn-x"]
    rows = [["model", "molecule"], *([model, "ethanol"] for model in models), ["MACE (peer)", "—"]]
    extended = with_taxonomy(rows, architectures)
    assert extended[0] == ["model", "message", "features", "molecule"]
    assert extended[1] == ["schnet-x", "linear", "R³", "ethanol"]
    assert extended[4] == ["segnn-x", "non-linear", "steerable SE(3)", "ethanol"]
    assert extended[5] == ["MACE (peer)", "—", "—", "—"]


def test_a_committee_sits_in_the_taxonomy_of_its_members(tmp_path):
    committee = build_model("committee", {"elements": [1, 6, 8], "cutoff": 4.0, **TINY["committee"]})
    assert model_architecture(str(save_model(tmp_path / "committee.eqff", committee))) == "painn"


@pytest.mark.skipif(not HAVE_ETHANOL, reason="rMD17 ethanol not found (set EQFF_DATA)")
def test_a_tiny_taxonomy_report_of_random_models_lists_them_in_taxonomy_order(tmp_path, monkeypatch):
    monkeypatch.setattr("eqff.commands.report.COMPILE_SECONDS", {})  # time them eagerly: compiling takes longer
    ethanol = {"dataset": [{"dataset": "rmd17", "molecule": "ethanol", "split": 1}]}
    files = []
    for architecture in ("egnn", "schnet"):  # given non-linear first: the report puts the linear SchNet first
        torch.manual_seed(0)
        model = build_model(architecture, {"elements": [1, 6, 8], "cutoff": 4.0, **TINY[architecture]})
        files.append(str(save_model(tmp_path / f"{architecture}.eqff", model, ethanol)))
    argv = ["report", *files, "--taxonomy", "--systems", "aspirin", "--repeats", "1", "--rounds", "1",
            "--nve-ps", "0.005", "--nvt-ps", "0.05", "--data", DATA_ROOT, "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    table_lines = (tmp_path / "report.md").read_text().splitlines()
    assert table_lines[0].startswith("| model | message | features | molecule |")
    assert table_lines[2].startswith(f"| {files[1]} | linear | R³ | ethanol |")
    assert table_lines[3].startswith(f"| {files[0]} | non-linear | R³ | ethanol |")
    record = json.loads((tmp_path / "report.json").read_text())["models"]
    assert list(record) == [files[1], files[0]] and record[files[0]]["message"] == "non-linear"

    # run again with the same output: every measurement is reused, none is made, the table is the same
    def measuring_again(*args, **kwargs):
        raise AssertionError("a saved measurement was measured again")

    for name in ("run_in_fresh_process", "errors_on_test_set", "rotation_error", "nve_drift", "nvt_stability"):
        monkeypatch.setattr(f"eqff.commands.report.{name}", measuring_again)
    table = (tmp_path / "report.md").read_text()
    assert main(argv) == 0
    assert (tmp_path / "report.md").read_text() == table


def test_nve_and_nvt_results_survive_their_json_round_trip():
    nve, nvt = _results()
    nve = NVEResult(**{**nve.__dict__, "time_ps": np.array([0.0, 0.005]), "total_energy": np.array([0.0, 1e-7])})
    for result in (nve, nvt):
        back = result_from_json(type(result), json.loads(json.dumps(result_to_json(result))))
        for name, value in result.__dict__.items():
            np.testing.assert_array_equal(getattr(back, name), value)


def test_a_saved_measurement_is_reused_only_for_the_same_weights_and_settings(tmp_path, capsys):
    def model_file(seed: int) -> str:
        torch.manual_seed(seed)
        model = build_model("schnet", {"elements": [1, 6, 8], "cutoff": 4.0, **TINY["schnet"]})
        return str(save_model(tmp_path / "schnet.eqff", model))

    store = MeasuredStore(tmp_path / "measured")
    model = model_file(seed=0)
    store.save(model, "nve", {"picoseconds": 10.0}, {"drift": 0.5})
    assert store.load(model, "nve", {"picoseconds": 10.0}) == {"drift": 0.5}
    assert "reusing its nve measurement" in capsys.readouterr().out
    assert store.load(model, "nve", {"picoseconds": 5.0}) is None
    assert store.load(model, "nvt", {"picoseconds": 10.0}) is None
    retrained = model_file(seed=1)  # other weights in the same file
    assert MeasuredStore(tmp_path / "measured").load(retrained, "nve", {"picoseconds": 10.0}) is None
