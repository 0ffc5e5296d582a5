"""The training loss: a weighted sum of a per-atom energy error, a force error and, optionally,
the net torque of the force error."""

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

    ``torque_weight`` adds a term on the net torque of each isolated frame's force error about
    its centroid, τ = Σ_i (r_i − r̄) × (F_i − F_i^ref) (eV): its mean squared component (eV²) for
    ``mse``, its mean length (eV) for ``l2mae``. An energy that is invariant under rotations
    gives forces with no net torque, and the reference forces of an isolated molecule have
    none, so the term is zero for an exactly invariant model and pushes an approximately
    invariant one (PONITA's grid on the sphere) towards invariance at every geometry it trains
    on. It needs no extra model call. Periodic frames (any pbc set) are left out of it.

    Args:
        energy_weight, forces_weight, torque_weight: non-negative weights.
        kind: ``"mse"`` or ``"l2mae"``.

    Shapes: predictions ``energy`` (B,), ``forces`` (n, 3) (or a committee's member predictions);
    the batch graph holds the labels under the same keys and ``batch`` (n,).
    """

    def __init__(
        self, energy_weight: float, forces_weight: float, kind: LossKind = "mse", torque_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.energy_weight = energy_weight
        self.forces_weight = forces_weight
        self.torque_weight = torque_weight
        self.kind = kind

    def forward(self, predicted: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (weighted sum), ``energy`` and ``forces`` (the unweighted terms), all scalars;
        with a ``torque_weight``, also ``torque``."""
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
        losses = {"loss": loss, "energy": energy_term, "forces": forces_term}
        if self.torque_weight > 0:
            torque = net_torque(forces_error, batch)  # (B', 3) or (K, B', 3)
            torque_term = torque.square().mean() if self.kind == "mse" else torch.linalg.vector_norm(torque, dim=-1).mean()
            losses["torque"] = torque_term
            losses["loss"] = loss + self.torque_weight * torque_term
        return losses


def net_torque(forces: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Net torque Σ_i (r_i − r̄) × F_i of each isolated frame of ``batch`` about its centroid, eV.

    Args:
        forces: (n, 3) eV/Å, or (K, n, 3) for a committee's members.
        batch: a batch graph: ``positions`` (n, 3) Å, ``batch`` (n,), ``pbc`` (B, 3).

    Returns:
        (B', 3) or (K, B', 3), for the B' frames with no periodic direction (zero rows when
        there are none).
    """
    frame = batch[keys.BATCH]  # (n,)
    num_frames = batch[keys.PBC].shape[0]
    positions = batch[keys.POSITIONS].to(forces.dtype)  # (n, 3)
    counts = torch.bincount(frame, minlength=num_frames).clamp(min=1).unsqueeze(-1)  # (B, 1)
    centroids = torch.zeros(num_frames, 3, dtype=forces.dtype, device=forces.device).index_add_(0, frame, positions)
    arms = positions - (centroids / counts).index_select(0, frame)  # (n, 3)
    moments = torch.linalg.cross(arms.expand_as(forces), forces, dim=-1)  # (n, 3) or (K, n, 3)
    torques = moments.new_zeros(*forces.shape[:-2], num_frames, 3).index_add_(-2, frame, moments)  # (B, 3) or (K, B, 3)
    isolated = ~batch[keys.PBC].any(dim=-1)  # (B,)
    return torques[..., isolated, :]
