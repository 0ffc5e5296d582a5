"""Run ``time_peer.py`` in the peers' virtual environment and read back its timing.

The structure is handed over as an extended-XYZ file (cell and pbc included), so the peers'
environment needs nothing from eqff.
"""

import json
import subprocess
import tempfile
from pathlib import Path

from ase import Atoms
from ase.io import write

TIME_PEER_SCRIPT = Path(__file__).resolve().parent / "time_peer.py"
CREATE_VENV_SCRIPT = Path(__file__).resolve().parent / "create_venv.sh"
PEERS = ("mace", "schnetpack-painn")
"""The peers ``time_peer.py`` knows: MACE at its rMD17 size and SchNetPack's PaiNN at its default size."""


def check_peers_python(python: str | Path) -> Path:
    """``python`` as a Path if it is an executable file; a ``SystemExit`` that says how to make one otherwise."""
    path = Path(python)
    if not path.is_file():
        raise SystemExit(
            f"error: no Python at {path}: create the peers' environment with "
            f"`bash {CREATE_VENV_SCRIPT} {path.parent.parent}` (or give --peers-python)"
        )
    return path


def time_peer(python: str | Path, peer: str, atoms: Atoms, dtype: str, repeats: int) -> dict:
    """Median ms per energy+forces call of ``peer`` on ``atoms``, timed by ``time_peer.py`` under ``python``.

    Returns the script's JSON record (``ms``, ``atoms``, ``versions``, ``description``, ...).

    Raises:
        RuntimeError: the script failed; its standard error is in the message.
    """
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    with tempfile.TemporaryDirectory() as folder:
        structure = Path(folder) / "structure.extxyz"
        write(structure, atoms, format="extxyz")
        command = [str(python), str(TIME_PEER_SCRIPT), "--peer", peer, "--structure", str(structure),
                   "--dtype", dtype, "--repeats", str(repeats)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"timing {peer} failed (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
