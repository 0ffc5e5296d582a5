"""Compiled energy and forces in a Potential: the eager answers, compiled when asked or once eager
calls have taken what compiling costs, and a model that cannot compile stays eager with a warning."""

import numpy as np
import pytest
import torch
from ase.build import molecule

import eqff.compilation
from eqff.compilation import COMPILE_SECONDS, EnergyForcesFunction
from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.errors import ModelCompileError
from eqff.models import build_model
from eqff.nn.forces import compiled_energy_forces
from eqff.nn.species import sum_per_frame
from eqff.potential import Potential
from eqff.threads import torch_threads
from tiny_models import TINY



def ethanol_call(potential: Potential) -> dict[str, np.ndarray]:
    ethanol = molecule("CH3CH2OH")
    return potential(ethanol.numbers, ethanol.positions, ethanol.cell.array, ethanol.pbc, compute_stress=False)


COMPILED_SIZES = {
    **{architecture: size for architecture, size in TINY.items() if architecture != "gemnet-t"},
    "segnn": {**TINY["segnn"], "l_max": 1, "l_max_attr": 1},
    "tfn": {**TINY["tfn"], "l_max": 1},
}
"""The tiny sizes, with SEGNN and TFN at l_max 1: the same modules compile, in about half the
time that l_max 2 takes. GemNet-T's compiled energies, forces and weight gradients
are checked in test_gemnet.py (test_compiled_energy_forces_match_eager_ones), through the same
compiled function."""


@pytest.mark.parametrize("architecture", sorted(COMPILED_SIZES))
@pytest.mark.compiles
def test_compiled_calls_give_the_eager_answers(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, {"elements": [1, 6, 8], **COMPILED_SIZES[architecture]})
    eager = ethanol_call(Potential(model, dtype="float64", compile=False))
    potential = Potential(model, dtype="float64", compile=True)
    compiled = ethanol_call(potential)
    assert potential.energy_forces.compiled is not None, "the model did not compile"
    assert compiled[keys.ENERGY] == pytest.approx(eager[keys.ENERGY], rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(compiled[keys.FORCES], eager[keys.FORCES], rtol=0, atol=1e-9)


@pytest.mark.compiles
def test_default_compiles_once_eager_calls_have_taken_the_architectures_compile_time(painn_model, monkeypatch, capsys):
    monkeypatch.setattr(eqff.compilation, "COMPILE_SECONDS", {"painn": 3600.0})
    potential = Potential(painn_model, dtype="float64")
    assert potential.energy_forces.compile_after_seconds == 3600.0
    first = ethanol_call(potential)
    assert potential.energy_forces.compiled is None and potential.energy_forces.eager_seconds > 0
    potential.energy_forces.compile_after_seconds = potential.energy_forces.eager_seconds
    second = ethanol_call(potential)
    assert potential.energy_forces.compiled is not None
    assert "eqff: compiling PaiNN's energy and forces (after 0 s of eager calls)" in capsys.readouterr().err
    np.testing.assert_allclose(second[keys.FORCES], first[keys.FORCES], rtol=0, atol=1e-9)


def test_architectures_that_do_not_gain_are_not_compiled_by_default():
    assert set(COMPILE_SECONDS) == {"painn", "gemnet-t", "segnn", "tfn", "schnet", "egnn", "dimenet++"}  # not PONITA, see the module


def test_stress_is_computed_eagerly(painn_model, periodic_atoms):
    function = EnergyForcesFunction(painn_model.double().eval(), compile=True)
    out = function(atoms_to_graph(periodic_atoms, painn_model.cutoff, torch.float64), compute_stress=True)
    assert keys.STRESS in out and function.compiled is None


class BranchesOnData(torch.nn.Module):
    """An energy model whose forward branches on a tensor's value: not one graph for torch.compile."""

    cutoff = 5.0

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        squares = graph[keys.POSITIONS].square().sum(dim=1)  # (n,)
        atomic_energies = squares if squares.sum() > 1.0 else -squares
        return {keys.ENERGY: atomic_energies.sum().reshape(1), keys.ATOMIC_ENERGIES: atomic_energies}


def test_compiling_a_model_that_branches_on_data_names_it():
    graph = {keys.POSITIONS: torch.ones(3, 3), keys.EDGE_INDEX: torch.zeros(2, 0, dtype=torch.long)}
    with pytest.raises(ModelCompileError, match="cannot trace BranchesOnData"):
        compiled_energy_forces(BranchesOnData())(graph)


def test_a_model_that_cannot_compile_is_named_and_stays_eager(molecule):
    function = EnergyForcesFunction(BranchesOnData(), compile=True)
    graph = atoms_to_graph(molecule, 5.0, torch.float64)
    with pytest.warns(RuntimeWarning, match="cannot trace BranchesOnData.*eqff goes on without compiling"):
        out = function(graph, compute_stress=False)
    assert function.compiled is None and function.compile is False
    torch.testing.assert_close(out[keys.FORCES], -2 * graph[keys.POSITIONS])


def test_code_generation_that_fails_is_named(monkeypatch):
    """TorchInductor's failures (seen on 2 threads for some graphs) become one ModelCompileError."""

    def failing_compile(function, **options):
        def compiled(*args):
            raise torch._inductor.exc.InductorError(AssertionError("codegen"), None)

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    graph = {keys.POSITIONS: torch.ones(3, 3), keys.EDGE_INDEX: torch.zeros(2, 0, dtype=torch.long)}
    with pytest.raises(ModelCompileError, match="could not generate code for BranchesOnData.*AssertionError"):
        compiled_energy_forces(BranchesOnData())(graph)


def test_a_compiled_function_that_fails_to_recompile_goes_on_eagerly(molecule):
    function = EnergyForcesFunction(BranchesOnData(), compile=True)

    def failing_recompilation(graph):
        raise ModelCompileError("torch.compile could not generate code for BranchesOnData's energy and forces")

    function.compiled = failing_recompilation
    graph = atoms_to_graph(molecule, 5.0, torch.float64)
    with pytest.warns(RuntimeWarning, match="could not generate code.*eqff goes on without compiling"):
        out = function(graph, compute_stress=False)
    assert function.compiled is None and function.compile is False
    torch.testing.assert_close(out[keys.FORCES], -2 * graph[keys.POSITIONS])


@pytest.mark.compiles
def test_frame_energies_compile_for_two_threads():
    """Summing the float64 atomic energies of one frame as large as water-1029 compiles for two CPU
    threads and gives their sum (TorchInductor could not generate that code for a scatter-add)."""
    atomic_energies = torch.rand(1029, dtype=torch.float64)  # (n,) eV
    batch = torch.zeros(1029, dtype=torch.long)  # (n,) one frame
    with torch_threads(2):
        energy = torch.compile(sum_per_frame, dynamic=True)(atomic_energies, batch, 1)  # (1,)
    torch.testing.assert_close(energy, atomic_energies.sum().unsqueeze(0), rtol=1e-12, atol=1e-12)
