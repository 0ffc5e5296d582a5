"""``eqff.predict``: many structures in batches, the same numbers as one calculator call each."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule as ase_molecule

import eqff
import eqff.prediction
from eqff import EqffCalculator
from eqff.data.frames import Frame
from eqff.errors import UnknownElementError
from eqff.threads import MULTI_THREAD_MIN_ATOMS
from eqff.memory import can_measure, free_bytes, peak_bytes
from eqff.potential import Potential


def structures(molecule, periodic_atoms) -> list:
    """Molecules of different sizes and a periodic cell, interleaved, one of them as a Frame."""
    water = ase_molecule("H2O")
    return [molecule, periodic_atoms, water, Frame.from_atoms(ase_molecule("CH3OH")), periodic_atoms.copy(), water]


@pytest.mark.parametrize("threads", [1, 2], ids=["one-call-at-a-time", "two-calls-at-once"])
def test_predict_gives_the_calculators_numbers_in_order(painn_model, molecule, periodic_atoms, threads):
    given = structures(molecule, periodic_atoms) * 3
    predictions = eqff.predict(copy.deepcopy(painn_model), given, batch_size=2, dtype="float64", threads=threads)
    calculator = EqffCalculator(copy.deepcopy(painn_model), dtype="float64")
    assert len(predictions) == len(given)
    for structure, prediction in zip(given, predictions, strict=True):
        atoms = structure.to_atoms() if isinstance(structure, Frame) else structure.copy()
        atoms.calc = calculator
        assert prediction.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(prediction.forces, atoms.get_forces(), rtol=0, atol=1e-10)
        if atoms.pbc.all():
            np.testing.assert_allclose(prediction.stress, calculator.potential(
                atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, compute_stress=True)["stress"],
                rtol=0, atol=1e-10)  # fmt: skip
        else:
            assert prediction.stress is None


def test_predict_refuses_an_unknown_element_before_evaluating_anything(painn_model, molecule):
    salt = ase_molecule("NaCl")
    with pytest.raises(UnknownElementError, match=r"Na \(11\), Cl \(17\)"):
        eqff.predict(copy.deepcopy(painn_model), [molecule, salt])


def test_predict_needs_a_positive_batch_size(painn_model, molecule):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        eqff.predict(copy.deepcopy(painn_model), [molecule], batch_size=0)


def test_predict_takes_fewer_frames_per_call_where_the_batch_would_not_fit_in_memory(painn_model, molecule, monkeypatch):
    """With (pretended) free memory for about two frames' working memory, batches hold at most one."""
    sizes = []
    predict_graphs = eqff.prediction._predict_graphs

    def counted_predict_graphs(potential, frames, graphs, compute_stress):
        sizes.append(len(frames))
        return predict_graphs(potential, frames, graphs, compute_stress)

    def one_gigabyte_peak(call, device):
        call()
        return 10**9

    monkeypatch.setattr(eqff.prediction, "_predict_graphs", counted_predict_graphs)
    monkeypatch.setattr(eqff.prediction, "peak_bytes", one_gigabyte_peak)
    monkeypatch.setattr(eqff.prediction, "free_bytes", lambda device: 3 * 10**9)
    given = [molecule] * 5
    predictions = eqff.predict(copy.deepcopy(painn_model), given, batch_size=4, dtype="float64")
    assert sizes == [1, 1, 1, 1, 1, 1]  # the measuring call, then one frame per call
    reference = eqff.predict(copy.deepcopy(painn_model), given[:1], dtype="float64")[0]
    assert [p.energy for p in predictions] == pytest.approx([reference.energy] * 5, rel=1e-12)


def test_predict_on_cpu_keeps_each_call_within_its_pair_budget(painn_model, molecule, monkeypatch):
    """A call takes frames up to CPU_PAIRS_PER_CALL neighbour pairs; a frame with more goes alone."""
    pairs_per_call = []
    predict_graphs = eqff.prediction._predict_graphs

    def counted_predict_graphs(potential, frames, graphs, compute_stress):
        pairs_per_call.append([graph["edge_index"].shape[1] for graph in graphs])
        return predict_graphs(potential, frames, graphs, compute_stress)

    monkeypatch.setattr(eqff.prediction, "_predict_graphs", counted_predict_graphs)
    monkeypatch.setattr(eqff.prediction, "can_measure", lambda device: False)
    water, methanol = ase_molecule("H2O"), ase_molecule("CH3OH")  # 6 and 30 pairs
    monkeypatch.setattr(eqff.prediction, "CPU_PAIRS_PER_CALL", 13)
    predictions = eqff.predict(copy.deepcopy(painn_model), [water, water, water, methanol, water], dtype="float64")
    assert pairs_per_call == [[6, 6], [6], [30], [6]]
    reference = eqff.predict(copy.deepcopy(painn_model), [water, methanol], batch_size=1, dtype="float64")
    assert [p.energy for p in predictions] == pytest.approx([reference[0].energy] * 3 + [reference[1].energy,
                                                           reference[0].energy], rel=1e-12)  # fmt: skip


def test_calls_run_several_at_once_only_when_eager_on_small_structures_on_a_cpu(painn_model, molecule):
    small = [Frame.from_atoms(molecule)]
    large = [Frame.from_atoms(Atoms(f"C{MULTI_THREAD_MIN_ATOMS}", positions=np.zeros((MULTI_THREAD_MIN_ATOMS, 3))))]
    eager = Potential(copy.deepcopy(painn_model), threads=3, compile=False)
    compiled = Potential(copy.deepcopy(painn_model), threads=3, compile=True)
    assert eqff.prediction.worker_count(eager, small) == 3
    assert eqff.prediction.worker_count(eager, small + large) == 1
    assert eqff.prediction.worker_count(compiled, small) == 1


RETAINING_PROCESS = """
import numpy as np, torch
from eqff.allocator import retain_freed_memory
from eqff.memory import peak_bytes
retain_freed_memory()  # as eqff's own commands do: freed memory stays in the process
float(np.ones(40_000_000).sum())  # 305 MiB, freed but kept
print(peak_bytes(lambda: float(np.ones(20_000_000).sum()), torch.device("cpu")) / 2**20)  # 153 MiB, freed
"""


@pytest.mark.skipif(not can_measure(torch.device("cpu")), reason="needs Linux's /proc/self/clear_refs and glibc")
def test_peak_bytes_sees_a_calls_working_memory_in_a_process_that_keeps_freed_memory():
    """In a fresh process, since keeping freed memory cannot be undone in this one."""
    result = subprocess.run([sys.executable, "-c", RETAINING_PROCESS], capture_output=True, text=True, check=True)
    assert 140 < float(result.stdout) < 400
    assert 0 < free_bytes(torch.device("cpu"))
