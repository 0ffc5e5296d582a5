"""eqff.neighbours: the vesin neighbour list against a brute-force O(N²) search, and the skin cache."""

import copy
import itertools

import ase.build
import numpy as np
import pytest
import torch
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from eqff import EqffCalculator
from eqff.data import keys
from eqff.errors import EqffInputError
from eqff.models import build_model
from eqff.neighbours import NeighbourListCache, edge_lengths, neighbour_list


def brute_force_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> set:
    """Every (i, j, shift) with |x_j − x_i + shift @ cell| < cutoff, except i = j with zero shift.

    Image shifts along each periodic direction k range over ±(ceil(cutoff / d_k) + 1), d_k being
    the spacing of the lattice planes spanned by the other two vectors, plus one more for atoms
    outside the cell: enough to reach every image within the cutoff.
    """
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    ranges = []
    if pbc.any():
        volume = abs(np.linalg.det(cell))
        fractional = positions @ np.linalg.inv(cell)
        spread = np.ceil(fractional.max(0) - fractional.min(0))  # atoms outside [0, 1) need more images
    for k in range(3):
        if pbc[k]:
            spacing = volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
            n = int(np.ceil(cutoff / spacing)) + 1 + int(spread[k])
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(0, 1))
    pairs = set()
    for shift in itertools.product(*ranges):
        offset = np.asarray(shift, dtype=np.float64) @ cell if pbc.any() else np.zeros(3)
        vectors = positions[None, :, :] - positions[:, None, :] + offset  # (n, n, 3): x_j − x_i + offset
        distances = np.linalg.norm(vectors, axis=-1)
        for i, j in zip(*np.nonzero(distances < cutoff)):
            if i != j or any(shift):
                pairs.add((int(i), int(j), tuple(int(s) for s in shift)))
    return pairs


def as_pair_set(edge_index: np.ndarray, cell_shifts: np.ndarray) -> set:
    return {(int(i), int(j), tuple(int(s) for s in shift)) for i, j, shift in zip(*edge_index, cell_shifts)}


def assert_same_pairs(positions, cell, pbc, cutoff):
    edge_index, cell_shifts = neighbour_list(positions, cell, np.asarray(pbc), cutoff)
    assert edge_index.dtype == np.int64 and cell_shifts.dtype == np.int64
    assert edge_index.shape == (2, cell_shifts.shape[0]) and cell_shifts.shape[1] == 3
    found = as_pair_set(edge_index, cell_shifts)
    assert len(found) == edge_index.shape[1], "the neighbour list holds duplicate pairs"
    expected = brute_force_pairs(positions, np.asarray(cell, dtype=float), pbc, cutoff)
    assert expected, "test geometry has no pairs: it would prove nothing"
    missing, extra = expected - found, found - expected
    assert not missing and not extra, (
        f"missing {sorted(missing)[:5]} ({len(missing)}), extra {sorted(extra)[:5]} ({len(extra)})"
    )
    return found


TRICLINIC_CELL = np.array([[2.5, 0.0, 0.0], [0.8, 2.3, 0.0], [0.5, 0.6, 2.1]])


