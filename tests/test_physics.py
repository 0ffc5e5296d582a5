"""The reusable physics suite (eqff.testing) run against PaiNN, and tests that the checks can fail.

``TestPaiNN`` gets every check from :class:`eqff.testing.ModelTests` in float32 and float64
(finite differences in float64 only), for an isolated molecule and a periodic cell whose
vectors are shorter than the cutoff. The ``TestChecksCatch*`` classes feed deliberately broken
models to the checks, so that a check that silently passes everything would be noticed.
"""

import numpy as np
import pytest
import torch
from torch import nn

from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.nn.geometry import edge_vectors
from eqff.nn.radial import PolynomialEnvelope
from eqff.nn.scatter import scatter_sum
from eqff.nn.species import SpeciesIndex, sum_per_frame
from eqff.testing import (
    FLOAT_TOLERANCE,
    ModelTests,
    check_batch_consistency,
    check_cutoff_smoothness,
    check_forces_match_finite_differences,
    check_fragment_additivity,
    check_pairs_beyond_the_cutoff_change_nothing,
    check_permutation_equivariance,
    check_reflection_invariance,
    check_rotation_invariance,
    check_stress_matches_finite_differences,
    check_supercell_consistency,
    check_translation_invariance,
    evaluate,
)

PAINN_CUTOFF = 4.0
"""The cutoff of the ``painn_model`` fixture (asserted in ``test_fixture_cutoff``)."""


class TestPaiNN(ModelTests):
    """Every check of the reusable suite, on a small random-weights PaiNN."""

    @pytest.fixture
    def model(self, painn_model):
        return painn_model

    def test_fixture_cutoff(self, model):
        assert model.cutoff == PAINN_CUTOFF

    @pytest.mark.parametrize("pbc", [(True, True, False), (True, False, False)])
    def test_partially_periodic(self, model, periodic_atoms, dtype, pbc):
        """A slab / wire: invariances hold with periodicity along only some cell vectors."""
        atoms = periodic_atoms.copy()
        atoms.pbc = pbc
        check_rotation_invariance(model, atoms, dtype)
        check_translation_invariance(model, atoms, dtype)
        check_permutation_equivariance(model, atoms, dtype)
        check_supercell_consistency(model, atoms, (2, 1, 1), dtype)

    def test_partially_periodic_finite_differences(self, model, periodic_atoms):
        atoms = periodic_atoms.copy()
        atoms.pbc = (True, True, False)
        check_forces_match_finite_differences(model, atoms)

    def test_larger_supercell_periodic(self, model, periodic_atoms):
        check_supercell_consistency(model, periodic_atoms, (2, 2, 1), torch.float64)

    def test_several_rotations(self, model, molecule, dtype):
        for seed in range(3):
            check_rotation_invariance(model, molecule, dtype, seed=seed)

    def test_checks_leave_the_model_unchanged(self, model, molecule):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        check_rotation_invariance(model, molecule, torch.float64)
        assert next(model.parameters()).dtype == torch.float32
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            result = evaluate(model, atoms, torch.float64, compute_stress=bool(atoms.pbc.all()))
            assert result[keys.FORCES].abs().max() > 1e-2
        # (In a 2-atom cell the atoms are images of each other under inversion: equal energies.)
        atomic_energies = evaluate(model, molecule)[keys.ATOMIC_ENERGIES]
        assert len(set(np.round(atomic_energies.numpy(), 6))) == len(molecule)
        stress = evaluate(model, periodic_atoms, compute_stress=True)[keys.STRESS]
        assert stress.abs().max() > 1e-3

    def test_periodic_cell_sees_its_own_images(self, periodic_atoms):
        graph = atoms_to_graph(periodic_atoms, PAINN_CUTOFF)
        self_edges = graph[keys.EDGE_INDEX][0] == graph[keys.EDGE_INDEX][1]
        assert self_edges.any(), "the fixture cell should be smaller than the cutoff"


# --------------------------------------------------------------------------------------------
# Broken models: every check must be able to fail
# --------------------------------------------------------------------------------------------


class _Wrapped(nn.Module):
    """A PaiNN plus an extra energy term ``extra(graph, out)`` → (B,), to break one symmetry."""

    def __init__(self, base: nn.Module, extra) -> None:
        super().__init__()
        self.base = base
        self.elements = base.elements
        self.cutoff = base.cutoff
        self.extra = extra

    def forward(self, graph):
        out = dict(self.base(graph))
        out[keys.ENERGY] = out[keys.ENERGY] + self.extra(graph, out)
        return out


