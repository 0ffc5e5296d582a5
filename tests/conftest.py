"""Shared fixtures: a tiny random PaiNN, a small organic molecule and a small periodic cell.

Everything is deterministic (fixed seeds) and tiny, so the suite runs in seconds on a CPU.
"""

from collections.abc import Callable
from pathlib import Path

import ase.build
import numpy as np
import pytest
import torch
from ase import Atoms

import eqff.compilation
from eqff.models import PaiNN

ELEMENTS = [1, 6, 7, 8]
CUTOFF = 4.0
ENERGY_SCALE = 1.7
"""eV; a non-trivial scale so the readout is not left at its default of 1."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O: non-trivial and of a realistic sign and order of magnitude."""


@pytest.fixture(autouse=True, scope="session")
def _single_intra_op_thread():
    """Run torch on one intra-op thread during the tests.

    The test models are tiny, so threads only add synchronisation; on a busy 2-core machine a
    2-thread parallel region was measured at ~0.45 s per evaluation instead of ~1 ms.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_compilation_unless_asked(monkeypatch):
    """Potentials compile only where a test asks (``compile=True``, or a threshold it sets):
    a long test run must not stop for a minute to compile (:mod:`eqff.compilation`)."""
    monkeypatch.setattr(eqff.compilation, "COMPILE_SECONDS", {})


@pytest.fixture(autouse=True)
def _fresh_compiler_caches():
    """Each test compiles from empty TorchDynamo caches. Every model is compiled through the same
    function (:func:`eqff.nn.forces.compiled_energy_forces`), and Dynamo allows one code object 8
    compilations per process: the tests compile more models than that in one process."""
    yield
    torch._dynamo.reset()


def _make_painn(seed: int = 0, cutoff: float = CUTOFF, elements: list[int] = ELEMENTS) -> PaiNN:
    """A small PaiNN with random weights (seeded, without touching the global RNG) in float32."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaiNN(elements, cutoff=cutoff, num_features=16, num_interactions=2, num_radial=8)
    offsets = torch.tensor([dict(zip(ELEMENTS, ENERGY_OFFSETS))[z] for z in elements])
    model.scale_shift.set_statistics(offsets, ENERGY_SCALE)
    return model.eval()


@pytest.fixture
def painn_model() -> PaiNN:
    """Random-weights PaiNN (F=16, 2 interactions) of H, C, N, O with cutoff 4 Å, float32."""
    return _make_painn()


@pytest.fixture(name="make_painn")
def make_painn_fixture():
    """The factory of ``painn_model``: ``make_painn(seed=0, cutoff=4.0, elements=[1, 6, 7, 8])``."""
    return _make_painn


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request) -> str:
    """The same two dtypes by name, as the calculator takes them."""
    return request.param


def _make_molecule(seed: int = 0) -> Atoms:
    """Acetamide CH3CONH2 (9 atoms, all of H, C, N, O), rattled by 0.05 Å: a small aspirin-like organic."""
    atoms = ase.build.molecule("CH3CONH2")
    atoms.rattle(0.05, seed=seed)
    return atoms


def _make_periodic_cell(seed: int = 0) -> Atoms:
    """Diamond primitive cell (2 C, triclinic 60° cell, vectors 2.52 Å < cutoff): atoms see their own images."""
    atoms = ase.build.bulk("C", "diamond", a=3.57)
    atoms.rattle(0.05, seed=seed)
    assert np.linalg.norm(atoms.cell.array, axis=1).max() < CUTOFF
    return atoms


@pytest.fixture
def molecule() -> Atoms:
    return _make_molecule()


@pytest.fixture
def periodic_atoms() -> Atoms:
    return _make_periodic_cell()


@pytest.fixture(scope="session")
def card_test_maes() -> Callable[[Path], tuple[float, float]]:
    """Reads a potential's card: its energy MAE (meV) and force MAE (meV/Å) from the card's
    `eqff evaluate` table of the test frames (``test_01``; over all frames for several molecules;
    a card may show other tables too)."""

    def read(card: Path) -> tuple[float, float]:
        lines = card.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("eqff evaluate: model") and "test_01" in line)
        end = next(i for i in range(start, len(lines)) if lines[i].startswith("frames "))
        rows = {line[:15].strip(): line.split() for line in lines[start + 1 : end]}  # the table over all frames
        return float(rows["energy   meV"][2]), float(rows["forces   meV/Å"][2])

    return read