class TestNeighbourListAgainstBruteForce:
    def test_isolated_molecule(self):
        atoms = ase.build.molecule("CH3CONH2")
        atoms.rattle(0.05, seed=0)
        found = assert_same_pairs(atoms.positions, np.zeros((3, 3)), [False] * 3, 2.5)
        assert len(found) < len(atoms) * (len(atoms) - 1), "cutoff should exclude some pairs"
        assert all(shift == (0, 0, 0) for _, _, shift in found)

    def test_isolated_molecule_ignores_a_cell_without_pbc(self):
        atoms = ase.build.molecule("CH3CONH2")
        with_cell = neighbour_list(atoms.positions, np.eye(3) * 3.0, np.zeros(3, bool), 2.5)
        without = neighbour_list(atoms.positions, np.zeros((3, 3)), np.zeros(3, bool), 2.5)
        assert as_pair_set(*with_cell) == as_pair_set(*without)

    def test_cubic_periodic(self):
        rng = np.random.default_rng(0)
        cell = np.eye(3) * 6.0
        positions = rng.uniform(0, 6.0, size=(20, 3))
        assert_same_pairs(positions, cell, [True] * 3, 3.5)  # > half the box: several images of a pair

    def test_cubic_periodic_atoms_outside_the_cell(self):
        """MD does not wrap positions: atoms far outside the cell must give the same pairs."""
        rng = np.random.default_rng(1)
        cell = np.eye(3) * 6.0
        positions = rng.uniform(0, 6.0, size=(12, 3))
        positions[::3] += np.array([6.0, -12.0, 18.0]) + 0.3
        assert_same_pairs(positions, cell, [True] * 3, 3.0)

    def test_triclinic_cell_smaller_than_cutoff(self):
        rng = np.random.default_rng(2)
        positions = rng.uniform(0, 1, size=(3, 3)) @ TRICLINIC_CELL
        found = assert_same_pairs(positions, TRICLINIC_CELL, [True] * 3, 4.5)
        self_images = [p for p in found if p[0] == p[1]]
        assert self_images, "the cutoff exceeds the cell, so atoms must see their own images"
        assert max(max(abs(s) for s in p[2]) for p in found) >= 2, "pairs should reach beyond the nearest images"

    def test_single_atom_sees_only_its_images(self):
        found = assert_same_pairs(np.zeros((1, 3)), TRICLINIC_CELL, [True] * 3, 3.0)
        assert {(i, j) for i, j, _ in found} == {(0, 0)}

    @pytest.mark.parametrize("pbc", [(True, True, False), (False, True, True), (True, False, False)])
    def test_mixed_pbc(self, pbc):
        rng = np.random.default_rng(3)
        positions = rng.uniform(-0.5, 1.5, size=(6, 3)) @ TRICLINIC_CELL  # also outside the cell along open directions
        found = assert_same_pairs(positions, TRICLINIC_CELL, list(pbc), 3.2)
        for _, _, shift in found:
            assert all(s == 0 for s, periodic in zip(shift, pbc) if not periodic)

    def test_edge_lengths_are_below_the_cutoff(self):
        rng = np.random.default_rng(4)
        positions = rng.uniform(0, 1, size=(5, 3)) @ TRICLINIC_CELL
        edge_index, shifts = neighbour_list(positions, TRICLINIC_CELL, np.ones(3, bool), 3.0)
        lengths = edge_lengths(positions, TRICLINIC_CELL, edge_index, shifts)
        assert (lengths < 3.0).all() and (lengths > 0).all()


class TestInputErrors:
    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_positions(self, bad):
        positions = np.zeros((3, 3))
        positions[1] = [1.0, 0.0, 0.0]
        positions[2, 1] = bad
        with pytest.raises(EqffInputError, match="NaN or infinite.*atoms \\[2\\]"):
            neighbour_list(positions, np.zeros((3, 3)), np.zeros(3, bool), 3.0)

    def test_pbc_with_zero_cell(self):
        with pytest.raises(EqffInputError, match="zero vector"):
            neighbour_list(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], np.zeros((3, 3)), np.ones(3, bool), 3.0)

    def test_pbc_with_a_zero_vector_along_a_periodic_direction(self):
        cell = np.diag([3.0, 3.0, 0.0])
        with pytest.raises(EqffInputError, match="zero vector"):
            neighbour_list(np.zeros((1, 3)), cell, np.array([True, True, True]), 2.0)

    def test_singular_cell(self):
        cell = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.0, 3.0, 0.0]])  # third = first + second
        with pytest.raises(EqffInputError, match="singular"):
            neighbour_list(np.zeros((1, 3)), cell, np.ones(3, bool), 2.0)

    def test_non_finite_cell(self):
        cell = np.eye(3) * 3.0
        cell[0, 0] = np.nan
        with pytest.raises(EqffInputError, match="cell"):
            neighbour_list(np.zeros((1, 3)), cell, np.ones(3, bool), 2.0)

    def test_bad_shapes(self):
        with pytest.raises(EqffInputError, match="shape"):
            neighbour_list(np.zeros((3, 2)), np.zeros((3, 3)), np.zeros(3, bool), 2.0)

    def test_cache_refuses_nan_positions_after_a_build(self):
        """After a build, the staleness test sees NaN as 'not moved'; the input must still be refused."""
        cache = NeighbourListCache(cutoff=3.0, skin=0.5)
        positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        numbers = np.array([1, 1])
        cache(positions, numbers, np.zeros((3, 3)), np.zeros(3, bool))
        positions[1, 0] = np.nan
        with pytest.raises(EqffInputError, match="NaN"):
            cache(positions, numbers, np.zeros((3, 3)), np.zeros(3, bool))

    def test_cache_refuses_bad_settings(self):
        with pytest.raises(ValueError):
            NeighbourListCache(cutoff=0.0, skin=0.5)
        with pytest.raises(ValueError):
            NeighbourListCache(cutoff=3.0, skin=-0.1)


