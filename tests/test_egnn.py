"""EGNN: the position update, the physics suite, model files, TorchScript, ASE and OpenMM.

The model is a tiny EGNN (16 features, 3 layers, 8 Gaussians) with random weights and
non-trivial energy statistics. Its position weights (φ_x's last layer) are drawn at Xavier gain 1
rather than the paper's 0.001, so that the updated positions move by a fair fraction of an Å and
the physics suite tests the path through them, not a negligible perturbation.
"""

import copy
import inspect

import numpy as np
import pytest
import torch
from ase import Atoms
from e3nn import o3

from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.models import ARCHITECTURES, EGNN, build_model
from eqff.models.egnn import POSITION_WEIGHT_GAIN, EGNNLayer, PositionUpdate
from eqff.testing import ModelTests, evaluate
from eqff.testing.engines import EngineTests


CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = {"cutoff": CUTOFF, "num_features": 16, "num_layers": 3, "num_radial": 8}
"""An EGNN small enough for the physics suite to run in seconds; two of its layers update positions."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O, as in conftest: non-trivial energy statistics."""
ENERGY_SCALE = 40.0
"""eV. At unit scale the tiny random EGNN's forces on the rattled diamond cell are about 3e-4
eV/Å; this scale brings them to the order of the PaiNN fixture's, so that the float32 checks
(tolerance 1e-4 eV/Å) are not vacuous."""


def _position_updates(model: EGNN) -> list[PositionUpdate]:
    return [layer.position_update for layer in model.layers]


def _make_egnn(seed: int = 0, position_gain: float = 1.0) -> EGNN:
    """The tiny EGNN (float32), seeded without touching the global RNG, energy statistics set, its
    position weights drawn at Xavier gain ``position_gain``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EGNN(ELEMENTS, **TINY)
        for update in _position_updates(model):
            torch.nn.init.xavier_uniform_(update.weights[-1].weight, gain=position_gain)
    model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS), ENERGY_SCALE)
    return model.eval()


@pytest.fixture
def egnn_model() -> EGNN:
    return _make_egnn()


def _updated_lengths(model: EGNN, atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor]:
    """The true edge lengths (E,) and r̃ (E,), the lengths the last layer reads, in float64."""
    model = copy.deepcopy(model).double()
    graph = atoms_to_graph(atoms, CUTOFF)
    vectors, distances = model.edge_geometry(graph)
    envelope = model.envelope(distances).unsqueeze(-1)
    h, lengths = model.embedding(model.species(graph[keys.ATOMIC_NUMBERS])), distances
    for layer in model.layers:
        h, vectors = layer(h, vectors, lengths, model.radial_basis(lengths), envelope, graph[keys.EDGE_INDEX])
        lengths = torch.linalg.vector_norm(vectors, dim=-1)
    return distances.detach(), lengths.detach()


# --------------------------------------------------------------------------------------------
# The position update
# --------------------------------------------------------------------------------------------


def _random_edges(num_atoms: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions (n, 3), a directed graph with both directions of some pairs (2, E), and messages (E, 8)."""
    generator = torch.Generator().manual_seed(seed)
    positions = 2.0 * torch.randn(num_atoms, 3, dtype=torch.float64, generator=generator)
    pairs = torch.combinations(torch.arange(num_atoms))[::2]  # (P, 2)
    edge_index = torch.cat([pairs.T, pairs.T.flip(0)], dim=1)  # (2, E)
    messages = torch.randn(edge_index.shape[1], 8, dtype=torch.float64, generator=generator)
    return positions, edge_index, messages


def test_edge_vector_update_is_the_papers_position_update():
    """v_ij + Δx̃_j − Δx̃_i are the edge vectors of the positions x_i + Δx̃_i, with
    Δx̃_i = (1/N) Σ_j (x_i − x_j) / (r_ij + 1) · u_ij φ_x(m_ij) summed explicitly."""
    torch.manual_seed(0)
    update = PositionUpdate(num_features=8, neighbour_normalization=3.0).double()
    positions, edge_index, messages = _random_edges(6, seed=1)
    centre, neighbour = edge_index
    vectors = positions[neighbour] - positions[centre]  # (E, 3)
    lengths = torch.linalg.vector_norm(vectors, dim=-1)
    envelope = torch.rand(len(lengths), 1, dtype=torch.float64)
    updated = update(messages, vectors, lengths, envelope, edge_index, 6)  # (E, 3)
    shifts = torch.zeros(6, 3, dtype=torch.float64)
    for e, (i, j) in enumerate(edge_index.T.tolist()):
        weight = envelope[e, 0] * update.weights(messages[e])[0]
        shifts[i] += (positions[i] - positions[j]) / (lengths[e] + 1.0) * weight / 3.0
    moved = positions + shifts.detach()
    torch.testing.assert_close(updated, moved[neighbour] - moved[centre])
    assert float(shifts.abs().max()) > 1e-4


