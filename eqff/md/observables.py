"""What an MD run is judged by: energy drift (NVE), bond stability and h(r) (NVT).

Stability and h(r) follow Fu et al., "Forces are not Enough: Benchmark and Critical Evaluation
for Machine Learning Force Fields with Molecular Simulations" (TMLR 2023):

- stability: the first frame at which any bond deviates by more than 0.5 Å from its length in
  the first frame (bonds: ``ase.neighborlist.natural_cutoffs`` on the first frame);
- h(r): the distribution of all interatomic distances (500 bins over 0–10 Å, normalised), and
  its error against reference frames, ∫|h(r) − h_ref(r)| dr.
"""

from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.neighborlist import NeighborList, natural_cutoffs

STABILITY_THRESHOLD = 0.5
"""Å: a bond longer or shorter than in the first frame by more than this marks the run unstable."""
HR_BINS = np.linspace(0.0, 10.0, 501)
"""Å: the edges of the h(r) histogram, as in Fu et al. (500 bins up to 10 Å)."""


class EnergyDrift(NamedTuple):
    """A least-squares line through the total energy per atom, and its spread."""

    drift: float
    """meV/atom/ps: the slope of the line."""
    offset: float
    """meV/atom: the line's value at time 0."""
    fluctuation: float
    """meV/atom: the standard deviation of the total energy."""


def energy_drift(times: np.ndarray, total_energies: np.ndarray, num_atoms: int) -> EnergyDrift:
    """Fit a straight line to the total energy per atom against time.

    Args:
        times: (n,) ps, n ≥ 2.
        total_energies: (n,) eV, of the whole system.
        num_atoms: the number of atoms the energies are divided by.
    """
    if len(times) < 2 or len(times) != len(total_energies):
        raise ValueError(
            f"need at least 2 samples of equal length, got {len(times)} times and {len(total_energies)} energies"
        )
    per_atom = 1e3 * np.asarray(total_energies) / num_atoms  # (n,) meV/atom
    slope, offset = np.polyfit(times, per_atom, 1)
    return EnergyDrift(drift=float(slope), offset=float(offset), fluctuation=float(per_atom.std()))


def bonds_of(atoms: Atoms) -> np.ndarray:
    """(B, 2) atom indices i < j of the bonds of ``atoms``: pairs closer than the sum of their natural cutoffs."""
    neighbours = NeighborList(natural_cutoffs(atoms), self_interaction=False, bothways=False)
    neighbours.update(atoms)
    rows, columns = neighbours.get_connectivity_matrix(sparse=True).nonzero()
    return np.sort(np.column_stack([rows, columns]), axis=1)


def bond_lengths(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """(T, B) Å: the lengths of ``bonds`` (B, 2) in each frame of ``positions`` (T, A, 3) Å."""
    return np.linalg.norm(positions[:, bonds[:, 0]] - positions[:, bonds[:, 1]], axis=-1)


def largest_bond_deviation(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """(T,) Å: per frame, the largest |bond length − its length in frame 0| over ``bonds`` (B, 2).

    ``positions``: (T, A, 3) Å.
    """
    return np.abs(bond_lengths(positions, bonds) - bond_lengths(positions[:1], bonds)).max(axis=1)


def stability_frame(positions: np.ndarray, bonds: np.ndarray, threshold: float = STABILITY_THRESHOLD) -> int | None:
    """The first frame at which any bond deviates by more than ``threshold`` Å from its length in frame 0.

    Args:
        positions: (T, A, 3) Å.
        bonds: (B, 2) atom indices.

    Returns:
        the frame index, or None if every frame is within the threshold.
    """
    unstable = np.flatnonzero(largest_bond_deviation(positions, bonds) > threshold)
    return int(unstable[0]) if len(unstable) else None


def pair_distances(positions: np.ndarray) -> np.ndarray:
    """(T · A(A−1)/2,) Å: the distances of all atom pairs i < j in every frame of ``positions`` (T, A, 3) Å."""
    i, j = np.triu_indices(positions.shape[1], k=1)
    return np.linalg.norm(positions[:, i] - positions[:, j], axis=-1).reshape(-1)


def distance_distribution(distances: np.ndarray, bins: np.ndarray = HR_BINS) -> np.ndarray:
    """h(r), (n,) 1/Å: the histogram of ``distances`` (Å) over ``bins`` (n + 1 edges, Å), integrating to 1."""
    return np.histogram(distances, bins, density=True)[0]


def hr_mae(h: np.ndarray, h_reference: np.ndarray, bins: np.ndarray = HR_BINS) -> float:
    """∫|h(r) − h_ref(r)| dr over the bins (dimensionless; 0 for equal, 2 for disjoint distributions).

    With Fu et al.'s uniform bins from 0 to r_max this is their h(r) MAE: the mean absolute
    difference over the bins times r_max. ``h`` and ``h_reference``: (n,) 1/Å; ``bins``: (n + 1,) Å.
    """
    return float(np.sum(np.abs(h - h_reference) * np.diff(bins)))
