"""The training loss: a weighted sum of a per-atom energy error and a force error."""

from typing import Literal

import torch
from torch import nn

from eqff.data import keys

LossKind = Literal["mse", "l2mae"]


class EnergyForceLoss(nn.Module):
    """``energy_weight * energy_term + forces_weight * forces_term``.

    ``kind="mse"``: the energy term is the mean squared error of the energy per atom
    ((eV/atom)²), the force term that of the force components ((eV/Å)²), as in PaiNN, NequIP
    and MACE. ``kind="l2mae"``: the mean absolute error of the energy per atom (eV/atom) and the
    mean over atoms of the length of the force error vector ‖ΔF_i‖ (eV/Å), as in GemNet's and
    Equiformer's reference trainings; it weighs large errors less than the squares do.

    The energy is per atom, so molecules of different size weigh alike. Differences are taken
    in the labels' dtype (float64), so large total energies lose no precision in the subtraction.

    A committee's predictions (``member_energies`` (K, B) and ``member_forces`` (K, n, 3), see
    :mod:`eqff.models.committee`) are judged member by member: the loss is the mean of the
    members' losses, so that each member learns the labels on its own (a loss on their mean
    would let their errors cancel, and their spread would no longer measure anything).

    Args:
        energy_weight, forces_weight: non-negative weights.
        kind: ``"mse"`` or ``"l2mae"``.

    Shapes: predictions ``energy`` (B,), ``forces`` (n, 3) (or a committee's member predictions);
    the batch graph holds the labels under the same keys and ``batch`` (n,).
    """

    def __init__(self, energy_weight: float, forces_weight: float, kind: LossKind = "mse") -> None:
        super().__init__()
        self.energy_weight = energy_weight
        self.forces_weight = forces_weight
        self.kind = kind

    def forward(self, predicted: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (weighted sum), ``energy`` and ``forces`` (the unweighted terms), all scalars."""
        target_energy = batch[keys.ENERGY]  # (B,)
        num_atoms = torch.bincount(batch[keys.BATCH], minlength=target_energy.shape[0])  # (B,)
        energy = predicted.get(keys.MEMBER_ENERGIES, predicted[keys.ENERGY])  # (B,), or (K, B) for a committee
        forces = predicted.get(keys.MEMBER_FORCES, predicted[keys.FORCES])  # (n, 3), or (K, n, 3)
        energy_error = (energy.to(target_energy.dtype) - target_energy) / num_atoms  # (B,) or (K, B)
        target_forces = batch[keys.FORCES]  # (n, 3)
        forces_error = forces.to(target_forces.dtype) - target_forces  # (n, 3) or (K, n, 3)
        if self.kind == "mse":
            energy_term = energy_error.square().mean()
            forces_term = forces_error.square().mean()
        else:
            energy_term = energy_error.abs().mean()
            forces_term = torch.linalg.vector_norm(forces_error, dim=-1).mean()
        loss = self.energy_weight * energy_term + self.forces_weight * forces_term
        return {"loss": loss, "energy": energy_term, "forces": forces_term}
