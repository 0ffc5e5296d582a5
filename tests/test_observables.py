"""The MD observables of :mod:`eqff.md.observables` on hand-made data: energy drift, bond stability, h(r)."""

import ase.build
import numpy as np
import pytest

from eqff.md import observables


def test_energy_drift_of_a_linear_total_energy_is_its_slope():
    times = np.linspace(0.0, 2.0, 41)  # ps
    num_atoms, slope = 21, 1.5  # meV/atom/ps
    total = -100.0 + num_atoms * slope * 1e-3 * times  # eV
    fit = observables.energy_drift(times, total, num_atoms)
    assert fit.drift == pytest.approx(slope, rel=1e-9)
    assert fit.offset == pytest.approx(-100.0e3 / num_atoms, rel=1e-12)
    assert fit.fluctuation == pytest.approx(slope * times.std(), rel=1e-9)


def test_energy_drift_of_a_constant_energy_with_noise_is_near_zero():
    times = np.linspace(0.0, 10.0, 2001)
    total = -50.0 + 1e-3 * np.sin(40.0 * times)  # eV: oscillates, does not drift
    fit = observables.energy_drift(times, total, 10)
    assert abs(fit.drift) < 1e-3
    assert fit.fluctuation == pytest.approx(1e-3 * 1e3 / 10 / np.sqrt(2), rel=0.01)


def test_energy_drift_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        observables.energy_drift(np.zeros(1), np.zeros(1), 21)


def _water_trajectory(num_frames: int, stretch: float, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T, 3, 3) Å of water, its first O–H bond longer by ``stretch`` Å from ``frame`` on; its bonds."""
    water = ase.build.molecule("H2O")
    positions = np.repeat(water.positions[None], num_frames, axis=0)
    direction = positions[0, 1] - positions[0, 0]
    positions[frame:, 1] += stretch * direction / np.linalg.norm(direction)
    return positions, observables.bonds_of(water)


def test_bonds_of_water_are_its_two_o_h_bonds():
    assert observables.bonds_of(ase.build.molecule("H2O")).tolist() == [[0, 1], [0, 2]]


def test_stability_time_is_the_frame_at_which_a_bond_stretches_beyond_the_threshold():
    positions, bonds = _water_trajectory(10, stretch=0.6, frame=6)
    assert observables.stability_frame(positions, bonds) == 6
    assert observables.largest_bond_deviation(positions, bonds) == pytest.approx([0.0] * 6 + [0.6] * 4)


def test_a_stretch_below_the_threshold_is_stable():
    positions, bonds = _water_trajectory(10, stretch=0.4, frame=3)
    assert observables.stability_frame(positions, bonds) is None


def test_pair_distances_of_a_3_4_5_triangle():
    positions = np.array([[[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])
    assert sorted(observables.pair_distances(positions)) == pytest.approx([3.0, 4.0, 5.0])


def test_h_of_r_is_normalised_and_its_mae_is_zero_for_identical_and_two_for_disjoint_distances():
    distances = np.random.default_rng(0).uniform(1.0, 8.0, 5000)
    h = observables.distance_distribution(distances)
    assert np.sum(h * np.diff(observables.HR_BINS)) == pytest.approx(1.0)
    assert observables.hr_mae(h, observables.distance_distribution(distances.copy())) == 0.0
    near, far = observables.distance_distribution(np.full(10, 1.5)), observables.distance_distribution(np.full(10, 7.5))
    assert observables.hr_mae(near, far) == pytest.approx(2.0)