class TestNeighbourListCache:
    CUTOFF = 4.0
    SKIN = 0.5

    @pytest.fixture
    def system(self):
        atoms = ase.build.bulk("C", "diamond", a=3.57, cubic=True)  # 8 atoms, 3.57 Å cell < cutoff
        atoms.rattle(0.05, seed=0)
        return atoms.positions.copy(), atoms.numbers.copy(), atoms.cell.array.copy(), atoms.pbc.copy()

    def _call_and_compare(self, cache, positions, numbers, cell, pbc):
        """The cached list holds every pair within the cutoff, and nothing beyond cutoff + skin of the last build."""
        edge_index, shifts = cache(positions, numbers, cell, pbc)
        within = edge_lengths(positions, cell, edge_index, shifts) < self.CUTOFF
        exact = as_pair_set(*neighbour_list(positions, cell, pbc, self.CUTOFF))
        assert as_pair_set(edge_index[:, within], shifts[within]) == exact
        built = cache._build.positions
        assert as_pair_set(edge_index, shifts) == as_pair_set(*neighbour_list(built, cell, pbc, self.CUTOFF + cache.skin))
        return edge_index, shifts

    def test_reuses_the_list_for_small_moves_and_stays_exact(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, self.SKIN)
        first = self._call_and_compare(cache, positions, numbers, cell, pbc)
        assert cache.num_builds == 1
        assert all(a is b for a, b in zip(cache(positions + 0.01, numbers, cell, pbc), first))  # the same arrays
        rng = np.random.default_rng(0)
        for _ in range(5):
            direction = rng.normal(size=positions.shape)
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            moved = positions + 0.24 * direction  # every atom < skin/2: pairs change by up to 0.48 Å
            self._call_and_compare(cache, moved, numbers, cell, pbc)
        assert cache.num_builds == 1

    def test_rebuilds_after_a_move_beyond_half_the_skin(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, self.SKIN)
        cache(positions, numbers, cell, pbc)
        moved = positions.copy()
        moved[3] += [0.0, 0.24, 0.0]
        self._call_and_compare(cache, moved, numbers, cell, pbc)
        assert cache.num_builds == 1
        moved[3] += [0.0, 0.02, 0.0]  # 0.26 Å from where the list was built
        self._call_and_compare(cache, moved, numbers, cell, pbc)
        assert cache.num_builds == 2

    def test_rebuilds_when_numbers_cell_or_pbc_change(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, self.SKIN)
        cache(positions, numbers, cell, pbc)
        other_numbers = numbers.copy()
        other_numbers[0] = 14
        self._call_and_compare(cache, positions, other_numbers, cell, pbc)
        assert cache.num_builds == 2
        strained = cell * 1.01
        self._call_and_compare(cache, positions, other_numbers, strained, pbc)
        assert cache.num_builds == 3
        slab = np.array([True, True, False])
        self._call_and_compare(cache, positions, other_numbers, strained, slab)
        assert cache.num_builds == 4
        self._call_and_compare(cache, positions, other_numbers, strained, slab)
        assert cache.num_builds == 4

    def test_rebuilds_when_atoms_are_added(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, self.SKIN)
        cache(positions, numbers, cell, pbc)
        self._call_and_compare(cache, positions[:-1], numbers[:-1], cell, pbc)
        assert cache.num_builds == 2

    def test_zero_skin_rebuilds_every_call(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, 0.0)
        for _ in range(3):
            self._call_and_compare(cache, positions, numbers, cell, pbc)
        assert cache.num_builds == 3

    def test_cache_does_not_keep_a_reference_to_the_callers_array(self, system):
        positions, numbers, cell, pbc = system
        cache = NeighbourListCache(self.CUTOFF, self.SKIN)
        cache(positions, numbers, cell, pbc)
        positions[0] += 1.0  # the caller moves an atom in place
        self._call_and_compare(cache, positions, numbers, cell, pbc)
        assert cache.num_builds == 2


