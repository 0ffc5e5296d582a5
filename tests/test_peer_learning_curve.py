"""The peers' side of the time-to-accuracy comparison: the frames handed to MACE and NequIP, the
choice of the checkpoint at each mark, the records merged into ``eqff learning-curve``, and
(when the peers' virtual environments exist) a few seconds of training of each peer.
"""

import json
import os
from pathlib import Path

import ase.io
import numpy as np
import pytest
from test_training import DATA_ROOT, TRAINING_DIR, needs_rmd17

from eqff.cli import main
from eqff.commands.train_peer import peer_run_name
from eqff.peers import train_peer
from eqff.peers.learning_curve import PEER_RECORDS, write_split_frames
from eqff.peers.train_peer import (
    Checkpoint,
    Predictions,
    mace_checkpoints,
    mean_absolute_errors,
    select_checkpoint,
)
from eqff.train.config import load_config
from eqff.train.dataset import read_frames
from eqff.train.run import split_source

REPO = Path(__file__).resolve().parent.parent
PEER_PYTHONS = {"mace": REPO / ".peers-venv" / "bin" / "python", "nequip": REPO / ".nequip-venv" / "bin" / "python"}
TINY = {
    "mace": {"hidden_irreps": "8x0e + 8x1o", "max_ell": 1, "correlation": 2},
    "nequip": {"num_layers": 2, "l_max": 1, "num_features": 8},
}
"""Recipe overrides that make each peer's model tiny."""
RECORD_FIELDS = {"run", "num_train", "minutes", "training_minutes", "num_test_frames", "forces_mae", "energy_mae"}


# --- frames -------------------------------------------------------------------------------------


@needs_rmd17
def test_frames_written_are_eqff_split_and_test_frames(tmp_path):
    config = load_config(TRAINING_DIR / "painn-paracetamol-50.yaml")
    files = write_split_frames(config, tmp_path, DATA_ROOT)
    expected, _ = split_source(config.data[0], DATA_ROOT)
    parts = {"train": expected.train, "validation": expected.validation, "test": read_frames(config.data[0], "test", DATA_ROOT)}
    assert [len(frames) for frames in parts.values()] == [50, 10, 1000]
    for part, frames in parts.items():
        written = ase.io.read(files[part], index=":")
        assert len(written) == len(frames)
        for atoms, frame in zip(written, frames):
            np.testing.assert_array_equal(atoms.numbers, frame.atomic_numbers)
            np.testing.assert_allclose(atoms.positions, frame.positions, rtol=0, atol=1e-8)
            np.testing.assert_allclose(atoms.info["REF_energy"], frame.energy, rtol=1e-12)
            np.testing.assert_allclose(atoms.arrays["REF_forces"], frame.forces, rtol=0, atol=1e-8)


def test_peer_run_name_replaces_the_architecture():
    assert peer_run_name("mace", load_config(TRAINING_DIR / "painn-paracetamol-50.yaml")) == "mace-paracetamol-50"
    assert peer_run_name("nequip", load_config(TRAINING_DIR / "painn-paracetamol.yaml")) == "nequip-paracetamol"


# --- checkpoint at each mark ---------------------------------------------------------------------


def checkpoint(minutes: float, loss: float) -> Checkpoint:
    return Checkpoint(Path(f"at-{minutes}.pt"), minutes, loss)


def test_select_checkpoint_takes_the_best_written_by_the_mark():
    checkpoints = [checkpoint(2.0, 5.0), checkpoint(9.5, 3.0), checkpoint(12.0, 1.0), checkpoint(25.0, 4.0)]
    assert select_checkpoint(checkpoints, 10) == checkpoint(9.5, 3.0)
    assert select_checkpoint(checkpoints, 30) == checkpoint(12.0, 1.0)  # a later, worse one is not taken
    assert select_checkpoint(checkpoints, 12) == checkpoint(12.0, 1.0)  # written at the mark counts
    assert select_checkpoint(checkpoints, 1) is None


def test_select_checkpoint_takes_the_latest_of_equal_losses():
    assert select_checkpoint([checkpoint(1.0, 2.0), checkpoint(3.0, 2.0), checkpoint(2.0, 2.0)], 5) == checkpoint(3.0, 2.0)


