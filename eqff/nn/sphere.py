"""Signals on the sphere S² and the invariants of position-orientation space R³×S² (PONITA).

A feature field on R³×S² is sampled at every atom on one shared grid of N orientations n_a:
a tensor of shape (n, N, C). Scalars are *lifted* to it by copying them to every orientation,
and a field is *projected* back to scalars by its mean over the grid, a quadrature of the mean
over the sphere (1/4π) ∫ f(n) dn.

Two points (x_i, n_a) and (x_j, n_b) of R³×S² are related, up to a rotation and translation
of both, by three invariants (Bekkers et al., ICLR 2024, Theorem 1): with x = x_j − x_i,

- α = n_a · x, the displacement along the orientation of the receiving point, Å;
- β = ‖x − α n_a‖, the displacement perpendicular to it, Å;
- γ = n_a · n_b, the cosine of the angle between the two orientations.

PONITA's separable convolution uses them apart: (α, β) per edge and orientation, γ per pair
of orientations (the grid alone). All are computed in torch from the edge vectors, so forces
flow through them by autograd.

The grid is a Fibonacci lattice: deterministic and near-uniform for every N. A grid of finite
N is not invariant under rotations, so a network on it is equivariant only up to a
discretisation error that falls as N grows.
"""

import math

import torch
from torch import nn

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
"""Radians between consecutive points of the Fibonacci lattice, around the z axis."""

PERPENDICULAR_EPS = 1e-8
"""Å²; added under the square root of β² so that β and its derivatives stay finite when an edge
is parallel to an orientation (β = 0). It moves β by at most 1e-4 Å, and by ε / 2β elsewhere."""


def fibonacci_sphere(num_points: int) -> torch.Tensor:
    """(num_points, 3) float64 unit vectors of the Fibonacci lattice on S².

    Point k has height z_k = 1 − (2k + 1) / N, equal-area latitude bands, and azimuth
    k × the golden angle, so that successive points spiral round the sphere without lining up.
    The grid is the same on every call (no random numbers).
    """
    if num_points < 1:
        raise ValueError(f"a sphere grid needs at least one point, got {num_points}")
    k = torch.arange(num_points, dtype=torch.float64)  # (N,)
    z = 1.0 - (2.0 * k + 1.0) / num_points  # (N,)
    radius = torch.sqrt(1.0 - z * z)  # (N,) distance from the z axis
    azimuth = k * GOLDEN_ANGLE  # (N,)
    return torch.stack([radius * torch.cos(azimuth), radius * torch.sin(azimuth), z], dim=-1)  # (N, 3)


def lift(x: torch.Tensor, num_orientations: int) -> torch.Tensor:
    """Scalars to a constant field on the grid. Shapes: (n, C) → (n, N, C) (a view, no copy)."""
    return x.unsqueeze(1).expand(-1, num_orientations, -1)


def project(x: torch.Tensor) -> torch.Tensor:
    """A field on the grid to scalars, its mean over the orientations. Shapes: (n, N, C) → (n, C)."""
    return x.mean(dim=1)


def spatial_invariants(
    vectors: torch.Tensor, orientations: torch.Tensor, eps: float = PERPENDICULAR_EPS
) -> torch.Tensor:
    """(α, β) of every edge vector at every orientation of the grid, Å.

    α = n_a · x and β = sqrt(‖x − α n_a‖² + ε), ε = ``eps`` in Å² (:data:`PERPENDICULAR_EPS`); β is
    computed from the perpendicular vector itself rather than from ‖x‖² − α², which would
    cancel catastrophically for edges nearly parallel to n_a.

    Shapes: vectors (E, 3), orientations (N, 3) unit vectors → (E, N, 2).
    """
    along = vectors @ orientations.T  # (E, N)
    perpendicular = vectors.unsqueeze(1) - along.unsqueeze(-1) * orientations  # (E, N, 3)
    across = torch.sqrt((perpendicular * perpendicular).sum(dim=-1) + eps)  # (E, N)
    return torch.stack([along, across], dim=-1)  # (E, N, 2)


def sphere_invariants(orientations: torch.Tensor) -> torch.Tensor:
    """γ = n_a · n_b for every pair of grid orientations. Shapes: (N, 3) → (N, N, 1)."""
    return (orientations @ orientations.T).unsqueeze(-1)  # (N, N, 1)


class PolynomialEmbedding(nn.Module):
    """All monomials of degree 1 … ``degree`` of k invariants (PONITA's polynomial features).

    Each monomial appears once (x₁x₂, not also x₂x₁): C(k + d, d) − 1 features, e.g. 9 for
    k = 2, d = 3. Monomials of degree t are products of one of degree t − 1 with one invariant,
    so the embedding needs only products and its derivatives are finite everywhere.

    Args:
        num_invariants: k.
        degree: d, highest total degree.

    Shapes: (..., k) → (..., C(k + d, d) − 1).
    """

    sizes: list[int]
    """Number of monomials of each degree 2 … d (a class annotation, for TorchScript when d = 1)."""

    def __init__(self, num_invariants: int, degree: int) -> None:
        super().__init__()
        if num_invariants < 1 or degree < 1:
            raise ValueError(f"need at least one invariant and degree ≥ 1, got {num_invariants} and {degree}")
        # A monomial is identified by its last (highest-index) invariant; multiplying it only by
        # invariants of that index or higher lists every monomial of the next degree once.
        last = list(range(num_invariants))  # last invariant of each monomial of the current degree
        parents: list[int] = []
        factors: list[int] = []
        self.sizes: list[int] = []
        for _ in range(2, degree + 1):
            level = [(p, f) for p, l in enumerate(last) for f in range(l, num_invariants)]
            parents += [p for p, _ in level]
            factors += [f for _, f in level]
            self.sizes.append(len(level))
            last = [f for _, f in level]
        self.num_features = num_invariants + len(parents)
        self.register_buffer("parents", torch.tensor(parents, dtype=torch.long), persistent=False)
        self.register_buffer("factors", torch.tensor(factors, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = x  # (..., k) degree 1
        levels = [level]
        start = 0
        for size in self.sizes:
            parents = self.parents[start : start + size]
            factors = self.factors[start : start + size]
            level = level.index_select(-1, parents) * x.index_select(-1, factors)  # (..., size)
            levels.append(level)
            start += size
        return torch.cat(levels, dim=-1)  # (..., num_features)
