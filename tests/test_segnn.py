"""SEGNN: the steerable blocks, the physics suite, model files and TorchScript.

The blocks of :mod:`eqff.nn.steerable` are checked for equivariance under rotations and
reflections with e3nn's ``assert_equivariant``. The model is a tiny SEGNN (16 features up to
l = 2, one layer, whose messages already combine the steerable features of both atoms built from
their own neighbourhoods), built once per module: building and deep-copying e3nn's tensor
products costs a few tenths of a second each, and the checks never modify the model they are given.
"""

import inspect

import numpy as np
import pytest
import torch
from ase import Atoms
from e3nn import o3
from e3nn.nn import Gate
from e3nn.util.test import assert_equivariant

from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.models import ARCHITECTURES, SEGNN, build_model
from eqff.models.segnn import NodeAttributes
from eqff.nn.steerable import (
    GatedSteerableLayer,
    SortedConcatenation,
    SteerableLayer,
    balanced_irreps,
    even_scalar_indices,
    irrep_copy_index,
)
from eqff.testing import ModelTests, evaluate

CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = dict(cutoff=CUTOFF, num_features=16, l_max=2, l_max_attr=2, num_layers=1, num_radial=4)
"""A SEGNN small enough for the physics suite to run in seconds (hidden irreps 8x0e+1x1o+1x2e).
A second layer would double the time of every check (deep copies of e3nn modules dominate it)."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O, as in conftest: non-trivial energy statistics."""
ENERGY_SCALE = 10.0
"""eV. The tiny random SEGNN's outputs vary little with geometry (at unit scale its forces on the
nearly tetrahedral sites of the diamond cell are about 2e-3 eV/Å); this scale brings its forces
to the order of the PaiNN fixture's, so that the float32 checks (tolerance 1e-4 eV/Å) are not vacuous."""
ATTR = o3.Irreps.spherical_harmonics(2)
HIDDEN = o3.Irreps(
    [(4, o3.Irrep("0e")), (2, o3.Irrep("0o")), (3, o3.Irrep("1o")), (1, o3.Irrep("1e")), (2, o3.Irrep("2e"))]
)
"""Irreps of both parities for the block tests (scalars first, as gated layers need)."""


def _make_segnn() -> SEGNN:
    """The tiny SEGNN, built and kept in float64 (see :mod:`eqff.models.segnn` on precision).

    e3nn computes the Clebsch–Gordan coefficients of a tensor product in the default dtype when
    it builds it; a model built in float32 and cast to float64 is equivariant only to about
    1e-8 (relative), above the float64 tolerance of the physics suite.
    """
    default_dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_default_dtype(torch.float64)
        try:
            model = SEGNN(ELEMENTS, **TINY)
        finally:
            torch.set_default_dtype(default_dtype)
    model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS, dtype=torch.float64), ENERGY_SCALE)
    return model.eval()


@pytest.fixture(scope="module")
def segnn_model() -> SEGNN:
    """The tiny SEGNN in float64; tests must not modify it (the physics checks work on copies)."""
    return _make_segnn()


# --------------------------------------------------------------------------------------------
# Steerable blocks
# --------------------------------------------------------------------------------------------


def test_balanced_irreps():
    assert balanced_irreps(128, 2) == o3.Irreps([(46, o3.Irrep("0e")), (14, o3.Irrep("1o")), (8, o3.Irrep("2e"))])
    assert balanced_irreps(128, 2, "multiplicity") == o3.Irreps(
        [(16, o3.Irrep("0e")), (14, o3.Irrep("1o")), (14, o3.Irrep("2e"))]
    )
    for num_features, l_max in [(16, 1), (16, 2), (100, 3), (64, 0)]:
        for balance in ("dimension", "multiplicity"):
            irreps = balanced_irreps(num_features, l_max, balance)
            assert irreps.dim == num_features
            assert [ir for _, ir in irreps] == [o3.Irrep(l, (-1) ** l) for l in range(l_max + 1)]
    with pytest.raises(ValueError, match="too few"):
        balanced_irreps(8, 2)
    with pytest.raises(ValueError, match="balance"):
        balanced_irreps(16, 1, "equal")


