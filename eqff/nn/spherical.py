"""The spherical (Fourier–Bessel) basis of a triplet, as in DimeNet and GemNet-T, kept factorised.

For a triplet k → j → i (see :mod:`eqff.nn.triplets`) with output edge e = (i, j) of length d
and the angle θ at atom j between j → i and j → k, the basis functions are

    a_ln(e, θ) = u(d) · N_ln j_l(z_ln d / r_c) · Y_l^0(θ),    l < L, n < N,

with j_l the spherical Bessel function of order l, z_ln its n-th positive root (so every radial
function vanishes at the cutoff r_c), N_ln = sqrt(2 / r_c³) / |j_{l+1}(z_ln)| (the radial
functions of one l are orthonormal on [0, r_c] with weight r²), u the polynomial envelope
(:class:`eqff.nn.radial.PolynomialEnvelope`) and Y_l^0 the real spherical harmonic of order
m = 0, sqrt((2l + 1) / 4π) P_l(cos θ).

The radial factor depends on the output edge alone, so :class:`SphericalBasis` returns it per
edge, (E, L, N), and the angular factor per triplet, (T, L). GemNet's efficient bilinear layer
contracts them one after the other and never forms the (T, L·N) product.
"""

import functools
import math

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import spherical_jn
from torch import nn

from eqff.nn.radial import PolynomialEnvelope


def spherical_bessel_roots(num_orders: int, num_roots: int) -> np.ndarray:
    """(num_orders, num_roots) float64: the first ``num_roots`` positive roots z_ln of j_l, l < num_orders.

    The roots of j_0 are nπ; those of j_(l+1) interlace with those of j_l (one between each
    consecutive pair), so each order is found by bracketing (scipy's ``brentq``) from the last.
    """
    roots = np.pi * np.arange(1, num_roots + num_orders)  # (num_roots + num_orders − 1,) roots of j_0
    table = [roots[:num_roots]]
    for order in range(1, num_orders):
        function = functools.partial(spherical_jn, order)
        roots = np.array([brentq(function, a, b, xtol=1e-15) for a, b in zip(roots[:-1], roots[1:])])
        table.append(roots[:num_roots])
    return np.stack(table)


def spherical_bessel(x: torch.Tensor, max_order: int) -> torch.Tensor:
    """Spherical Bessel functions j_0 … j_max_order of x > 0.

    By upward recurrence, j_(l+1) = (2l + 1)/x j_l − j_(l−1), from j_0 = sin x / x and
    j_1 = (j_0 − cos x) / x. Below x ≈ l it loses about log10((2l − 1)!! / x^(l+1)) digits, so
    callers that need small arguments accurately evaluate it in float64 (as
    :class:`SphericalBesselBasis` does).

    Shapes: (...,) → (..., max_order + 1).
    """
    sin, cos = torch.sin(x), torch.cos(x)
    orders = [sin / x]
    if max_order > 0:
        orders.append((orders[0] - cos) / x)
    for order in range(1, max_order):
        orders.append((2 * order + 1) / x * orders[order] - orders[order - 1])
    return torch.stack(orders, dim=-1)


def spherical_bessel_of_order(x: torch.Tensor, order: int) -> torch.Tensor:
    """j_order(x) of x > 0 by the upward recurrence of :func:`spherical_bessel`, keeping only the
    last two orders: the same values as ``spherical_bessel(x, order)[..., order]``.

    Shapes: (...,) → (...,).
    """
    j_0 = torch.sin(x) / x
    if order == 0:
        return j_0
    previous, current = j_0, (j_0 - torch.cos(x)) / x  # j_(l−1), j_l for l = 1
    for l in range(1, order):
        previous, current = current, (2 * l + 1) / x * current - previous
    return current


