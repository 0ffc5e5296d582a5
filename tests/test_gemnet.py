"""GemNet-T: triplet indices, the spherical basis, the physics suite, scale fitting and model files.

The triplet construction is checked against a brute-force loop over pairs of edges, for a
molecule and for periodic cells in which atoms neighbour their own images and several images of
one atom. The model is a tiny GemNet-T (widths 4-16, 2 blocks) with fitted scale factors.
"""

import inspect
import math

import ase.build
import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.special import eval_legendre, spherical_jn

from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.models import ARCHITECTURES, GemNetT, build_model
from eqff.models.gemnet import EdgeEmbedding, FittedScale, ScaledSiLU
from eqff.nn.forces import compiled_energy_forces, energy_forces_stress
from eqff.nn.geometry import edge_vectors
from eqff.nn.spherical import (
    SphericalBesselBasis,
    TripletAngularBasis,
    spherical_bessel,
    spherical_bessel_of_order,
    spherical_bessel_roots,
)
from eqff.neighbours import edge_lengths, neighbour_list
from eqff.nn.triplets import (
    TripletIndexCache,
    restrict_triplets,
    reverse_edges,
    triplet_indices,
    triplet_slots,
    triplets,
)
from eqff.testing import ModelTests, check_forces_match_finite_differences, evaluate

CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = dict(
    cutoff=CUTOFF,
    num_blocks=2,
    emb_size_atom=16,
    emb_size_edge=16,
    emb_size_trip=8,
    emb_size_rbf=4,
    emb_size_cbf=4,
    emb_size_bil_trip=8,
    num_radial=4,
    num_spherical=4,
)
"""A GemNet-T small enough for the physics suite to run in seconds."""
FINITE_DIFFERENCE_STEP = 2.5e-5
"""Å; see ``TestGemNetT.test_forces_match_finite_differences``."""


def _rattled(atoms: Atoms, seed: int) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(0.1, seed=seed)
    return atoms


def _make_gemnet(molecule: Atoms, seed: int = 0) -> GemNetT:
    """The tiny GemNet-T (float32), energy statistics set, scale factors fitted on rattled ``molecule``s."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GemNetT(ELEMENTS, **TINY)
    model.scale_shift.set_statistics(torch.tensor([-13.6, -37.8, -54.6, -75.1]), 1.7)
    batch = collate([atoms_to_graph(_rattled(molecule, s), CUTOFF, torch.float32) for s in range(4)])
    model.fit_scales(batch)
    return model.eval()


@pytest.fixture
def gemnet_model(molecule) -> GemNetT:
    return _make_gemnet(molecule)


def _scale_factors(model: GemNetT) -> torch.Tensor:
    return torch.stack([module.scale for module in model.modules() if isinstance(module, FittedScale)])


# --------------------------------------------------------------------------------------------
# Triplets and reverse edges
# --------------------------------------------------------------------------------------------


def _simple_cubic(a: float) -> Atoms:
    """One atom in a cubic cell of side a < cutoff: every neighbour is one of its own images."""
    return Atoms("C", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * a, pbc=True)


def _structures(molecule: Atoms, periodic_atoms: Atoms) -> dict[str, dict[str, torch.Tensor]]:
    slab = _rattled(ase.build.bulk("C", "diamond", a=3.57).repeat((2, 1, 1)), 3)
    slab.pbc = (True, True, False)
    graphs = {
        "molecule": atoms_to_graph(molecule, CUTOFF),
        "diamond primitive cell": atoms_to_graph(periodic_atoms, CUTOFF),
        "one atom, own images": atoms_to_graph(_simple_cubic(1.7), CUTOFF),
        "slab": atoms_to_graph(slab, CUTOFF),
    }
    graphs["batch"] = collate([graphs["molecule"], graphs["diamond primitive cell"]])
    return graphs


def _brute_force_triplets(edge_index: torch.Tensor, shifts: torch.Tensor) -> list[tuple[int, int]]:
    """(input edge k → j, output edge j → i) for every pair of edges, excluding each edge's own reverse."""
    found = []
    for e in range(edge_index.shape[1]):
        i, j = int(edge_index[0, e]), int(edge_index[1, e])
        for f in range(edge_index.shape[1]):
            if int(edge_index[0, f]) != j:
                continue
            same_image_of_i = int(edge_index[1, f]) == i and torch.equal(shifts[f], -shifts[e])
            if not same_image_of_i:
                found.append((f, e))
    return sorted(found)


def _shifts(graph: dict[str, torch.Tensor]) -> torch.Tensor | None:
    return graph.get(keys.CELL_SHIFTS)


