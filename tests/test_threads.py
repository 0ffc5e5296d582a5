"""The torch thread count of force calls: one for molecules unless the user chose a number."""

import copy

import pytest
import torch
from ase.build import molecule

import eqff.threads
from eqff.errors import EqffInputError
from eqff.integrations.ase import EqffCalculator
from eqff.threads import MULTI_THREAD_MIN_ATOMS, call_threads, torch_threads


@pytest.fixture
def torch_default_of_two(monkeypatch):
    """torch at two threads, as its default on a 2-CPU machine, with no thread variable set."""
    for name in eqff.threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(eqff.threads, "_THREADS_AT_IMPORT", 2)
    yield
    torch.set_num_threads(before)


def test_molecules_get_one_thread_unless_the_user_chose(torch_default_of_two, monkeypatch):
    assert call_threads(21, None) == 1
    assert call_threads(MULTI_THREAD_MIN_ATOMS, None) is None  # large systems: torch's setting
    assert call_threads(21, 3) == 3
    torch.set_num_threads(3)  # by the user, after importing eqff
    assert call_threads(21, None) is None
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert call_threads(21, None) is None


def test_torch_threads_restores_the_setting_even_after_an_error(torch_default_of_two):
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def record_threads(model: torch.nn.Module, seen: list[int]) -> None:
    """Make ``model`` append torch's thread count to ``seen`` whenever it is called."""
    model.register_forward_pre_hook(lambda module, inputs: seen.append(torch.get_num_threads()))


@pytest.mark.parametrize(("threads", "expected"), [(None, 1), (2, 2)])
def test_the_calculator_calls_the_model_with_the_chosen_threads(torch_default_of_two, painn_model, threads, expected):
    atoms = molecule("CH3CH2OH")
    atoms.calc = EqffCalculator(copy.deepcopy(painn_model), threads=threads)
    seen: list[int] = []
    record_threads(atoms.calc.potential.model, seen)
    atoms.get_forces()
    assert seen == [expected] and torch.get_num_threads() == 2


def test_threads_must_be_positive(painn_model):
    with pytest.raises(EqffInputError, match="threads must be at least 1, got 0"):
        EqffCalculator(copy.deepcopy(painn_model), threads=0)


def test_the_openmm_force_takes_a_thread_count(painn_model, tmp_path):
    pytest.importorskip("openmmml")
    from eqff.integrations.openmm import EqffPotentialImpl
    from eqff.model_file import save_model

    path = save_model(tmp_path / "painn.eqff", painn_model)
    assert EqffPotentialImpl("eqff", str(path)).load_potential(device="cpu", threads=1).threads == 1
