"""Train a peer force field on the frames of an eqff run and read back its learning curve.

The peers (MACE, NequIP) train in virtual environments of their own, through their own
command lines, by ``train_peer.py``, which never imports eqff. This module hands them the exact
frames of an eqff training config as extended-XYZ files, runs ``train_peer.py`` with the peer
environment's Python, and reads back its records, which have the fields of
:class:`eqff.commands.learning_curve.SnapshotErrors`.

A peer's run folder (by default the eqff run's name with the peer's in place of the architecture's,
``runs/mace-paracetamol-50`` for ``painn-paracetamol-50``) holds:

- ``frames/train.xyz``, ``frames/validation.xyz``, ``frames/test.xyz``: the frames, in eV and Å,
  labels under ``REF_energy`` (eV, per frame) and ``REF_forces`` (eV/Å, per atom);
- ``peer/``: the peer's own training output (checkpoints, logs) and its evaluations;
- :data:`PEER_RECORDS`: the records, which ``eqff learning-curve`` reads from the folder.
"""

import json
import os
import subprocess
from pathlib import Path

import ase.io
from ase import Atoms

from eqff.data.frames import Frame
from eqff.train.config import DataConfig, RunConfig
from eqff.train.dataset import read_frames
from eqff.train.run import split_source

TRAIN_PEER_SCRIPT = Path(__file__).resolve().parent / "train_peer.py"
CREATE_VENV_SCRIPTS = {
    "mace": Path(__file__).resolve().parent / "create_venv.sh",
    "nequip": Path(__file__).resolve().parent / "create_nequip_venv.sh",
}
"""The script that makes each peer's virtual environment."""
PEERS = tuple(CREATE_VENV_SCRIPTS)
FRAMES_DIR = "frames"
PEER_DIR = "peer"
PEER_RECORDS = "peer-learning-curve.json"
ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"


def frame_atoms(frame: Frame) -> Atoms:
    """``frame`` as Atoms with its labels under :data:`ENERGY_KEY` (eV) and :data:`FORCES_KEY`
    ((n, 3), eV/Å), the keys MACE reads by default and NequIP is told to read."""
    atoms = frame.to_atoms()
    atoms.info[ENERGY_KEY] = frame.energy
    atoms.arrays[FORCES_KEY] = frame.forces.copy()
    return atoms


def write_frames(path: Path, frames: list[Frame]) -> None:
    """Write labelled ``frames`` to the extended-XYZ file ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, [frame_atoms(frame) for frame in frames], format="extxyz")


def single_source(config: RunConfig) -> DataConfig:
    """The config's only data source; peers train on one source, like eqff's learning curves."""
    if len(config.data) != 1:
        raise ValueError(f"{config.name}: peers train on one data source, this config has {len(config.data)}")
    return config.data[0]


def write_split_frames(config: RunConfig, folder: Path, data_root: str | None) -> dict[str, Path]:
    """Write the training and validation frames of ``config``'s split (the frames eqff trains on)
    and its source's test frames to ``folder/frames``; the three files by part name."""
    data = single_source(config)
    frames, _ = split_source(data, data_root)
    parts = {"train": frames.train, "validation": frames.validation, "test": read_frames(data, "test", data_root)}
    files = {part: folder / FRAMES_DIR / f"{part}.xyz" for part in parts}
    for part, part_frames in parts.items():
        write_frames(files[part], part_frames)
    return files


def check_peer_python(python: str | Path, peer: str) -> Path:
    """``python`` as a Path if it is a file; a ``SystemExit`` that says how to make the peer's venv otherwise."""
    path = Path(python)
    if not path.is_file():
        raise SystemExit(
            f"error: no Python at {path}: create {peer}'s environment with "
            f"`bash {CREATE_VENV_SCRIPTS[peer]} {path.parent.parent}`"
        )
    return path


def train_peer_command(
    python: Path, peer: str, files: dict[str, Path], output: Path, run: str, minutes: float, marks: list[float],
    hyperparameters: dict | None = None, max_test_frames: int | None = None,
) -> list[str]:
    """The command line of ``train_peer.py`` (see its docstring for the arguments)."""
    command = [str(python), str(TRAIN_PEER_SCRIPT), "--peer", peer, "--run", run,
               "--train", str(files["train"]), "--validation", str(files["validation"]), "--test", str(files["test"]),
               "--output", str(output), "--minutes", str(minutes), "--marks", *map(str, marks)]  # fmt: skip
    if hyperparameters:
        command += ["--hyperparameters", json.dumps(hyperparameters)]
    if max_test_frames is not None:
        command += ["--max-test-frames", str(max_test_frames)]
    return command


def run_peer(command: list[str], records_file: Path) -> list[dict]:
    """Run ``train_peer.py`` (its output goes to this process's terminal), write its records
    (the JSON list on its last line of standard output) to ``records_file`` and return them.

    Raises:
        RuntimeError: the script failed.
    """
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=peer_environment(), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[1]).name} failed (exit {result.returncode}); its log is above")
    records = json.loads(result.stdout.strip().splitlines()[-1])
    records_file.write_text(json.dumps(records, indent=1) + "\n")
    return records


def peer_environment() -> dict[str, str]:
    """This process's environment with one OpenMP thread, so the peer trains on one core as eqff's runs do."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def read_peer_records(run_dir: Path) -> list[dict] | None:
    """The records of a peer run folder, or ``None`` if ``run_dir`` is not one."""
    path = run_dir / PEER_RECORDS
    return json.loads(path.read_text()) if path.is_file() else None
