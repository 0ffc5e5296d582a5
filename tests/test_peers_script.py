"""``eqff/peers``: the peer-timing script and the script that makes its virtual environment.

The runs of ``time_peer.py`` need the peers venv (``eqff/peers/create_venv.sh PATH``); they are
skipped unless ``EQFF_PEERS_PYTHON`` names that venv's python.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from eqff.peers.run import time_peer_training_step

PEERS_DIR = Path(__file__).resolve().parents[1] / "eqff" / "peers"
TIME_PEER = PEERS_DIR / "time_peer.py"
CREATE_VENV = PEERS_DIR / "create_venv.sh"
PEERS_PYTHON = os.environ.get("EQFF_PEERS_PYTHON")

WATER_XYZ = """3
water, positions in Å
O 0.000 0.000 0.119
H 0.000 0.763 -0.477
H 0.000 -0.763 -0.477
"""

needs_peers_venv = pytest.mark.skipif(
    not PEERS_PYTHON, reason="EQFF_PEERS_PYTHON is not set (make the venv with eqff/peers/create_venv.sh PATH)"
)


def run_time_peer(*args: str) -> subprocess.CompletedProcess:
    """``time_peer.py`` run by the peers venv's python on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [PEERS_PYTHON, str(TIME_PEER), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_time_peer_compiles_and_does_not_import_eqff():
    subprocess.run([sys.executable, "-m", "py_compile", str(TIME_PEER)], check=True)
    assert not re.search(r"^\s*(import|from)\s+eqff\b", TIME_PEER.read_text(), flags=re.MULTILINE)


def test_create_venv_pins_torch_first():
    """The peers' venv scripts source the shared setup, which installs eqff's CPU torch and holds it."""
    shared = (CREATE_VENV.parent / "cpu_torch_venv.sh").read_text()
    assert 'TORCH_VERSION="2.13.0"' in shared and "set -euo pipefail" in shared
    assert shared.index('echo "torch==${TORCH_VERSION}" > "$constraints"') < shared.index('install "torch==')
    for script in (CREATE_VENV, CREATE_VENV.parent / "create_nequip_venv.sh"):
        text = script.read_text()
        assert text.index('source "$(dirname "$0")/cpu_torch_venv.sh"') < text.index('install -c "$constraints"')


@needs_peers_venv
@pytest.mark.parametrize("peer", ["mace", "schnetpack-painn"])
def test_time_peer_prints_one_json_line(peer, tmp_path):
    structure = tmp_path / "water.xyz"
    structure.write_text(WATER_XYZ)
    result = run_time_peer("--peer", peer, "--structure", str(structure), "--dtype", "float32", "--repeats", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    record = json.loads(lines[0])
    assert record["peer"] == peer
    assert record["ms"] > 0
    assert record["atoms"] == 3
    assert record["dtype"] == "float32"
    assert record["torch_threads"] == 1
    assert record["versions"]["torch"].startswith("2.13.0")
    assert record["description"]


@needs_peers_venv
def test_time_peer_fails_clearly_on_an_element_it_does_not_know(tmp_path):
    structure = tmp_path / "silane.xyz"
    structure.write_text("2\n\nSi 0 0 0\nH 0 0 1.48\n")
    result = run_time_peer("--peer", "schnetpack-painn", "--structure", str(structure), "--repeats", "1")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Si" in result.stderr and "failed" in result.stderr


def labelled_waters(count: int) -> list:
    """``count`` rattled water molecules labelled with zero energy (eV) and forces (eV/Å)."""
    frames = []
    for seed in range(count):
        atoms = molecule("H2O")
        atoms.rattle(0.05, seed=seed)
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((3, 3)))
        frames.append(atoms)
    return frames


@needs_peers_venv
@pytest.mark.parametrize(("peer", "hyperparameters"), [("mace", None), ("schnetpack-painn", {"n_rbf": 8})])
def test_time_peer_times_a_training_step_on_a_batch(peer, hyperparameters):
    record = time_peer_training_step(PEERS_PYTHON, peer, labelled_waters(2), repeats=1, threads=1,
                                     hyperparameters=hyperparameters)  # fmt: skip
    assert record["peer"] == peer
    assert record["ms"] > 0
    assert (record["frames"], record["atoms"], record["pairs"]) == (2, 6, 12)  # each atom pairs with the other two
    assert record["dtype"] == "float32" and record["torch_threads"] == 1
    assert "Adam" in record["description"]
    if hyperparameters:
        assert "8 Gaussian RBF" in record["description"]


@needs_peers_venv
def test_time_peer_refuses_a_training_step_without_labels(tmp_path):
    structure = tmp_path / "water.xyz"
    structure.write_text(WATER_XYZ)
    result = run_time_peer("--peer", "schnetpack-painn", "--structure", str(structure), "--training-step",
                           "--repeats", "1")  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert "labelled with energy and forces" in result.stderr
