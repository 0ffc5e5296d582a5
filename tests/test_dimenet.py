"""DimeNet++: its bases, the per-atom triplet sum against the sum over the triplet list, the
batched output blocks, the physics suite, model files, TorchScript, ASE and OpenMM.

The model is a tiny DimeNet++ (widths 4-16, 2 blocks) with random weights and non-trivial energy
statistics.
"""

import inspect
import math

import ase.build
import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.special import spherical_jn

from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.models import ARCHITECTURES, DimeNetPlusPlus, GemNetT, build_model
from eqff.models.dimenet import EmbeddingBlock, OutputBlocks, glorot_orthogonal_
from eqff.nn.forces import graph_for_model
from eqff.nn.scatter import scatter_sum
from eqff.nn.spherical import spherical_bessel_roots
from eqff.nn.triplets import neighbourhood_slots
from eqff.testing import ModelTests, evaluate
from eqff.testing.engines import EngineTests


CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = {
    "cutoff": CUTOFF,
    "hidden_channels": 16,
    "num_blocks": 2,
    "int_emb_size": 8,
    "basis_emb_size": 4,
    "out_emb_channels": 16,
    "num_spherical": 4,
    "num_radial": 4,
    "num_output_layers": 2,
}
"""A DimeNet++ small enough for the physics suite to run in seconds."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O, as in conftest: non-trivial energy statistics."""
ENERGY_SCALE = 0.01
"""eV. DimeNet's bases are large (up to about 30 at 1 Å) and its layers unnormalised, so at unit
scale the tiny random model's forces reach 100 eV/Å; this scale brings them to about 1 eV/Å,
where the finite-difference checks' absolute tolerances (1e-6 eV/Å) are meaningful."""