def _absolute_x(graph, out):
    """Energy linear in absolute x coordinates: breaks translation and rotation invariance."""
    positions = graph[keys.POSITIONS]
    return sum_per_frame(0.3 * positions[:, 0], graph[keys.BATCH], graph[keys.CELL].shape[0])


def _chiral(graph, out):
    """A pseudoscalar (triple product of the first atom's bonds): breaks reflection only."""
    positions = graph[keys.POSITIONS]
    r = positions[1:4] - positions[0]
    energy = torch.zeros(graph[keys.CELL].shape[0], dtype=positions.dtype)
    return energy + 0.2 * torch.linalg.det(r)


def _order_dependent(graph, out):
    """Weights atoms by their index: breaks permutation equivariance."""
    positions = graph[keys.POSITIONS]
    weights = torch.arange(len(positions), dtype=positions.dtype)
    distance = torch.linalg.vector_norm(positions - positions[0], dim=-1)
    return sum_per_frame(0.05 * weights * distance, graph[keys.BATCH], graph[keys.CELL].shape[0])


def _detached(graph, out):
    """A distance term hidden from autograd: forces disagree with finite differences."""
    lengths = torch.linalg.vector_norm(edge_vectors(graph).detach(), dim=-1)
    centre_frame = graph[keys.BATCH][graph[keys.EDGE_INDEX][0]]
    return scatter_sum(0.1 * lengths**2, centre_frame, graph[keys.CELL].shape[0])


def _cross_frame(graph, out):
    """Zero in value, zero in total gradient, but frame 0's energy depends on frame 1's atoms and vice versa."""
    positions = graph[keys.POSITIONS]
    q = (positions**2).sum()
    t = q - q.detach()
    extra = torch.zeros(graph[keys.CELL].shape[0], dtype=positions.dtype)
    if len(extra) > 1:
        extra = extra + torch.cat([t.reshape(1), -t.reshape(1), extra[2:]])
    return extra


def _frame_coupling(graph, out):
    """Each frame gets 0.1 × the mean energy of all frames: batch results differ from single frames."""
    return 0.1 * out[keys.ENERGY].mean() * torch.ones_like(out[keys.ENERGY])


def _cell_size_term(graph, out):
    """Grows with the cell vectors' length, not with the number of atoms: not extensive."""
    cell = graph[keys.CELL]
    return 0.5 * torch.linalg.vector_norm(cell.reshape(len(cell), -1), dim=-1).detach()


class TestChecksCatchBrokenModels:
    def test_rotation(self, painn_model, molecule, periodic_atoms):
        broken = _Wrapped(painn_model, _absolute_x)
        for atoms in (molecule, periodic_atoms):
            with pytest.raises(AssertionError, match="rotation"):
                check_rotation_invariance(broken, atoms)

    def test_translation(self, painn_model, molecule, periodic_atoms):
        broken = _Wrapped(painn_model, _absolute_x)
        for atoms in (molecule, periodic_atoms):
            with pytest.raises(AssertionError, match="translation"):
                check_translation_invariance(broken, atoms)

    def test_reflection_but_not_rotation(self, painn_model, molecule):
        broken = _Wrapped(painn_model, _chiral)
        check_rotation_invariance(broken, molecule)
        with pytest.raises(AssertionError, match="reflection"):
            check_reflection_invariance(broken, molecule)

    def test_permutation(self, painn_model, molecule):
        broken = _Wrapped(painn_model, _order_dependent)
        check_translation_invariance(broken, molecule)
        with pytest.raises(AssertionError, match="permutation"):
            check_permutation_equivariance(broken, molecule)

    def test_finite_differences(self, painn_model, molecule, periodic_atoms):
        broken = _Wrapped(painn_model, _detached)
        for atoms in (molecule, periodic_atoms):
            with pytest.raises(AssertionError, match="finite differences"):
                check_forces_match_finite_differences(broken, atoms)

    def test_stress_finite_differences(self, painn_model, periodic_atoms):
        broken = _Wrapped(painn_model, _detached)
        with pytest.raises(AssertionError, match="stress"):
            check_stress_matches_finite_differences(broken, periodic_atoms)

    def test_cross_frame_gradients(self, painn_model, molecule, periodic_atoms):
        broken = _Wrapped(painn_model, _cross_frame)
        with pytest.raises(AssertionError, match="depends on the positions of atoms of other frames"):
            check_batch_consistency(broken, [molecule, periodic_atoms])

    def test_batch_results(self, painn_model, molecule, periodic_atoms):
        broken = _Wrapped(painn_model, _frame_coupling)
        with pytest.raises(AssertionError, match="batch of 2 frames"):
            check_batch_consistency(broken, [molecule, periodic_atoms])

    def test_fragment_additivity(self, painn_model, molecule):
        broken = _Wrapped(painn_model, _order_dependent)
        with pytest.raises(AssertionError, match="not additive"):
            check_fragment_additivity(broken, molecule, molecule)

    def test_supercell(self, painn_model, periodic_atoms):
        broken = _Wrapped(painn_model, _cell_size_term)
        with pytest.raises(AssertionError, match="supercell"):
            check_supercell_consistency(broken, periodic_atoms, (2, 1, 1))

    def test_pairs_beyond_the_cutoff(self, molecule, periodic_atoms):
        """A model that reads every pair it is given (its own ``prepare_graph`` keeps them all, and
        its hard cutoff does not zero them) changes its answer with a Verlet list's extra pairs."""
        broken = SmoothPairModel([1, 6, 7, 8], PAINN_CUTOFF, smooth=False)
        broken.prepare_graph = lambda graph, static_shapes=False: dict(graph)
        for atoms in (molecule, periodic_atoms):
            with pytest.raises(AssertionError, match="pairs up to"):
                check_pairs_beyond_the_cutoff_change_nothing(broken, atoms)

    def test_pairs_beyond_the_cutoff_kept(self, molecule, periodic_atoms):
        """A model whose hard cutoff does not zero the pairs beyond it passes while they are
        dropped, and fails once they are kept for static shapes."""
        hard = SmoothPairModel([1, 6, 7, 8], PAINN_CUTOFF, smooth=False)
        for atoms in (molecule, periodic_atoms):
            with pytest.raises(AssertionError, match=r"pairs up to .* \(kept\)"):
                check_pairs_beyond_the_cutoff_change_nothing(hard, atoms)

    def test_nan_never_passes(self, painn_model, molecule):
        def nan(graph, out):
            return torch.full_like(out[keys.ENERGY], float("nan"))

        with pytest.raises(AssertionError, match="non-finite"):
            check_rotation_invariance(_Wrapped(painn_model, nan), molecule)