class SphericalBesselBasis(nn.Module):
    """Radial part N_ln j_l(z_ln d / r_c) of the spherical basis (no envelope), Å^(−3/2).

    The recurrence runs in float64 and the result is cast back to the dtype of ``distances``:
    in float32, j_6 at the shortest bonds (z_ln d / r_c ≈ 2) would keep only a few correct digits.
    The (E, L, N) tensor is small, so this costs little even where float64 is slow.

    Args:
        cutoff: r_c, Å.
        num_spherical: L, number of orders l = 0 … L − 1.
        num_radial: N, number of roots per order.

    Shapes: (E,) distances → (E, L, N).
    """

    def __init__(self, cutoff: float, num_spherical: int, num_radial: int) -> None:
        super().__init__()
        self.max_order = num_spherical - 1
        roots = spherical_bessel_roots(num_spherical, num_radial)  # (L, N)
        orders = np.arange(num_spherical)[:, None]  # (L, 1)
        normalisers = math.sqrt(2.0 / cutoff**3) / np.abs(spherical_jn(orders + 1, roots))  # (L, N)
        # float64, so that a model cast to float64 keeps them exact; forward casts them as it needs.
        self.register_buffer("frequencies", torch.as_tensor(roots / cutoff, dtype=torch.float64))  # (L, N), 1/Å
        self.register_buffer("normalisers", torch.as_tensor(normalisers, dtype=torch.float64))  # (L, N), Å^(−3/2)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        d = distances.to(torch.float64)[:, None]  # (E, 1)
        frequencies = self.frequencies.to(torch.float64)  # (L, N)
        # each order only at its own arguments: j_l(z_ln d / r_c), l steps of the recurrence on (E, N)
        own_order = torch.stack(
            [spherical_bessel_of_order(frequencies[l] * d, l) for l in range(self.max_order + 1)], dim=1
        )  # (E, L, N)
        return (own_order * self.normalisers.to(torch.float64)).to(distances.dtype)  # (E, L, N)


class TripletAngularBasis(nn.Module):
    """Angular part Y_l^0(θ) = sqrt((2l + 1) / 4π) P_l(cos θ) of the spherical basis.

    θ is the angle at atom j between j → i (minus the output edge's vector) and j → k (the input
    edge's vector). The Legendre polynomials P_l come from Bonnet's recurrence,
    (l + 1) P_(l+1)(z) = (2l + 1) z P_l(z) − l P_(l−1)(z), which is stable for |z| ≤ 1 and needs
    no arccos, so gradients are finite at θ = 0 and π.

    Only the m = 0 harmonic of the angle enters the basis, so this evaluates it directly rather
    than all 2l + 1 components of every order of every edge with
    :class:`e3nn.o3.SphericalHarmonics` (summed over m by the addition theorem), which takes many
    more small operations per call.

    Args:
        num_spherical: L, number of orders l = 0 … L − 1 (at least 1).

    Shapes: unit_vectors (E, 3) (the edges' directions), input_edges (T,), output_edges (T,) → (T, L).
    """

    def __init__(self, num_spherical: int) -> None:
        super().__init__()
        if num_spherical < 1:
            raise ValueError(f"num_spherical must be at least 1, got {num_spherical}")
        self.num_spherical = num_spherical
        normalisers = torch.tensor([math.sqrt((2 * l + 1) / (4 * math.pi)) for l in range(num_spherical)])
        self.register_buffer("normalisers", normalisers, persistent=False)  # (L,)

    def forward(
        self, unit_vectors: torch.Tensor, input_edges: torch.Tensor, output_edges: torch.Tensor
    ) -> torch.Tensor:
        j_to_k = unit_vectors.index_select(0, input_edges)  # (T, 3)
        i_to_j = unit_vectors.index_select(0, output_edges)  # (T, 3)
        cos = -(j_to_k * i_to_j).sum(-1)  # (T,): the angle at j between j → i and j → k
        legendre = [torch.ones_like(cos), cos]
        for l in range(1, self.num_spherical - 1):
            legendre.append(((2 * l + 1) * cos * legendre[l] - l * legendre[l - 1]) / (l + 1))
        return torch.stack(legendre[: self.num_spherical], dim=-1) * self.normalisers.to(cos.dtype)  # (T, L)


class SphericalBasis(nn.Module):
    """The factorised spherical basis of a triplet (see the module docstring), with the envelope.

    Args:
        cutoff: r_c, Å.
        num_spherical: L, number of orders.
        num_radial: N, number of radial functions per order.
        envelope_exponent: p of the polynomial envelope u.

    Shapes: vectors (E, 3) Å, distances (E,) Å, input_edges (T,), output_edges (T,) →
    radial (E, L, N) for the output edges (envelope included) and angular (T, L); the basis of
    triplet t is ``radial[output_edges[t], l, n] * angular[t, l]``.
    """

    def __init__(self, cutoff: float, num_spherical: int, num_radial: int, envelope_exponent: int) -> None:
        super().__init__()
        self.radial = SphericalBesselBasis(cutoff, num_spherical, num_radial)
        self.angular = TripletAngularBasis(num_spherical)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)

    def forward(
        self, vectors: torch.Tensor, distances: torch.Tensor, input_edges: torch.Tensor, output_edges: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        radial = self.radial(distances) * self.envelope(distances)[:, None, None]  # (E, L, N)
        unit_vectors = vectors / distances.unsqueeze(-1)  # (E, 3)
        return radial, self.angular(unit_vectors, input_edges, output_edges)  # (E, L, N), (T, L)
