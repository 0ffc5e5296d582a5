"""Run ``time_peer.py`` in a peer's virtual environment and read back its timing.

Structures are handed over as an extended-XYZ file (cell, pbc and any energy and forces labels
included), so the peers' environment needs nothing from eqff.
"""

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ase import Atoms
from ase.io import write

TIME_PEER_SCRIPT = Path(__file__).resolve().parent / "time_peer.py"
CREATE_VENV_SCRIPT = Path(__file__).resolve().parent / "create_venv.sh"
CREATE_NEQUIP_VENV_SCRIPT = Path(__file__).resolve().parent / "create_nequip_venv.sh"
PEERS = ("mace", "schnetpack-painn")
"""The peers of the peers' environment (``create_venv.sh``) that ``time_peer.py`` knows, timed per
call and per training step: MACE at its rMD17 size and SchNetPack's PaiNN at its default size."""
NEQUIP = "nequip"
"""The peer of NequIP's own environment (``create_nequip_venv.sh``), timed per call: NequIP at
its rMD17 size (``NEQUIP_RMD17_MODEL`` of ``train_peer.py``, the size ``eqff train-peer`` trains)."""
PEER_LABELS = {"mace": "MACE (peer)", "schnetpack-painn": "SchNetPack PaiNN (peer)", NEQUIP: "NequIP (peer)"}
DEFAULT_PEERS_PYTHON = os.environ.get("EQFF_PEERS_PYTHON", ".peers-venv/bin/python")
"""The peers' Python unless a command is given another: ``$EQFF_PEERS_PYTHON``, else the venv
``.peers-venv`` in the working folder."""
DEFAULT_NEQUIP_PYTHON = os.environ.get("EQFF_NEQUIP_PYTHON", ".nequip-venv/bin/python")
"""NequIP's Python unless a command is given another: ``$EQFF_NEQUIP_PYTHON``, else the venv
``.nequip-venv`` in the working folder."""


def missing_peers_python(python: str | Path, peer: str = PEERS[0]) -> str | None:
    """``None`` if ``python`` is a file; otherwise a message that says how to make ``peer``'s environment."""
    path = Path(python)
    if path.is_file():
        return None
    if peer == NEQUIP:
        return (f"no Python at {path}: create NequIP's environment with "
                f"`bash {CREATE_NEQUIP_VENV_SCRIPT} {path.parent.parent}` (or give --nequip-python)")  # fmt: skip
    return (f"no Python at {path}: create the peers' environment with "
            f"`bash {CREATE_VENV_SCRIPT} {path.parent.parent}` (or give --peers-python)")  # fmt: skip


def check_peers_python(python: str | Path, peer: str = PEERS[0]) -> Path:
    """``python`` as a Path if it is a file; a ``SystemExit`` that says how to make ``peer``'s environment otherwise."""
    message = missing_peers_python(python, peer)
    if message:
        raise SystemExit(f"error: {message}")
    return Path(python)


def write_frames(frames: list[Atoms], path: Path) -> None:
    """``frames`` as extended XYZ (positions in Å to 1e-8 Å; energy and forces labels of an attached calculator)."""
    write(path, frames, format="extxyz")


def time_peer_command(python: str | Path, peer: str, structure: Path, dtype: str, repeats: int,
                      training_step: bool = False, threads: int | None = None,
                      hyperparameters: dict | None = None) -> list[str]:  # fmt: skip
    """The command line that runs ``time_peer.py`` under ``python`` (see its docstring for the options)."""
    if peer not in (*PEERS, NEQUIP):
        raise ValueError(f"unknown peer {peer!r}; known: {', '.join((*PEERS, NEQUIP))}")
    if training_step and peer not in PEERS:
        raise ValueError(f"{peer} is timed per call only; training steps: {', '.join(PEERS)}")
    command = [str(python), str(TIME_PEER_SCRIPT), "--peer", peer, "--structure", str(structure),
               "--dtype", dtype, "--repeats", str(repeats)]  # fmt: skip
    if training_step:
        command.append("--training-step")
    if threads is not None:
        command += ["--threads", str(threads)]
    if hyperparameters:
        command += ["--hyperparameters", json.dumps(hyperparameters)]
    return command


def run_time_peer(frames: list[Atoms], command_for: Callable[[Path], list[str]]) -> dict:
    """Write ``frames`` to a temporary extxyz file, run ``command_for(file)`` and return its JSON record.

    Raises:
        RuntimeError: the script failed; its standard error is in the message.
    """
    with tempfile.TemporaryDirectory() as folder:
        structure = Path(folder) / "structure.extxyz"
        write_frames(frames, structure)
        command = command_for(structure)
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        peer = command[command.index("--peer") + 1]
        raise RuntimeError(f"timing {peer} failed (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_peer(python: str | Path, peer: str, atoms: Atoms, dtype: str, repeats: int) -> dict:
    """Median ms per energy+forces call of ``peer`` (one of :data:`PEERS` or :data:`NEQUIP`) on ``atoms``,
    timed by ``time_peer.py`` under ``python`` (the peer's environment's).

    Returns the script's JSON record (``ms``, ``atoms``, ``versions``, ``description``, ...).

    Raises:
        RuntimeError: the script failed; its standard error is in the message.
    """
    return run_time_peer([atoms], lambda structure: time_peer_command(python, peer, structure, dtype, repeats))


def time_peer_training_step(python: str | Path, peer: str, frames: list[Atoms], repeats: int, threads: int,
                            hyperparameters: dict | None = None) -> dict:  # fmt: skip
    """Median ms per float32 training step of ``peer`` on ``frames`` as one batch, timed by ``time_peer.py``.

    Args:
        python: the peers' Python.
        peer: one of :data:`PEERS`.
        frames: the batch, each with energy (eV) and forces (eV/Å) labels (an attached calculator).
        repeats: timed steps after 3 warm-up steps.
        threads: torch threads of the peer's process.
        hyperparameters: entries of the peer's default size to override (see ``time_peer.py``).

    Returns the script's JSON record (``ms``, ``frames``, ``atoms``, ``pairs``, ``torch_threads``,
    ``versions``, ``description``, ...).

    Raises:
        RuntimeError: the script failed; its standard error is in the message.
    """
    return run_time_peer(frames, lambda structure: time_peer_command(
        python, peer, structure, "float32", repeats, training_step=True, threads=threads,
        hyperparameters=hyperparameters))  # fmt: skip


def painn_peer_size(hyperparameters: dict) -> dict:
    """SchNetPack PaiNN hyperparameters of the size of an eqff PaiNN with ``hyperparameters``: its
    features, interactions, number of radial functions (Gaussian in SchNetPack, Bessel in eqff)
    and cutoff (Å)."""
    return {"n_atom_basis": hyperparameters["num_features"], "n_interactions": hyperparameters["num_interactions"],
            "n_rbf": hyperparameters["num_radial"], "cutoff": hyperparameters["cutoff"]}  # fmt: skip