def test_even_scalar_indices():
    assert even_scalar_indices(HIDDEN).tolist() == [0, 1, 2, 3]
    mixed = o3.Irreps([(1, o3.Irrep("1o")), (2, o3.Irrep("0e")), (1, o3.Irrep("0o")), (1, o3.Irrep("0e"))])
    assert even_scalar_indices(mixed).tolist() == [3, 4, 6]
    assert even_scalar_indices(o3.Irreps([(2, o3.Irrep("1o"))])).numel() == 0


def test_irrep_copy_index_scales_whole_copies_equivariantly():
    """HIDDEN is 4x0e + 2x0o + 3x1o + 1x1e + 2x2e: 12 copies of 4, 2, 9, 3 and 10 components."""
    index = irrep_copy_index(HIDDEN)
    assert index.tolist() == [0, 1, 2, 3, 4, 5] + [6] * 3 + [7] * 3 + [8] * 3 + [9] * 3 + [10] * 5 + [11] * 5
    weights = torch.randn(5, HIDDEN.num_irreps).index_select(1, index)  # (5, D), invariant
    features = HIDDEN.randn(5, -1)
    transform = HIDDEN.D_from_matrix(-o3.rand_matrix())  # a rotation times the inversion
    torch.testing.assert_close((features @ transform.T) * weights, (features * weights) @ transform.T)


@pytest.mark.parametrize("layer_class", [SteerableLayer, GatedSteerableLayer])
def test_steerable_layers_are_equivariant(layer_class):
    """Under rotations and reflections (parities of both signs in the features)."""
    torch.manual_seed(0)
    layer = layer_class(HIDDEN + HIDDEN, ATTR, HIDDEN)
    steerable = layer.layer if isinstance(layer, GatedSteerableLayer) else layer
    with torch.no_grad():  # non-zero biases, so that they are tested too
        steerable.bias.normal_()
    errors = assert_equivariant(layer, irreps_in=[HIDDEN + HIDDEN, ATTR], irreps_out=[HIDDEN])
    assert len(errors) >= 2  # rotations and parity were both tested


def test_sorted_concatenation_is_an_equivariant_permutation():
    irreps = [HIDDEN, ATTR, o3.Irreps([(3, o3.Irrep("0e"))])]
    concatenation = SortedConcatenation(irreps)
    assert concatenation.irreps_out == (HIDDEN + ATTR + irreps[2]).sort().irreps.simplify()
    assert sorted(concatenation.order.tolist()) == list(range(concatenation.irreps_out.dim))
    parts = [HIDDEN.randn(5, -1), ATTR.randn(5, -1), torch.randn(5, 3)]
    rotation = -o3.rand_matrix()  # a rotation times the inversion
    rotated = [part @ part_irreps.D_from_matrix(rotation).T for part, part_irreps in zip(parts, irreps)]
    expected = concatenation(parts) @ concatenation.irreps_out.D_from_matrix(rotation).T  # (5, D)
    torch.testing.assert_close(concatenation(rotated), expected)


def test_bias_only_on_even_scalars():
    torch.manual_seed(0)
    layer = SteerableLayer(HIDDEN, ATTR, HIDDEN)
    with torch.no_grad():
        layer.bias.fill_(1.0)
    out = layer(torch.zeros(3, HIDDEN.dim), ATTR.randn(3, -1))  # (3, D)
    expected = torch.zeros(HIDDEN.dim)
    expected[:4] = 1.0
    torch.testing.assert_close(out, expected.expand(3, -1), rtol=0, atol=0)


def test_layers_keep_unit_mean_square():
    """The initialisation: inputs and attributes of unit mean square per component give outputs of about the same."""
    torch.manual_seed(0)
    irreps = balanced_irreps(64, 2)
    x = irreps.randn(2000, -1)  # (N, D)
    attr = o3.spherical_harmonics(ATTR, torch.randn(2000, 3), normalize=True, normalization="component")
    for layer in (SteerableLayer(irreps, ATTR, irreps), GatedSteerableLayer(irreps, ATTR, irreps)):
        mean_square = layer(x, attr).detach().pow(2).mean()
        assert 0.7 < float(mean_square) < 1.4, type(layer).__name__


