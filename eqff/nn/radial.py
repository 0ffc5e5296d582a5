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