def test_position_update_is_equivariant():
    """Rotating and reflecting the edge vectors rotates and reflects the updated ones."""
    torch.manual_seed(0)
    update = PositionUpdate(num_features=8, neighbour_normalization=3.0).double()
    positions, edge_index, messages = _random_edges(5, seed=2)
    vectors = positions[edge_index[1]] - positions[edge_index[0]]  # (E, 3)
    envelope = torch.rand(len(vectors), 1, dtype=torch.float64)
    transform = -o3.rand_matrix(dtype=torch.float64)  # a rotation times the inversion

    def updated(v: torch.Tensor) -> torch.Tensor:
        return update(messages, v, torch.linalg.vector_norm(v, dim=-1), envelope, edge_index, 5)

    torch.testing.assert_close(updated(vectors @ transform.T), updated(vectors) @ transform.T)


def test_position_weights_start_small_as_in_the_paper():
    model = EGNN(ELEMENTS, **TINY)
    for update in _position_updates(model):
        weight = update.weights[-1].weight  # (1, F)
        bound = POSITION_WEIGHT_GAIN * (6.0 / (weight.shape[1] + 1)) ** 0.5  # Xavier uniform
        assert float(weight.detach().abs().max()) <= bound and update.weights[-1].bias is None


def test_positions_move_and_change_the_energy(egnn_model, molecule):
    """The suite's model moves its positions by a fair fraction of an Å, and the energy depends on
    that: without position updates (φ_x = 0) it differs."""
    distances, lengths = _updated_lengths(egnn_model, molecule)
    assert 0.05 < float((lengths - distances).abs().max()) < 2.0
    still = copy.deepcopy(egnn_model)
    with torch.no_grad():
        for update in _position_updates(still):
            update.weights[-1].weight.zero_()
    torch.testing.assert_close(_updated_lengths(still, molecule)[1], distances, rtol=0, atol=0)
    assert abs(float(evaluate(still, molecule)[keys.ENERGY] - evaluate(egnn_model, molecule)[keys.ENERGY])) > 1e-3


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestEGNN(ModelTests, EngineTests):
    """Every check of the reusable physics suite (float32 and float64, reflections included)."""

    @pytest.fixture
    def model(self, egnn_model):
        return egnn_model

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2
        atomic_energies = evaluate(model, molecule)[keys.ATOMIC_ENERGIES]
        assert len(set(np.round(atomic_energies.numpy(), 6))) == len(molecule)


class TestEGNNWithoutPositionUpdates(ModelTests):
    """One layer: no position update at all, the invariant message-passing part alone."""

    @pytest.fixture
    def model(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            model = EGNN(ELEMENTS, **{**TINY, "num_layers": 1})
        model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS), ENERGY_SCALE)
        assert len(model.layers) == 0
        return model.eval()


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["egnn"] is EGNN
    hyperparameters = {"elements": [1, 8], **TINY}
    model = build_model("egnn", hyperparameters)
    assert set(model.hyperparameters) == set(inspect.signature(EGNN).parameters)
    assert model.hyperparameters.items() >= hyperparameters.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8]
    assert all(isinstance(layer, EGNNLayer) for layer in model.layers) and len(model.layers) == 2
    for bad in ({"num_layers": 0}, {"neighbour_normalization": 0.0}):
        with pytest.raises(ValueError, match="num_layers"):
            build_model("egnn", {"elements": [1], **bad})


def test_torchscript_matches_eager(egnn_model, periodic_atoms):
    scripted = torch.jit.script(egnn_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF, torch.float32)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], egnn_model(graph)[keys.ENERGY])