def test_gated_layer_gates_every_non_scalar_and_needs_scalars_first():
    layer = GatedSteerableLayer(HIDDEN, ATTR, HIDDEN)
    assert isinstance(layer.gate, Gate) and layer.irreps_out == HIDDEN
    assert layer.layer.irreps_out.count(o3.Irrep("0e")) == 4 + 6  # 4 scalars and one gate per non-scalar irrep
    scalars_only = GatedSteerableLayer(HIDDEN, ATTR, o3.Irreps([(3, o3.Irrep("0e"))]))
    assert scalars_only(HIDDEN.randn(2, -1), ATTR.randn(2, -1)).shape == (2, 3)
    with pytest.raises(ValueError, match="scalars first"):
        GatedSteerableLayer(HIDDEN, ATTR, o3.Irreps([(1, o3.Irrep("1o")), (2, o3.Irrep("0e"))]))


def test_node_attributes_are_a_smooth_mean_with_unit_scalar():
    attr = torch.tensor([[1.0, 2.0, 0.0, 0.0], [1.0, 0.0, 4.0, 0.0], [1.0, 0.0, 0.0, 8.0]])  # (E, A)
    envelope = torch.tensor([1.0, 0.5, 0.0])  # the third edge is at or beyond the cutoff
    centre = torch.tensor([0, 0, 2])
    node_attr = NodeAttributes(o3.Irreps.spherical_harmonics(1))(attr, envelope, centre, 3)  # (3, A)
    expected = torch.tensor([[1.0, 2.0 / 2.5, 2.0 / 2.5, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(node_attr, expected)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestSEGNN(ModelTests):
    """Every check of the reusable physics suite (float32 and float64, reflections included)."""

    @pytest.fixture
    def model(self, segnn_model):
        return segnn_model

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2
        atomic_energies = evaluate(model, molecule)[keys.ATOMIC_ENERGIES]
        assert len(set(np.round(atomic_energies.numpy(), 6))) == len(molecule)

    def test_edges_beyond_the_cutoff_change_nothing(self, model, molecule):
        """The calculators' neighbour lists have a skin: edges longer than the cutoff must not count."""
        graph = atoms_to_graph(molecule, CUTOFF)  # float64
        with_skin = atoms_to_graph(molecule, CUTOFF + 1.0)
        assert with_skin[keys.EDGE_INDEX].shape[1] > graph[keys.EDGE_INDEX].shape[1]
        torch.testing.assert_close(model(with_skin)[keys.ENERGY], model(graph)[keys.ENERGY], rtol=0, atol=1e-12)


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["segnn"] is SEGNN
    hyperparameters = {"elements": [1, 8], **TINY}
    model = build_model("segnn", hyperparameters)
    assert set(model.hyperparameters) == set(inspect.signature(SEGNN).parameters)
    assert model.hyperparameters.items() >= hyperparameters.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8]
    assert model.irreps_hidden == balanced_irreps(16, 2)
    with pytest.raises(ValueError, match="num_layers"):
        build_model("segnn", {"elements": [1], "num_layers": 0})


def test_torchscript_matches_eager_and_leaves_the_model_alone(segnn_model, periodic_atoms):
    scripted = torch.jit.script(segnn_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], segnn_model(graph)[keys.ENERGY])
    gates = [module.gate for module in segnn_model.modules() if isinstance(module, GatedSteerableLayer)]
    assert gates and all(type(gate) is Gate for gate in gates)  # the eager model keeps e3nn's eager gates
    assert scripted.readout[0].weight.data_ptr() == segnn_model.readout[0].weight.data_ptr()  # shared weights


def test_openmm_torch_module(segnn_model, molecule):
    """The TorchScript module openmm-torch's TorchForce would run: the model's energy in kJ/mol."""
    pytest.importorskip("openmmml", reason="openmm-ml is not installed")
    pytest.importorskip("vesin_torch", reason="vesin-torch is not installed")
    from eqff.data.units import EV_IN_KJ_PER_MOL, NANOMETRE
    from eqff.integrations.openmm import build_torch_module

    module = build_torch_module(segnn_model, molecule.numbers, list(range(len(molecule))))
    energy = module(torch.tensor(molecule.positions / NANOMETRE))
    expected = float(evaluate(segnn_model, molecule)[keys.ENERGY]) * EV_IN_KJ_PER_MOL
    assert float(energy) == pytest.approx(expected, rel=1e-12)


def test_isolated_atom_is_finite(segnn_model):
    """An atom without edges: the node attribute is e_0, and the energy is finite."""
    result = evaluate(segnn_model, Atoms("O", positions=[[0.0, 0.0, 0.0]]))
    assert bool(torch.isfinite(result[keys.ENERGY])) and not result[keys.FORCES].any()
