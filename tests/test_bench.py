"""``eqff bench``: its rows, and a row whose process dies does not end the benchmark; the training
step's frames and options as they reach the peers' script."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eqff.cli import main
from eqff.commands.bench import (
    REFERENCE_HYPERPARAMETERS, TRAINING_BATCH, run_in_fresh_process, training_batch, training_frames,
)  # fmt: skip
from eqff.data import keys
from eqff.errors import DataFileError
from eqff.peers import time_peer
from eqff.peers.run import missing_peers_python, painn_peer_size, time_peer_command, write_frames
from eqff.md.systems import benchmark_system, water_trajectory

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ASPIRIN = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_bench_prints_one_row_per_model_system_dtype_and_thread_count(capsys):
    argv = ["bench", "--architectures", "painn", "gemnet-t", "--systems", "aspirin", "--dtypes", "float32", "float64",
            "--threads", "1", "2", "--repeats", "2", "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if " aspirin " in line]
    assert [(row[0], row[5], row[6]) for row in rows] == [
        (model, dtype, threads) for model in ("painn", "gemnet-t") for dtype in ("float32", "float64") for threads in "12"
    ]
    for row in rows:
        assert row[2:4] == ["21", "294"]  # atoms, pairs within 5 Å
        assert min(map(float, row[7:10])) > 0  # ms per call, neighbour list and model (medians apart)
    for row in rows:  # GemNet-T's rows also time its triplet construction, with its share of the call
        if row[0] == "gemnet-t":
            assert len(row) == 13 and float(row[11]) > 0 and row[12].endswith("%)")
        else:
            assert len(row) == 11


def test_bench_of_water_boxes_needs_no_data_and_a_bad_system_fails_before_any_output(monkeypatch, capsys):
    monkeypatch.delenv("EQFF_DATA", raising=False)
    assert main(["bench", "--systems", "water-192", "--dtypes", "float32", "--repeats", "1"]) == 0
    [row] = [line.split() for line in capsys.readouterr().out.splitlines() if " water-192 " in line]
    assert row[:3] == ["painn", "water-192", "192"] and row[6] == "1"  # the calculator's default for 192 atoms
    with pytest.raises(SystemExit, match="^error: no data folder given: pass --data FOLDER"):
        main(["bench", "--systems", "water-192", "aspirin", "--repeats", "1"])
    assert capsys.readouterr().out == ""


def test_bench_along_a_water_trajectory_counts_rebuilds_and_refuses_molecules(capsys):
    assert main(["bench", "--systems", "water-192", "--dtypes", "float32", "--repeats", "2", "--motion", "md"]) == 0
    out = capsys.readouterr().out
    assert "motion: md:" in out and "rebuilds" in out
    [row] = [line.split() for line in out.splitlines() if " water-192 " in line]
    assert row[:3] == ["painn", "water-192", "192"] and int(row[-1]) >= 0
    with pytest.raises(SystemExit, match="^error: --motion md follows a water trajectory"):
        main(["bench", "--systems", "aspirin", "--motion", "md", "--data", DATA_ROOT])
    assert capsys.readouterr().out == ""


def test_water_trajectory_moves_like_liquid_water():
    """Consecutive frames 0.5 fs apart: small steps, thermal motion over the run, molecules intact."""
    box = benchmark_system("water-192", None)
    frames = water_trajectory(box, 20)
    assert frames.shape == (20, 192, 3)
    steps = np.linalg.norm(np.diff(frames, axis=0), axis=-1)  # (19, 192) Å
    assert 0.001 < steps.mean() < 0.02 and steps.max() < 0.1
    oxygen_hydrogen = np.linalg.norm(frames[:, 1::3] - frames[:, 0::3], axis=-1)  # (20, 64) Å
    # flexible water: O–H bonds vibrate by about ±0.08 Å around 1.01 Å at 300 K; a broken one would be > 1.5 Å
    assert np.all((0.8 < oxygen_hydrogen) & (oxygen_hydrogen < 1.25))


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
@pytest.mark.compiles
def test_bench_predict_times_batches_against_single_calls_with_the_same_answers(capsys):
    """Eager and compiled eqff.predict against one calculator call per frame: a rate and a ratio
    for each, and the same energies and forces to float32 round-off."""
    assert main(["bench", "--systems", "water-192", "--dtypes", "float32", "--repeats", "1", "--predict", "40",
                 "--data", DATA_ROOT]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    single = next(line for line in lines if line.strip().startswith("calculator per frame"))
    assert float(single.split()[3]) > 0
    for name in ("eager", "compiled"):
        [line] = [line for line in lines if line.strip().startswith(f"eqff.predict, {name}")]
        rate, ratio = re.search(r"([\d.]+) structures/s, ratio ([\d.]+)", line).groups()
        assert float(rate) > 0 and float(ratio) > 0
        energy, forces = (float(value) for value in re.findall(r"(\d\.\de[-+]\d+) eV", line))
        assert energy < 1e-3 and forces < 1e-4, line  # float32 round-off


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_systems_are_rmd17_molecules_and_water_boxes():
    assert benchmark_system("ethanol", DATA_ROOT).get_chemical_formula() == "C2H6O"
    assert len(benchmark_system("water-192", DATA_ROOT)) == 192
    with pytest.raises(DataFileError, match="unknown system 'ethanl'.*ethanol"):
        benchmark_system("ethanl", DATA_ROOT)


def test_water_boxes_need_no_data_folder(monkeypatch):
    monkeypatch.delenv("EQFF_DATA", raising=False)
    assert len(benchmark_system("water-1029", None)) == 1029


def test_a_process_that_dies_gives_none():
    assert run_in_fresh_process(os.abort) is None
    assert run_in_fresh_process(os.getpid) != os.getpid()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
@pytest.mark.compiles
def test_training_step_rows_time_eager_and_compiled_steps(capsys, tmp_path):
    no_peers = tmp_path / "no-venv" / "bin" / "python"
    argv = ["bench", "--architectures", "painn", "--systems", "aspirin", "--dtypes", "float32", "--repeats", "1",
            "--training-step", "--peers-python", str(no_peers), "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out.split("training steps:")[1]
    rows = [line.split() for line in table.splitlines() if " aspirin " in line]
    assert [row[:2] for row in rows] == [["painn", "aspirin"]]
    eager, compile_seconds, compiled = map(float, rows[0][2:5])
    assert eager > 0 and compile_seconds > compiled / 1e3 > 0 and rows[0][5].endswith("x")
    # Without the peers' environment, one line says how to make it, and there are no peer rows.
    skipped = [line for line in table.splitlines() if line.startswith("peers: ")]
    assert len(skipped) == 1 and f"no Python at {no_peers}" in skipped[0] and "create_venv.sh" in skipped[0]
    assert "(peer)" not in table and "SchNetPack PaiNN training step" not in table


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_training_frames_reach_the_peers_script_as_eqff_batches_them(tmp_path):
    frames = training_frames("aspirin", DATA_ROOT)
    assert len(frames) == TRAINING_BATCH
    assert all(not np.allclose(frames[0].positions, atoms.positions) for atoms in frames[1:])  # rattled apart
    path = tmp_path / "frames.extxyz"
    write_frames(frames, path)
    read_back = time_peer.read_frames(path)
    time_peer.check_labelled(read_back)
    batch = training_batch(frames, 5.0)
    centred = [atoms.positions - atoms.positions.mean(axis=0) for atoms in read_back]  # as eqff's graphs hold them
    positions = torch.cat([torch.as_tensor(frame, dtype=torch.float32) for frame in centred])
    torch.testing.assert_close(positions, batch[keys.POSITIONS], rtol=0, atol=1e-6)  # float32 of the same frames
    for sent, received in zip(frames, read_back, strict=True):
        np.testing.assert_allclose(received.positions, sent.positions, rtol=0, atol=1e-8)
        assert list(received.numbers) == list(sent.numbers)
        assert received.get_potential_energy() == sent.get_potential_energy()
        np.testing.assert_array_equal(received.get_forces(), sent.get_forces())
    assert batch[keys.ENERGY].shape == (TRAINING_BATCH,) and batch[keys.FORCES].shape == (5 * 21, 3)


def test_the_training_step_options_reach_the_peers_script(tmp_path):
    structure = tmp_path / "frames.extxyz"
    structure.write_text("")
    eqff_painn = {"elements": [1, 6], "num_features": 64, "num_interactions": 2, "num_radial": 8, "cutoff": 4.5}
    size = painn_peer_size(eqff_painn)
    assert size == {"n_atom_basis": 64, "n_interactions": 2, "n_rbf": 8, "cutoff": 4.5}
    command = time_peer_command("python", "schnetpack-painn", structure, "float32", 7, training_step=True, threads=3,
                                hyperparameters=size)  # fmt: skip
    assert command[1] == str(time_peer.__file__)
    args = time_peer.parse_args(command[2:])
    assert (args.peer, args.structure, args.dtype, args.repeats, args.training_step, args.threads) == (
        "schnetpack-painn", structure, "float32", 7, True, 3
    )
    assert args.hyperparameters == {**time_peer.PAINN_DEFAULT, **size}
    calls = time_peer.parse_args(time_peer_command("python", "mace", structure, "float64", 2)[2:])
    assert (calls.training_step, calls.threads, calls.hyperparameters) == (False, None, time_peer.MACE_RMD17)
    # The size of the random-weight eqff PaiNN is SchNetPack's default size.
    assert {**time_peer.PAINN_DEFAULT, **painn_peer_size(REFERENCE_HYPERPARAMETERS["painn"])} == time_peer.PAINN_DEFAULT


def test_the_peers_script_refuses_hyperparameters_its_peer_does_not_have(tmp_path, capsys):
    structure = tmp_path / "frames.extxyz"
    structure.write_text("")
    with pytest.raises(SystemExit):
        time_peer.parse_args(["--peer", "mace", "--structure", str(structure), "--hyperparameters", '{"n_rbf": 8}'])
    assert "['n_rbf'] are not hyperparameters of mace" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        time_peer.parse_args(["--peer", "mace", "--structure", str(structure), "--hyperparameters", "[8]"])
    assert "not a JSON object" in capsys.readouterr().err


def test_a_missing_peers_python_says_how_to_make_it(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    assert f"bash {time_peer.__file__.removesuffix('time_peer.py')}create_venv.sh {tmp_path / 'venv'}" in (
        missing_peers_python(python)
    )
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert missing_peers_python(python) is None
