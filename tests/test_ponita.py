"""PONITA: the sphere grid and invariants, the physics suite, grid-size convergence and model files.

The model is a tiny PONITA (16 channels, 2 layers, 12 orientations) with random weights. Its
energy is invariant under rotations and reflections only up to the discretisation of the sphere,
so those checks run with a tolerance that grows as the grid shrinks (:func:`rotation_tolerance`);
translation, permutation, batching, locality, cutoff smoothness and finite-difference forces are
exact and keep the suite's tolerances. PNITA (no orientations) is exactly invariant.
"""

import inspect
import itertools
import math

import pytest
import torch
from e3nn import o3

from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.models import ARCHITECTURES, Ponita, build_model
from eqff.nn.sphere import (
    PolynomialEmbedding,
    fibonacci_sphere,
    lift,
    project,
    spatial_invariants,
    sphere_invariants,
)
from eqff.testing import (
    ModelTests,
    check_reflection_invariance,
    check_rotation_invariance,
    evaluate,
)

CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = dict(cutoff=CUTOFF, num_features=16, num_layers=2, basis_dim=16, degree=3)
"""A PONITA small enough for the physics suite to run in seconds (plus ``num_orientations``)."""
TEST_ORIENTATIONS = 12
"""N of the model the physics suite runs on."""


def rotation_tolerance(num_orientations: int) -> float:
    """Absolute tolerance (eV, eV/Å) of the rotation and reflection checks of the tiny model on N orientations.

    0.02 / N: 2.5 (N = 4) to 7 (N = 128) times the largest error measured over six random
    rotations and reflections of the test molecule and cell (it falls a little faster than 1/N).
    """
    return 0.02 / num_orientations


def _make_ponita(num_orientations: int = TEST_ORIENTATIONS, seed: int = 0) -> Ponita:
    """The tiny PONITA (float32, energy statistics set); its weights depend on ``seed``, not on N > 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Ponita(ELEMENTS, num_orientations=num_orientations, **TINY)
    model.scale_shift.set_statistics(torch.tensor([-13.6, -37.8, -54.6, -75.1]), 1.7)
    return model.eval()


@pytest.fixture
def ponita_model() -> Ponita:
    return _make_ponita()


# --------------------------------------------------------------------------------------------
# The sphere grid, lifting and invariants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_points", [1, 2, 12, 20, 128])
def test_grid_is_unit_and_deterministic(num_points):
    grid = fibonacci_sphere(num_points)
    assert grid.shape == (num_points, 3) and grid.dtype == torch.float64
    torch.testing.assert_close(torch.linalg.vector_norm(grid, dim=-1), torch.ones(num_points, dtype=torch.float64))
    assert torch.equal(grid, fibonacci_sphere(num_points))
    assert len(torch.unique(grid, dim=0)) == num_points


@pytest.mark.parametrize("num_points", [16, 20, 128])
def test_grid_is_near_uniform(num_points):
    """Points are neither crowded nor leave holes, on the scale sqrt(4π / N) of a uniform grid."""
    grid = fibonacci_sphere(num_points)
    spacing = math.sqrt(4 * math.pi / num_points)
    cosines = (grid @ grid.T).fill_diagonal_(-1.0)  # (N, N)
    nearest = torch.arccos(cosines.max(dim=1).values.clamp(-1.0, 1.0))  # (N,) angle to the nearest other point
    assert float(nearest.min()) > 0.8 * spacing
    generator = torch.Generator().manual_seed(0)
    probes = torch.randn(5000, 3, dtype=torch.float64, generator=generator)
    probes = probes / torch.linalg.vector_norm(probes, dim=-1, keepdim=True)
    farthest = torch.arccos((probes @ grid.T).max(dim=1).values.clamp(-1.0, 1.0)).max()
    assert float(farthest) < 0.9 * spacing
    # The grid mean of a spherical harmonic of order l ≥ 1 approximates its integral, zero.
    harmonics = o3.spherical_harmonics([1, 2], grid, normalize=True, normalization="integral")  # (N, 8)
    assert float(harmonics.mean(dim=0).abs().max()) < 0.02


def test_lift_and_project():
    x = torch.randn(5, 3)
    lifted = lift(x, 7)  # (5, 7, 3)
    assert lifted.shape == (5, 7, 3) and torch.equal(lifted[:, 4], x)
    torch.testing.assert_close(project(lifted), x)


def test_invariants_match_their_definitions():
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(6, 3, dtype=torch.float64, generator=generator)
    grid = fibonacci_sphere(10)
    invariants = spatial_invariants(vectors, grid, eps=0.0)  # (6, 10, 2)
    for e, a in itertools.product(range(6), range(10)):
        along = float(vectors[e] @ grid[a])
        across = float(torch.linalg.vector_norm(vectors[e] - along * grid[a]))
        torch.testing.assert_close(invariants[e, a], torch.tensor([along, across], dtype=torch.float64))
    torch.testing.assert_close(sphere_invariants(grid)[..., 0], grid @ grid.T)
    # Rotating edges and orientations together leaves every invariant unchanged.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        rotation = o3.rand_matrix(dtype=torch.float64)  # (3, 3)
    rotated = spatial_invariants(vectors @ rotation.T, grid @ rotation.T)  # (6, 10, 2)
    torch.testing.assert_close(rotated, spatial_invariants(vectors, grid))


def test_invariants_have_finite_derivatives_along_an_orientation():
    """An edge parallel to a grid orientation has β ≈ 0: first and second derivatives stay finite."""
    grid = fibonacci_sphere(8)
    for dtype in (torch.float32, torch.float64):
        vectors = (2.0 * grid[:1]).to(dtype).requires_grad_(True)  # (1, 3)
        across = spatial_invariants(vectors, grid.to(dtype))[..., 1]  # (1, 8)
        assert float(across[0, 0]) < 1e-3
        (gradient,) = torch.autograd.grad(across.sum(), vectors, create_graph=True)
        (hessian_row,) = torch.autograd.grad(gradient[0, 0], vectors)
        assert bool(torch.isfinite(gradient).all() & torch.isfinite(hessian_row).all())


def test_polynomial_embedding_lists_each_monomial_once():
    x = torch.tensor([[2.0, 3.0]])
    features = PolynomialEmbedding(2, 3)(x)[0]
    a, b = 2.0, 3.0
    expected = [a, b, a * a, a * b, b * b, a**3, a * a * b, a * b * b, b**3]
    torch.testing.assert_close(features, torch.tensor(expected))
    assert PolynomialEmbedding(1, 3)(torch.tensor([[2.0]])).tolist() == [[2.0, 4.0, 8.0]]
    assert PolynomialEmbedding(3, 1).num_features == 3 and PolynomialEmbedding(3, 2).num_features == 9


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestPonita(ModelTests):
    """Every check of the reusable physics suite; rotations and reflections to the grid's tolerance."""

    @pytest.fixture
    def model(self, ponita_model):
        return ponita_model

    def test_rotation_invariance(self, model, molecule, dtype):
        check_rotation_invariance(model, molecule, dtype, atol=rotation_tolerance(TEST_ORIENTATIONS))

    def test_rotation_invariance_periodic(self, model, periodic_atoms, dtype):
        check_rotation_invariance(model, periodic_atoms, dtype, atol=rotation_tolerance(TEST_ORIENTATIONS))

    def test_reflection_invariance(self, model, molecule, dtype):
        check_reflection_invariance(model, molecule, dtype, atol=rotation_tolerance(TEST_ORIENTATIONS))

    def test_reflection_invariance_periodic(self, model, periodic_atoms, dtype):
        check_reflection_invariance(model, periodic_atoms, dtype, atol=rotation_tolerance(TEST_ORIENTATIONS))

    def test_rotation_is_not_exact(self, model, molecule):
        """Guards the tolerance above: a finite grid is not rotation invariant, so the default must fail."""
        with pytest.raises(AssertionError, match="rotation"):
            check_rotation_invariance(model, molecule, torch.float64)

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2