def test_triplets_match_a_brute_force_loop(molecule, periodic_atoms):
    for name, graph in _structures(molecule, periodic_atoms).items():
        edge_index, num_atoms = graph[keys.EDGE_INDEX], len(graph[keys.ATOMIC_NUMBERS])
        shifts = _shifts(graph)
        input_edges, output_edges = triplets(edge_index, num_atoms, shifts)
        if shifts is None:
            shifts = torch.zeros(edge_index.shape[1], 3)
        expected = _brute_force_triplets(edge_index, shifts)
        assert sorted(zip(input_edges.tolist(), output_edges.tolist())) == expected, name
        assert len(expected) > 0, name
        assert bool((output_edges[1:] >= output_edges[:-1]).all()), f"{name}: output edges not grouped"


def test_triplet_slots_fill_a_padded_layout(molecule, periodic_atoms):
    for name, graph in _structures(molecule, periodic_atoms).items():
        edge_index = graph[keys.EDGE_INDEX]
        input_edges, output_edges = triplets(edge_index, len(graph[keys.ATOMIC_NUMBERS]), _shifts(graph))
        slot, width = triplet_slots(output_edges, edge_index.shape[1])
        padded = torch.full((edge_index.shape[1], width), -1).index_put((output_edges, slot), input_edges)  # (E, K)
        for e in range(edge_index.shape[1]):
            row = padded[e]
            expected = input_edges[output_edges == e]
            assert torch.equal(row[: len(expected)], expected) and bool((row[len(expected) :] == -1).all()), name
        assert width == int(torch.bincount(output_edges).max()), name


def test_triplets_exclude_exactly_the_returning_edges(molecule, periodic_atoms):
    """Geometrically: a candidate k → j is dropped iff k is atom i in the same image (v_out + v_in = 0)."""
    for name, graph in _structures(molecule, periodic_atoms).items():
        edge_index = graph[keys.EDGE_INDEX]
        vectors = edge_vectors(graph)  # (E, 3)
        input_edges, output_edges = triplets(edge_index, len(graph[keys.ATOMIC_NUMBERS]), _shifts(graph))
        kept = set(zip(input_edges.tolist(), output_edges.tolist()))
        candidates = (edge_index[0][:, None] == edge_index[1][None, :]).nonzero().tolist()  # [(f, e)]
        for f, e in candidates:
            returns = float(torch.linalg.vector_norm(vectors[e] + vectors[f])) < 1e-9
            assert ((f, e) in kept) != returns, f"{name}: input edge {f}, output edge {e}"


def test_atoms_see_their_own_images_in_the_periodic_structures(molecule, periodic_atoms):
    graphs = _structures(molecule, periodic_atoms)
    for name in ("diamond primitive cell", "one atom, own images"):
        edge_index = graphs[name][keys.EDGE_INDEX]
        assert bool((edge_index[0] == edge_index[1]).any()), name


def test_reverse_edges(molecule, periodic_atoms):
    for name, graph in _structures(molecule, periodic_atoms).items():
        edge_index, shifts = graph[keys.EDGE_INDEX], _shifts(graph)
        reverse = reverse_edges(edge_index, len(graph[keys.ATOMIC_NUMBERS]), shifts)
        assert torch.equal(edge_index[:, reverse], edge_index.flip(0)), name
        assert torch.equal(reverse[reverse], torch.arange(edge_index.shape[1])), name
        if shifts is not None:
            assert torch.equal(shifts[reverse], -shifts), name
    edge_index = atoms_to_graph(molecule, CUTOFF)[keys.EDGE_INDEX]
    half = edge_index[:, edge_index[0] < edge_index[1]]
    with pytest.raises(ValueError, match="no reverse"):
        reverse_edges(half, len(molecule))


def test_no_edges():
    edge_index = torch.zeros((2, 0), dtype=torch.long)
    input_edges, output_edges = triplets(edge_index, 3)
    assert input_edges.numel() == output_edges.numel() == 0
    assert reverse_edges(edge_index, 3).numel() == 0
    slot, width = triplet_slots(output_edges, 0)
    assert slot.numel() == 0 and width == 0


def _assert_same_indices(got: tuple, expected: tuple) -> None:
    for got_part, expected_part in zip(got, expected, strict=True):
        assert got_part == expected_part if isinstance(expected_part, int) else torch.equal(got_part, expected_part)


def test_triplet_cache_reuses_indices_only_for_the_same_edge_list(molecule, periodic_atoms):
    structures = _structures(molecule, periodic_atoms)
    cache = TripletIndexCache()
    for name in [*structures, *structures]:  # every change of structure is a miss, so must rebuild
        graph = structures[name]
        edge_index, num_atoms, shifts = graph[keys.EDGE_INDEX], len(graph[keys.ATOMIC_NUMBERS]), _shifts(graph)
        expected = triplet_indices(edge_index, num_atoms, shifts)
        callers_tensor = edge_index.clone()
        _assert_same_indices(cache(callers_tensor, num_atoms, shifts), expected)
        first = cache.input_edges
        callers_tensor.fill_(0)  # a caller reusing its tensor must not change what the cache compares with
        _assert_same_indices(cache(edge_index.clone(), num_atoms, shifts), expected)
        assert cache.input_edges is first, f"{name}: an equal edge list must reuse the indices"


