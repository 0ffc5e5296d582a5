"""``eqff/peers``: the peer-timing script and the script that makes its virtual environment.

The runs of ``time_peer.py`` need the peers venv (``eqff/peers/create_venv.sh PATH``), or for
NequIP its own (``eqff/peers/create_nequip_venv.sh PATH``); they are skipped unless
``EQFF_PEERS_PYTHON`` (``EQFF_NEQUIP_PYTHON``) names that venv's python.
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

from eqff.peers import train_peer
from eqff.peers.run import time_peer_command, time_peer_training_step

PEERS_DIR = Path(__file__).resolve().parents[1] / "eqff" / "peers"
TIME_PEER = PEERS_DIR / "time_peer.py"
CREATE_VENV = PEERS_DIR / "create_venv.sh"
PEERS_PYTHON = os.environ.get("EQFF_PEERS_PYTHON")
NEQUIP_PYTHON = os.environ.get("EQFF_NEQUIP_PYTHON")

WATER_XYZ = """3
water, positions in Å
O 0.000 0.000 0.119
H 0.000 0.763 -0.477
H 0.000 -0.763 -0.477
"""

needs_peers_venv = pytest.mark.skipif(
    not PEERS_PYTHON, reason="EQFF_PEERS_PYTHON is not set (make the venv with eqff/peers/create_venv.sh PATH)"
)
needs_nequip_venv = pytest.mark.skipif(
    not NEQUIP_PYTHON,
    reason="EQFF_NEQUIP_PYTHON is not set (make the venv with eqff/peers/create_nequip_venv.sh PATH)",
)
TINY_NEQUIP = {"num_layers": 2, "l_max": 1, "num_features": 8}
"""A NequIP small enough to build and call in seconds."""


def run_time_peer(*args: str, python: str | None = PEERS_PYTHON) -> subprocess.CompletedProcess:
    """``time_peer.py`` run by a peer venv's python (the peers venv's unless given) on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([python, str(TIME_PEER), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def time_peer_module(monkeypatch):
    """``time_peer.py`` imported as its peers' pythons run it: with its own folder on ``sys.path``."""
    monkeypatch.syspath_prepend(str(PEERS_DIR))
    import time_peer

    return time_peer


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


def test_nequip_is_timed_at_the_size_it_is_trained_at(time_peer_module):
    trained = {key: value for key, value in train_peer.NEQUIP_RMD17_MODEL.items() if key not in ("model_dtype", "seed")}
    assert time_peer_module.PEERS["nequip"].defaults == trained
    description = time_peer_module.nequip_description(trained)
    assert description.startswith("NequIP (rMD17 size, Batzner et al. 2022): 5 layers, l_max 3 with both parities, 64")
    assert "size as given" in time_peer_module.nequip_description({**trained, "num_features": 8})


def test_nequip_training_steps_are_refused(time_peer_module, tmp_path):
    structure = tmp_path / "water.xyz"
    structure.write_text(WATER_XYZ)
    with pytest.raises(SystemExit):
        time_peer_module.parse_args(["--peer", "nequip", "--structure", str(structure), "--training-step"])
    with pytest.raises(ValueError, match="per call only"):
        time_peer_command("python", "nequip", structure, "float32", 1, training_step=True)


@needs_nequip_venv
def test_time_peer_times_nequip_through_its_calculator(tmp_path):
    structure = tmp_path / "water.xyz"
    structure.write_text(WATER_XYZ)
    result = run_time_peer("--peer", "nequip", "--structure", str(structure), "--repeats", "1",
                           "--hyperparameters", json.dumps(TINY_NEQUIP), python=NEQUIP_PYTHON)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["peer"] == "nequip" and record["ms"] > 0 and record["atoms"] == 3
    assert record["torch_threads"] == 1
    assert set(record["versions"]) == {"nequip", "torch"}
    assert record["description"].startswith("NequIP (size as given): 2 layers, l_max 1 with both parities, 8 features")
    assert "NequIPCalculator" in record["description"]