class TestPnita(ModelTests):
    """PNITA (``num_orientations=0``): on R³ alone, exactly invariant, so the suite's tolerances hold."""

    @pytest.fixture
    def model(self):
        return _make_ponita(num_orientations=0)


@pytest.mark.parametrize("num_orientations", [4, 8, 32, 128])
def test_rotation_tolerance_holds_for_every_grid_size(num_orientations, molecule):
    check_rotation_invariance(_make_ponita(num_orientations), molecule, atol=rotation_tolerance(num_orientations))


def test_rotation_error_falls_as_the_grid_grows(molecule):
    """One set of weights on grids of 8, 32 and 128 orientations: the mean energy error over random
    rotations falls by more than half with each fourfold refinement (by 3 to 20 times for the
    weights of eight seeds)."""
    graph = atoms_to_graph(molecule, CUTOFF, torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100)
        rotations = o3.rand_matrix(8, dtype=torch.float64)  # (8, 3, 3)
    errors = []
    models = [_make_ponita(n).double() for n in (8, 32, 128)]
    for model in models:
        energy = model(graph)[keys.ENERGY].detach()
        rotated = [dict(graph, **{keys.POSITIONS: graph[keys.POSITIONS] @ r.T}) for r in rotations]
        errors.append(torch.stack([(model(g)[keys.ENERGY].detach() - energy).abs() for g in rotated]).mean())
    assert float(errors[1]) < 0.5 * float(errors[0]) and float(errors[2]) < 0.5 * float(errors[1]), errors
    weights = [{k: v for k, v in m.state_dict().items() if k != "orientations"} for m in models]
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])


def test_weights_of_one_grid_run_on_another(molecule):
    """A coarse model's weights, moved onto a finer grid, equal that grid's model of the same seed;
    PNITA's weights (no sphere kernels) fit no PONITA."""
    coarse, fine = _make_ponita(8, seed=3), _make_ponita(32, seed=3)
    moved = _make_ponita(32, seed=4)
    moved.load_state_dict(moved.state_dict_for_grid(coarse.state_dict()))
    graph = atoms_to_graph(molecule, CUTOFF, torch.float32)
    assert torch.equal(moved(graph)[keys.ENERGY], fine(graph)[keys.ENERGY])
    with pytest.raises(ValueError, match="0 orientations"):
        fine.state_dict_for_grid(_make_ponita(0).state_dict())


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["ponita"] is Ponita
    model = build_model("ponita", {"elements": [1, 8], "num_orientations": 6, **TINY})
    assert set(model.hyperparameters) == set(inspect.signature(Ponita).parameters)
    assert model.hyperparameters.items() >= {"elements": [1, 8], "num_orientations": 6, **TINY}.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8]
    torch.testing.assert_close(model.state_dict()["orientations"], fibonacci_sphere(6))
    with pytest.raises(ValueError, match="num_orientations"):
        Ponita([1], num_orientations=-1)


@pytest.mark.parametrize("num_orientations", [TEST_ORIENTATIONS, 0])
def test_torchscript_matches_eager(num_orientations, periodic_atoms):
    model = _make_ponita(num_orientations)
    scripted = torch.jit.script(model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF, torch.float32)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], model(graph)[keys.ENERGY])