def test_mace_checkpoints_have_file_times_and_validation_losses(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "results").mkdir()
    lines = [{"loss": 9.0, "mode": "eval", "epoch": None}, {"loss": 7.0, "mode": "opt", "epoch": 0},
             {"loss": 3.0, "mode": "eval", "epoch": 0}, {"loss": 2.0, "mode": "eval", "epoch": 4}]  # fmt: skip
    (tmp_path / "results" / "mace_run-0_train.txt").write_text("\n".join(map(json.dumps, lines)) + "\n")
    start = 1_000_000.0
    for epoch, seconds in ((0, 90.0), (4, 600.0)):
        path = tmp_path / "checkpoints" / f"mace_run-0_epoch-{epoch}.pt"
        path.write_bytes(b"")
        os.utime(path, (start + seconds, start + seconds))
    found = sorted(mace_checkpoints(tmp_path, start), key=lambda c: c.minutes)
    assert [(c.path.name, c.minutes, c.validation_loss) for c in found] == [
        ("mace_run-0_epoch-0.pt", 1.5, 3.0), ("mace_run-0_epoch-4.pt", 10.0, 2.0)]  # fmt: skip


def test_mean_absolute_errors_are_meV_per_component_and_per_frame():
    predictions = Predictions(
        energies=np.array([1.0, 2.0]), ref_energies=np.array([1.002, 1.996]),
        forces=[np.zeros((2, 3)), np.full((1, 3), 0.01)], ref_forces=[np.full((2, 3), 0.003), np.zeros((1, 3))],
    )  # fmt: skip
    forces_mae, energy_mae = mean_absolute_errors(predictions)
    assert forces_mae == pytest.approx((6 * 3 + 3 * 10) / 9)
    assert energy_mae == pytest.approx(3.0)


def test_train_peer_script_imports_nothing_of_eqff():
    source = Path(train_peer.__file__).read_text()
    assert "import eqff" not in source and "from eqff" not in source


# --- records in eqff learning-curve ---------------------------------------------------------------


def test_learning_curve_reads_a_peer_folder(tmp_path, capsys):
    records = [{"run": "mace-paracetamol-50", "num_train": 50, "minutes": m, "training_minutes": m - 0.2,
                "num_test_frames": 1000, "forces_mae": 100.0 / m, "energy_mae": 20.0 / m} for m in (10.0, 30.0)]  # fmt: skip
    folder = tmp_path / "mace-paracetamol-50"
    folder.mkdir()
    (folder / PEER_RECORDS).write_text(json.dumps(records))
    assert main(["learning-curve", str(folder), "--output", str(tmp_path / "curve")]) == 0
    assert json.loads((tmp_path / "curve" / "learning-curve.json").read_text()) == records
    assert (tmp_path / "curve" / "learning-curve.png").stat().st_size > 0
    assert "mace-paracetamol-50" in capsys.readouterr().out


# --- the peers themselves, for a few seconds ------------------------------------------------------


@needs_rmd17
@pytest.mark.parametrize("peer", sorted(PEER_PYTHONS))
def test_peer_trains_and_is_tested(peer, tmp_path, monkeypatch, capsys):
    python = PEER_PYTHONS[peer]
    if not python.is_file():
        pytest.skip(f"{peer}'s virtual environment not found at {python.parent.parent}")
    monkeypatch.setenv("EQFF_DATA", DATA_ROOT)
    folder = tmp_path / f"{peer}-tiny"
    assert main(["train-peer", str(TRAINING_DIR / "painn-paracetamol-50.yaml"), "--peer", peer, "--python", str(python),
                 "--minutes", "1", "--marks", "1", "--max-test-frames", "5", "--output", str(folder),
                 "--hyperparameters", json.dumps(TINY[peer])]) == 0  # fmt: skip
    [record] = json.loads((folder / PEER_RECORDS).read_text())
    assert set(record) == RECORD_FIELDS
    assert record["run"] == f"{peer}-tiny" and record["num_train"] == 50 and record["num_test_frames"] == 5
    assert 0 < record["training_minutes"] <= 1
    assert np.isfinite(record["forces_mae"]) and np.isfinite(record["energy_mae"])