def _make_dimenet(seed: int = 0) -> DimeNetPlusPlus:
    """The tiny DimeNet++ (float32), seeded without touching the global RNG, energy statistics set."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DimeNetPlusPlus(ELEMENTS, **TINY)
    model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS), ENERGY_SCALE)
    return model.eval()


@pytest.fixture
def dimenet_model() -> DimeNetPlusPlus:
    return _make_dimenet()


def _structures(molecule: Atoms, periodic_atoms: Atoms) -> dict[str, dict[str, torch.Tensor]]:
    """float64 graphs: a molecule, cells in which atoms see their own and several images of one
    atom, and a batch of two frames."""
    one_atom = Atoms("C", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 1.7, pbc=True)
    slab = ase.build.bulk("C", "diamond", a=3.57).repeat((2, 1, 1))
    slab.rattle(0.1, seed=3)
    slab.pbc = (True, True, False)
    graphs = {
        "molecule": atoms_to_graph(molecule, CUTOFF, torch.float64),
        "diamond primitive cell": atoms_to_graph(periodic_atoms, CUTOFF, torch.float64),
        "one atom, own images": atoms_to_graph(one_atom, CUTOFF, torch.float64),
        "slab": atoms_to_graph(slab, CUTOFF, torch.float64),
    }
    graphs["batch"] = collate([graphs["molecule"], graphs["diamond primitive cell"]])
    return graphs


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


def test_bases_are_dimenets(dimenet_model):
    """The radial basis u(x) sin(nπx) / x and the spherical basis' radial part
    sqrt(2) / |j_(l+1)(z_ln)| j_l(z_ln x) u(x) / x of the reference (x = d / r_c), with DimeNet's
    envelope u of p = envelope_exponent + 1."""
    model = dimenet_model.double()
    p = model.hyperparameters["envelope_exponent"] + 1
    distances = torch.linspace(0.3, CUTOFF - 0.01, 50, dtype=torch.float64)
    x = (distances / CUTOFF).numpy()[:, None]
    u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)  # (R, 1)
    rbf = model.radial_basis(distances) * (model.rbf_scale * model.envelope(distances)).unsqueeze(-1)
    n = np.arange(1, TINY["num_radial"] + 1)
    # rtol: BesselBasis' frequencies are a float32 buffer (nπ / r_c to 1e-7) until cast
    np.testing.assert_allclose(rbf.numpy(), u * np.sin(n * np.pi * x) / x, rtol=1e-5, atol=1e-10)

    roots = spherical_bessel_roots(TINY["num_spherical"], TINY["num_radial"])  # (L, N)
    radial = model.spherical_basis.radial(distances) * model.spherical_basis.envelope(distances)[:, None, None]
    radial = radial * (model.sbf_scale / distances)[:, None, None]  # (R, L, N), as forward scales it
    for l in range(TINY["num_spherical"]):
        expected = math.sqrt(2) / np.abs(spherical_jn(l + 1, roots[l])) * spherical_jn(l, roots[l] * x) * u / x
        np.testing.assert_allclose(radial[:, l].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_neighbourhood_slots_number_each_atoms_edges_in_order(molecule, periodic_atoms):
    """Each edge's slot is its rank among the edges of its centre atom, and the most edges of one
    atom are the triplet width plus one."""
    model = _make_dimenet()
    for name, graph in _structures(molecule, periodic_atoms).items():
        centre = graph[keys.EDGE_INDEX][0]
        num_atoms = len(graph[keys.ATOMIC_NUMBERS])
        shuffled = torch.randperm(centre.shape[0], generator=torch.Generator().manual_seed(0))
        for order in (torch.arange(centre.shape[0]), shuffled):  # sorted by centre, and not
            slot = neighbourhood_slots(centre[order], num_atoms)
            expected = [int((centre[order][:e] == centre[order][e]).sum()) for e in range(centre.shape[0])]
            assert slot.tolist() == expected, name
        prepared = model.prepare_graph(graph)
        degrees = torch.bincount(prepared[keys.EDGE_INDEX][0])
        assert prepared[keys.TRIPLET_WIDTH].shape[0] + 1 == int(degrees.max()), name


def _reference_atomic_outputs(model: DimeNetPlusPlus, graph: dict[str, torch.Tensor]) -> torch.Tensor:
    """The network's per-atom outputs computed as the reference does: the spherical basis per
    triplet (T, L·N), its projections, the product with the gathered messages and a sum over the
    triplet list, and each output block on its own."""
    graph = model.prepare_graph(graph)
    input_edges, output_edges = graph[keys.TRIPLET_INPUT_EDGES], graph[keys.TRIPLET_OUTPUT_EDGES]
    edge_index = graph[keys.EDGE_INDEX]
    num_atoms, num_edges = len(graph[keys.ATOMIC_NUMBERS]), edge_index.shape[1]
    vectors, distances = model.edge_geometry(graph)
    rbf = model.radial_basis(distances) * (model.rbf_scale * model.envelope(distances)).unsqueeze(-1)
    radial, angular = model.spherical_basis(vectors, distances, input_edges, output_edges)
    radial = radial * (model.sbf_scale / distances)[:, None, None]
    sbf = (radial[input_edges] * angular[:, :, None]).flatten(1)  # (T, L·N)
    sbf_down = model.sbf_down(sbf).chunk(model.num_blocks, dim=-1)  # (T, B) per block
    m = model.embedding(model.species(graph[keys.ATOMIC_NUMBERS]), rbf, edge_index)
    messages = [m]
    for block, interaction in enumerate(model.interactions):
        x_ji, x_kj = interaction.ji_and_kj(m).chunk(2, dim=-1)
        x_kj = interaction.down_projection(x_kj * interaction.rbf_up(interaction.rbf_down(rbf)))
        sums = scatter_sum(x_kj[input_edges] * interaction.sbf_up(sbf_down[block]), output_edges, num_edges)
        x = interaction.final_before_skip(interaction.before_skip(x_ji + interaction.up_projection(sums)))
        m = interaction.after_skip(m + x)
        messages.append(m)
    return _separate_output_blocks(model.outputs, messages, rbf, edge_index[0], num_atoms)


def _separate_output_blocks(
    outputs: OutputBlocks, messages: list[torch.Tensor], rbf: torch.Tensor, centre: torch.Tensor, num_atoms: int
) -> torch.Tensor:
    """The sum over blocks b of the reference's output block, with block b's slices of the weights."""
    total = torch.zeros(num_atoms, dtype=rbf.dtype)
    filters = outputs.rbf(rbf).chunk(len(messages), dim=-1)
    for b, m in enumerate(messages):
        x = scatter_sum(filters[b] * m, centre, num_atoms) @ outputs.up_projection[b]
        for layer in range(outputs.num_layers):
            x = torch.nn.functional.silu(x @ outputs.weights[layer, b] + outputs.biases[layer, b])
        total = total + (x @ outputs.energy[b]).squeeze(-1)
    return total


def test_triplet_sums_in_the_per_atom_layout_equal_the_sums_over_the_triplet_list(molecule, periodic_atoms):
    model = _make_dimenet().double()
    model.scale_shift.set_statistics(torch.zeros(len(ELEMENTS)), 1.0)  # atomic energies = network outputs
    for name, graph in _structures(molecule, periodic_atoms).items():
        reference = _reference_atomic_outputs(model, graph)
        assert reference.abs().max() > 1.0, name
        torch.testing.assert_close(model(graph)[keys.ATOMIC_ENERGIES], reference, rtol=1e-12, atol=1e-10)


def test_embedding_block_is_the_dense_layer_on_the_concatenation():
    torch.manual_seed(0)
    block = EmbeddingBlock(num_elements=3, num_radial=4, width=5).double()
    species, rbf = torch.tensor([0, 2, 1, 2]), torch.rand(6, 4, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 1, 0, 2]])
    h = block.embedding(species)
    concatenation = torch.cat([h[edge_index[0]], h[edge_index[1]], block.rbf(rbf)], dim=-1)  # (E, 3·5)
    torch.testing.assert_close(block(species, rbf, edge_index), torch.nn.functional.silu(block.linear(concatenation)))


def test_glorot_orthogonal_variance():
    weight = glorot_orthogonal_(torch.empty(64, 32, dtype=torch.float64))
    assert float(weight.var()) == pytest.approx(2.0 / (64 + 32), rel=1e-9)
    gram = weight.T @ weight  # orthogonal columns, equal norms
    torch.testing.assert_close(gram, gram.diagonal().mean() * torch.eye(32, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestDimeNetPlusPlus(ModelTests, EngineTests):
    """Every check of the reusable physics suite (float32 and float64, reflections included)."""

    @pytest.fixture
    def model(self, dimenet_model):
        return dimenet_model

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["dimenet++"] is DimeNetPlusPlus
    hyperparameters = {"elements": [1, 8], **TINY}
    model = build_model("dimenet++", hyperparameters)
    assert set(model.hyperparameters) == set(inspect.signature(DimeNetPlusPlus).parameters)
    assert model.hyperparameters.items() >= hyperparameters.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8] and len(model.interactions) == 2
    with pytest.raises(ValueError, match="num_blocks"):
        build_model("dimenet++", {"elements": [1], "num_blocks": 0})
    with pytest.raises(ValueError, match="bad hyperparameters"):
        build_model("dimenet++", {"elements": [1], "emb_size": 8})


def test_defaults_are_the_papers_at_gemnet_ts_reduction():
    """The paper's hyperparameters with 3 blocks and half the widths, as eqff's GemNet-T."""
    model = DimeNetPlusPlus([1, 6, 8])
    assert model.hyperparameters == {
        "elements": [1, 6, 8], "cutoff": 5.0, "hidden_channels": 64, "num_blocks": 3, "int_emb_size": 32,
        "basis_emb_size": 8, "out_emb_channels": 128, "num_spherical": 7, "num_radial": 6, "envelope_exponent": 5,
        "num_before_skip": 1, "num_after_skip": 2, "num_output_layers": 3,
    }  # fmt: skip
    assert model.envelope.p == 6  # the paper's p = 6


def test_prepares_the_graph_as_gemnet_does(molecule, periodic_atoms):
    """Both triplet models read the same prepared graph (TripletIndexCache.graph_with_triplets)."""
    dimenet, gemnet = _make_dimenet(), GemNetT(ELEMENTS, cutoff=CUTOFF, num_blocks=1)
    graph = atoms_to_graph(periodic_atoms, CUTOFF + 1.0)  # a Verlet list: some pairs beyond the cutoff
    prepared, expected = dimenet.prepare_graph(graph), gemnet.prepare_graph(graph)
    assert prepared.keys() == expected.keys()
    assert prepared[keys.EDGE_INDEX].shape[1] < graph[keys.EDGE_INDEX].shape[1]
    for key, value in expected.items():
        assert torch.equal(prepared[key], value), key
    assert dimenet.prepare_graph(graph) is not prepared and dimenet.triplets.num_builds == 1


def test_torchscript_matches_eager(dimenet_model, periodic_atoms):
    scripted = torch.jit.script(dimenet_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF, torch.float32)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], dimenet_model(graph)[keys.ENERGY])
    prepared = graph_for_model(dimenet_model, graph)  # as a compiled call gets it: triplets already there
    torch.testing.assert_close(scripted(prepared)[keys.ENERGY], dimenet_model(graph)[keys.ENERGY])

