"""Radial bases and smooth cutoff envelopes of interatomic distances."""

import math

import torch
from torch import nn


class BesselBasis(nn.Module):
    """sqrt(2/r_c) sin(n π r / r_c) / r for n = 1..num_radial (DimeNet, NequIP).

    Args:
        cutoff: r_c, Å.
        num_radial: number of basis functions.

    Shapes: (E,) distances → (E, num_radial).
    """

    def __init__(self, cutoff: float, num_radial: int) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("frequencies", torch.arange(1, num_radial + 1) * math.pi / cutoff)
        self.prefactor = math.sqrt(2.0 / cutoff)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        d = distances.unsqueeze(-1)  # (E, 1)
        return self.prefactor * torch.sin(self.frequencies * d) / d  # (E, num_radial)


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff u(r) of DimeNet: 1 at r = 0, and u, u', u'' vanish at r = r_c.

    u(x) = 1 − (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) − p(p+1)/2 x^(p+2), x = r/r_c, and 0 beyond.

    Args:
        cutoff: r_c, Å.
        exponent: p (DimeNet uses 6).

    Shapes: (E,) → (E,).
    """

    def __init__(self, cutoff: float, exponent: int = 6) -> None:
        super().__init__()
        self.cutoff = cutoff
        p = exponent
        self.p = p
        self.a = -(p + 1) * (p + 2) / 2
        self.b = p * (p + 2)
        self.c = -p * (p + 1) / 2

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        x = distances / self.cutoff
        x_p = x.pow(self.p)
        u = 1.0 + x_p * (self.a + x * (self.b + x * self.c))
        return torch.where(x < 1.0, u, torch.zeros_like(u))


GAUSSIAN_MIN_EXPONENT = -40.0
"""Exponents of :class:`GaussianBasis` are clamped here, so that no basis value is below
e^−40 ≈ 4e−18. Far below it exp returns float32 denormals or zeros, which took a CPU 5 times as
long (44 µs against 9 µs for SchNet's basis of aspirin's 294 pairs); the kink the clamp leaves,
of that size, is far below float precision."""


class GaussianBasis(nn.Module):
    """exp(−(r − μ_k)² / (2 σ²)) for k = 1..num_radial centres μ_k evenly spaced on [start, stop].

    The width σ is the spacing of the centres (SchNetPack's ``GaussianRBF``), so that each
    Gaussian has fallen to e^(−1/2) of its peak at its neighbours' centres. Unlike
    :class:`BesselBasis` it is bounded and smooth at r = 0, so it also suits distances between
    updated positions (EGNN). Exponents are clamped at :data:`GAUSSIAN_MIN_EXPONENT`.

    Args:
        stop: μ of the last Gaussian, Å (usually the cutoff).
        num_radial: number of basis functions, at least 2.
        start: μ of the first Gaussian, Å.

    Shapes: (E,) distances, Å → (E, num_radial).
    """

    def __init__(self, stop: float, num_radial: int, start: float = 0.0) -> None:
        super().__init__()
        if num_radial < 2 or not stop > start:
            raise ValueError(f"need num_radial ≥ 2 and stop > start, got {num_radial}, [{start}, {stop}]")
        self.register_buffer("centres", torch.linspace(start, stop, num_radial))
        width = (stop - start) / (num_radial - 1)
        self.coefficient = -0.5 / width**2
        self.min_exponent = GAUSSIAN_MIN_EXPONENT

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        offsets = distances.unsqueeze(-1) - self.centres  # (E, num_radial)
        exponents = (self.coefficient * offsets * offsets).clamp(min=self.min_exponent)
        return torch.exp(exponents)
