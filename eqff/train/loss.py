"""The training loss: weighted mean squared errors of per-atom energy and force components."""

import torch
from torch import nn

from eqff.data import keys


class EnergyForceLoss(nn.Module):
    """``energy_weight * MSE(ΔE / n_atoms) + forces_weight * MSE(ΔF)``.

    The energy term is per atom ((eV/atom)²), so molecules of different size weigh alike; the
    force term averages over all components ((eV/Å)²). Differences are taken in the labels'
    dtype (float64), so large total energies lose no precision in the subtraction.

    Args:
        energy_weight, forces_weight: non-negative weights.

    Shapes: predictions ``energy`` (B,), ``forces`` (n, 3); the batch graph holds the labels
    under the same keys and ``batch`` (n,).
    """

    def __init__(self, energy_weight: float, forces_weight: float) -> None:
        super().__init__()
        self.energy_weight = energy_weight
        self.forces_weight = forces_weight

    def forward(self, predicted: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (weighted sum), ``energy`` and ``forces`` (the unweighted MSEs), all scalars."""
        target_energy = batch[keys.ENERGY]  # (B,)
        num_atoms = torch.bincount(batch[keys.BATCH], minlength=target_energy.shape[0])  # (B,)
        energy_error = (predicted[keys.ENERGY].to(target_energy.dtype) - target_energy) / num_atoms
        target_forces = batch[keys.FORCES]  # (n, 3)
        forces_error = predicted[keys.FORCES].to(target_forces.dtype) - target_forces
        energy_mse = energy_error.square().mean()
        forces_mse = forces_error.square().mean()
        loss = self.energy_weight * energy_mse + self.forces_weight * forces_mse
        return {"loss": loss, "energy": energy_mse, "forces": forces_mse}