def test_triplet_cache_misses_on_other_atoms_or_shifts(periodic_atoms):
    graph = atoms_to_graph(periodic_atoms, CUTOFF)
    edge_index, num_atoms, shifts = graph[keys.EDGE_INDEX], len(periodic_atoms), graph[keys.CELL_SHIFTS]
    cache = TripletIndexCache()
    cache(edge_index, num_atoms, shifts)
    for other_atoms, other_shifts in [(num_atoms + 1, shifts), (num_atoms, None), (num_atoms, shifts.double())]:
        first = cache.input_edges
        _assert_same_indices(cache(edge_index, other_atoms, other_shifts), triplet_indices(edge_index, other_atoms, other_shifts))
        assert cache.input_edges is not first


# --------------------------------------------------------------------------------------------
# Spherical basis
# --------------------------------------------------------------------------------------------


def test_spherical_bessel_roots_and_functions():
    roots = spherical_bessel_roots(7, 6)  # (7, 6)
    assert np.all(np.diff(roots, axis=1) > 0) and np.all(roots[1:, 0] > roots[:-1, 0])
    for l in range(7):
        np.testing.assert_allclose(spherical_jn(l, roots[l]), 0.0, atol=1e-12)
    x = torch.linspace(1.0, 30.0, 300, dtype=torch.float64)
    expected = np.stack([spherical_jn(l, x.numpy()) for l in range(7)], axis=-1)
    np.testing.assert_allclose(spherical_bessel(x, 6).numpy(), expected, atol=1e-11)
    for l in range(7):  # the one-order recurrence gives the same numbers, bit for bit
        assert torch.equal(spherical_bessel_of_order(x, l), spherical_bessel(x, 6)[:, l])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radial_basis_is_accurate(dtype):
    cutoff = 5.0
    basis = SphericalBesselBasis(cutoff, 7, 6).to(dtype)
    r = torch.linspace(0.5, cutoff, 2001, dtype=torch.float64)
    values = basis(r.to(dtype)).double()  # (R, 7, 6)
    roots = spherical_bessel_roots(7, 6)
    for l in range(7):
        norm = math.sqrt(2 / cutoff**3) / np.abs(spherical_jn(l + 1, roots[l]))
        expected = norm * spherical_jn(l, roots[l] * r.numpy()[:, None] / cutoff)  # (R, 6)
        np.testing.assert_allclose(values[:, l].numpy(), expected, atol=2e-6 if dtype == torch.float32 else 1e-12)


def test_radial_normalisation_is_orthonormal():
    """The normalisers N_ln make the functions of one order orthonormal on [0, r_c] with weight r²."""
    cutoff = 5.0
    basis = SphericalBesselBasis(cutoff, 7, 6).double()
    roots = spherical_bessel_roots(7, 6)
    r = np.linspace(0.0, cutoff, 20001)
    for l in range(7):
        values = basis.normalisers[l].numpy() * spherical_jn(l, roots[l] * r[:, None] / cutoff)  # (R, 6)
        gram = np.trapezoid(values[:, :, None] * values[:, None, :] * (r**2)[:, None, None], r, axis=0)
        np.testing.assert_allclose(gram, np.eye(6), atol=1e-6)


def test_angular_basis_is_y_l0_of_the_triplet_angle():
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(8, 3, dtype=torch.float64, generator=generator)
    input_edges, output_edges = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    unit_vectors = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    values = TripletAngularBasis(7).double()(unit_vectors, input_edges, output_edges)  # (4, 7)
    to_i = -vectors[output_edges] / torch.linalg.vector_norm(vectors[output_edges], dim=1, keepdim=True)
    to_k = vectors[input_edges] / torch.linalg.vector_norm(vectors[input_edges], dim=1, keepdim=True)
    cos = (to_i * to_k).sum(1).numpy()
    expected = np.stack([math.sqrt((2 * l + 1) / (4 * math.pi)) * eval_legendre(l, cos) for l in range(7)], axis=-1)
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestGemNetT(ModelTests):
    """Every check of the reusable physics suite, on the tiny GemNet-T with fitted scale factors."""

    @pytest.fixture
    def model(self, gemnet_model):
        return gemnet_model

    # The suite's central differences with a 1e-4 Å step are off by (step² / 6) × the third
    # derivative of the energy, about 1.1e-6 eV/Å for this model (the error falls as step²:
    # 7e-8 eV/Å at 2.5e-5 Å), just above their 1e-6 tolerance. A smaller step tests as tightly.
    def test_forces_match_finite_differences(self, model, molecule):
        check_forces_match_finite_differences(model, molecule, delta=FINITE_DIFFERENCE_STEP)

    def test_forces_match_finite_differences_periodic(self, model, periodic_atoms):
        check_forces_match_finite_differences(model, periodic_atoms, delta=FINITE_DIFFERENCE_STEP)

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["gemnet-t"] is GemNetT
    model = build_model("gemnet-t", {"elements": [1, 8], **TINY})
    assert set(model.hyperparameters) == set(inspect.signature(GemNetT).parameters)
    assert model.hyperparameters.items() >= {"elements": [1, 8], **TINY}.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8]