class SmoothPairModel(nn.Module):
    """E = Σ_pairs ε_ij u(r_ij) with a smooth envelope u (or a hard step): a minimal eqff energy model."""

    def __init__(self, elements: list[int], cutoff: float, smooth: bool) -> None:
        super().__init__()
        self.elements = list(elements)
        self.cutoff = cutoff
        self.species = SpeciesIndex(elements)
        self.epsilon = nn.Parameter(torch.linspace(0.5, 1.5, len(elements)))
        self.envelope = PolynomialEnvelope(cutoff) if smooth else None

    def forward(self, graph):
        species = self.species(graph[keys.ATOMIC_NUMBERS])
        i, j = graph[keys.EDGE_INDEX]
        r = torch.linalg.vector_norm(edge_vectors(graph), dim=-1)
        u = self.envelope(r) if self.envelope is not None else torch.exp(-r)
        pair = self.epsilon[species[i]] * self.epsilon[species[j]] * u  # (E,)
        atomic = 0.5 * scatter_sum(pair, i, len(species))
        energy = sum_per_frame(atomic, graph[keys.BATCH], graph[keys.CELL].shape[0])
        return {keys.ENERGY: energy, keys.ATOMIC_ENERGIES: atomic}


class TestSmoothPairModel(ModelTests):
    """The whole suite on a correct, trivially smooth model: no check may reject it."""

    @pytest.fixture
    def model(self):
        return SmoothPairModel([1, 6, 7, 8], PAINN_CUTOFF, smooth=True)

    @pytest.mark.skip(reason="a test-only model, not a registered architecture: it has no model file")
    def test_model_file_round_trip(self):
        pass


def test_cutoff_check_catches_a_hard_cutoff(dtype):
    with pytest.raises(AssertionError, match="discontinuities at the cutoff"):
        check_cutoff_smoothness(SmoothPairModel([1, 6], PAINN_CUTOFF, smooth=False), dtype)


def test_tolerance_table():
    assert set(FLOAT_TOLERANCE) == {torch.float32, torch.float64}
    assert FLOAT_TOLERANCE[torch.float64] < FLOAT_TOLERANCE[torch.float32]


def test_models_from_different_seeds_differ(make_painn, molecule):
    """Guards fixtures: the seed actually changes the weights (so comparisons are not vacuous)."""
    e0 = evaluate(make_painn(0), molecule)[keys.ENERGY]
    e1 = evaluate(make_painn(1), molecule)[keys.ENERGY]
    assert abs(float(e0 - e1)) > 1e-3
