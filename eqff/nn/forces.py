"""The one way eqff gets forces and stress from an energy model: autograd of the energy.

Any model mapping a graph to ``{"energy": (B,), "atomic_energies": (n,)}`` is wrapped here;
forces are −∂E/∂x, so they are conservative by construction. The stress uses a symmetric
strain ε applied to positions and cell: σ = (1/V) ∂E/∂ε (ASE's convention).
"""

import torch
from torch import nn

from eqff.data import keys


def energy_forces_stress(
    model: nn.Module, graph: dict[str, torch.Tensor], compute_stress: bool = False
) -> dict[str, torch.Tensor]:
    """Energy, forces and, optionally, stress of every frame in ``graph``.

    The autograd graph is kept (``create_graph``) only when ``model.training``, so that a loss
    on forces can be back-propagated; at inference it is freed at once. ``graph`` is not
    modified.

    Args:
        model: maps a graph to ``energy`` (B,) in eV.
        graph: eqff graph dict (see :mod:`eqff.data.keys`).
        compute_stress: also return ``stress`` (B, 3, 3), eV/Å³; every frame must be periodic.

    Returns:
        ``energy`` (B,), ``atomic_energies`` (n,), ``forces`` (n, 3) and, if asked, ``stress``.
    """
    graph = dict(graph)
    with torch.enable_grad():
        positions = graph[keys.POSITIONS].detach().requires_grad_(True)
        inputs = [positions]
        if compute_stress:
            cell = graph[keys.CELL]
            strain = torch.zeros_like(cell, requires_grad=True)  # (B, 3, 3)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("ad,ade->ae", positions, symmetric[graph[keys.BATCH]])
            graph[keys.CELL] = cell + torch.bmm(cell, symmetric)
            inputs.append(strain)
        graph[keys.POSITIONS] = positions
        out = model(graph)
        gradients = torch.autograd.grad(out[keys.ENERGY].sum(), inputs, create_graph=model.training)
    result = {
        keys.ENERGY: out[keys.ENERGY],
        keys.ATOMIC_ENERGIES: out[keys.ATOMIC_ENERGIES],
        keys.FORCES: -gradients[0],
    }
    if compute_stress:
        volume = torch.linalg.det(cell).abs()  # (B,)
        result[keys.STRESS] = gradients[1] / volume[:, None, None]
    return result