def test_fit_scales_is_reproducible_and_refuses_a_batch_without_triplets(gemnet_model, molecule):
    fitted = _scale_factors(gemnet_model)
    assert not torch.allclose(fitted, torch.ones_like(fitted)) and bool(torch.isfinite(fitted).all())
    batch = collate([atoms_to_graph(_rattled(molecule, s), CUTOFF, torch.float32) for s in range(4)])
    gemnet_model.fit_scales(batch)
    torch.testing.assert_close(_scale_factors(gemnet_model), fitted)
    assert not any(module.fitting for module in gemnet_model.modules() if isinstance(module, FittedScale))
    diatomic = atoms_to_graph(Atoms("CO", positions=[[0, 0, 0], [1.1, 0, 0]]), CUTOFF, torch.float32)
    with pytest.raises(ValueError, match="scale factors"):
        gemnet_model.fit_scales(diatomic)


def test_edge_embedding_is_the_dense_layer_on_the_concatenation():
    """Applying the atom parts of the weight to atoms before gathering them to edges is exact."""
    torch.manual_seed(0)
    embedding = EdgeEmbedding(atom_width=5, input_width=3, edge_width=7).double()
    h, x = torch.randn(4, 5, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 1, 0, 2]])
    concatenation = torch.cat([h[edge_index[0]], h[edge_index[1]], x], dim=-1)  # (E, 2·5 + 3)
    expected = ScaledSiLU()(concatenation @ embedding.linear.weight.T)
    torch.testing.assert_close(embedding(h, x, edge_index), expected)


def test_torchscript_matches_eager(gemnet_model, periodic_atoms):
    scripted = torch.jit.script(gemnet_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF, torch.float32)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], gemnet_model(graph)[keys.ENERGY])


def test_isolated_atom_has_its_element_offset(gemnet_model):
    energy = evaluate(gemnet_model, Atoms("O", positions=[[0.0, 0.0, 0.0]]))[keys.ENERGY]
    assert abs(float(energy) - (-75.1)) < 1e-5


@pytest.mark.compiles
def test_compiled_energy_forces_match_eager_ones(gemnet_model, molecule):
    """The triplet indices enter the compiled graph as inputs (prepare_graph): same energies, forces
    and weight gradients as the eager model, for two batches with different edge lists."""
    model = gemnet_model.to(torch.float64).train()  # float64: the sums of large gradients cancel
    compute = compiled_energy_forces(model)
    for seeds in ([0, 1], [2, 3, 4]):
        batch = collate([atoms_to_graph(_rattled(molecule, seed), CUTOFF, torch.float64) for seed in seeds])
        results = []
        for energy_forces in (lambda graph: energy_forces_stress(model, graph), compute):
            model.zero_grad()
            out = energy_forces(batch)
            (out[keys.ENERGY].square().sum() + out[keys.FORCES].square().sum()).backward()
            gradients = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            results.append((out[keys.ENERGY].detach(), out[keys.FORCES].detach(), gradients))
        for eager, compiled in zip(*results):
            torch.testing.assert_close(compiled, eager, rtol=1e-9, atol=1e-9)


def test_restricted_triplets_equal_those_built_on_the_kept_edges(periodic_atoms):
    """The triplets of a Verlet list restricted to the pairs within the cutoff are, in the same
    order, those built on the pairs within the cutoff."""
    atoms = periodic_atoms.copy()
    atoms.rattle(0.1, seed=2)
    edge_index, cell_shifts = neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF + 1.0)
    lengths = edge_lengths(atoms.positions, atoms.cell.array, edge_index, cell_shifts)
    keep = torch.from_numpy(lengths < CUTOFF)
    assert 0 < int(keep.sum()) < keep.numel()
    edges, shifts = torch.from_numpy(edge_index), torch.from_numpy(cell_shifts)
    input_edges, output_edges, _, _, reverse = triplet_indices(edges, len(atoms), shifts)
    restricted = restrict_triplets(input_edges, output_edges, reverse, keep)
    expected = triplet_indices(edges[:, keep], len(atoms), shifts[keep])
    for got, want in zip(restricted, expected):
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want))