GEMNET_TINY = {"cutoff": 4.0, "num_blocks": 1, "emb_size_atom": 8, "emb_size_edge": 8, "emb_size_trip": 4,
               "emb_size_rbf": 4, "emb_size_cbf": 4, "emb_size_bil_trip": 4, "num_radial": 4, "num_spherical": 3}  # fmt: skip


@pytest.mark.parametrize("static_shapes", [False, True], ids=["pairs-dropped", "static-shapes"])
@pytest.mark.parametrize("architecture", ["painn", "gemnet-t"])
def test_cached_calculator_matches_uncached_along_md(painn_model, architecture, static_shapes):
    """Velocity Verlet with skin 0.5 Å: every step's energy and forces equal those of a fresh list.

    A periodic 8-atom diamond cell at 1500 K with cutoff 4 Å: pairs cross the cutoff between
    rebuilds (checked), so the models' restriction of the Verlet list to the cutoff is
    exercised, or, with static shapes (a GPU's default), their envelopes' zeroing of the pairs
    beyond it. GemNet-T builds its triplets once per neighbour-list build, not once per step.
    Between builds the graph's index tensors are reused: only the positions are new.
    """
    atoms = ase.build.bulk("C", "diamond", a=3.57, cubic=True)
    atoms.rattle(0.05, seed=0)
    thermalize_momenta(atoms, temperature_K=1500, rng=np.random.default_rng(0))
    if architecture == "painn":
        model = painn_model
    else:
        torch.manual_seed(0)
        model = build_model("gemnet-t", {"elements": [6], **GEMNET_TINY}).eval()
    cached = EqffCalculator(copy.deepcopy(model), dtype="float64", skin=0.5)
    cached.potential.energy_forces.static_shapes = static_shapes
    fresh = EqffCalculator(copy.deepcopy(model), dtype="float64", skin=0.0)
    atoms.calc = cached
    cutoff = model.cutoff
    steps = {"n": 0, "pair_changes_without_rebuild": 0, "pairs": None, "builds": None, "edge_tensor": None}

    def compare():
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        probe = atoms.copy()
        probe.calc = fresh
        assert abs(probe.get_potential_energy() - energy) < 1e-10
        np.testing.assert_allclose(probe.get_forces(), forces, rtol=0, atol=1e-10)
        pairs = as_pair_set(*neighbour_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff))
        builds = cached.potential.neighbours.num_builds
        edge_tensor = cached.potential._last_graph[1][keys.EDGE_INDEX]
        if builds == steps["builds"]:
            assert edge_tensor is steps["edge_tensor"], "index tensors copied again without a rebuild"
            if pairs != steps["pairs"]:
                steps["pair_changes_without_rebuild"] += 1
        steps["pairs"], steps["builds"], steps["edge_tensor"] = pairs, builds, edge_tensor
        steps["n"] += 1

    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dynamics.attach(compare, interval=1)
    dynamics.run(40)
    assert steps["n"] == 41
    builds = cached.potential.neighbours.num_builds
    assert fresh.potential.neighbours.num_builds == steps["n"]
    assert 2 <= builds < steps["n"] // 2, f"cached list built {builds} times in {steps['n']} steps"
    assert steps["pair_changes_without_rebuild"] > 0, "no pair crossed the cutoff between rebuilds: test too weak"
    if architecture == "gemnet-t":
        assert cached.potential.model.triplets.num_builds == builds
