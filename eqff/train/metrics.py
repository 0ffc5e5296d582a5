"""Error metrics (MAE, RMSE) shared by the training logs and ``eqff evaluate``.

Errors accumulate as float64 sums (|e|, e², count), which add exactly across batches and
across processes, so the epoch MAE is over all frames or components, not a mean of batch means.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from eqff.data.frames import Frame
from eqff.data.units import KCAL_PER_MOL, energy_unit_factor
from eqff.errors import UnknownElementError, element_names
from eqff.prediction import FRAMES_PER_CALL, predict

MEV = energy_unit_factor("meV")
"""1 meV in eV."""


class ErrorAccumulator:
    """Running sums of absolute and squared errors over every element of the tensors given."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # (3,) float64: Σ|e|, Σe², count

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Add the errors of ``predicted`` vs ``target`` (same shape, any units)."""
        error = predicted.detach().to(torch.float64) - target.detach().to(torch.float64)
        sums = torch.stack([error.abs().sum(), error.square().sum(), error.new_tensor(error.numel())])
        self.sums = sums if self.sums is None else self.sums + sums

    @classmethod
    def total(cls, accumulators: Sequence["ErrorAccumulator"]) -> "ErrorAccumulator":
        """One accumulator holding the errors of all ``accumulators`` (those without errors skipped)."""
        total = cls()
        for accumulator in accumulators:
            if accumulator.sums is not None:
                total.sums = accumulator.sums if total.sums is None else total.sums + accumulator.sums
        return total

    @property
    def count(self) -> int:
        return 0 if self.sums is None else int(self.sums[2])

    @property
    def mae(self) -> float:
        return float(self.sums[0] / self.sums[2])

    @property
    def rmse(self) -> float:
        return float(torch.sqrt(self.sums[1] / self.sums[2]))


def error_report(energy: ErrorAccumulator, forces: ErrorAccumulator) -> dict[str, float | int]:
    """Energy (per frame, accumulated in eV) and force-component (eV/Å) errors in meV and kcal/mol."""
    return {
        "num_frames": energy.count,
        "energy_mae_meV": energy.mae / MEV,
        "energy_rmse_meV": energy.rmse / MEV,
        "energy_mae_kcal_per_mol": energy.mae / KCAL_PER_MOL,
        "energy_rmse_kcal_per_mol": energy.rmse / KCAL_PER_MOL,
        "forces_mae_meV_per_A": forces.mae / MEV,
        "forces_rmse_meV_per_A": forces.rmse / MEV,
        "forces_mae_kcal_per_mol_per_A": forces.mae / KCAL_PER_MOL,
        "forces_rmse_kcal_per_mol_per_A": forces.rmse / KCAL_PER_MOL,
    }


def check_elements(model: nn.Module, frames: list[Frame]) -> None:
    """Raise :class:`UnknownElementError` if the frames hold elements the model does not know."""
    present = {int(z) for frame in frames for z in frame.atomic_numbers}
    unknown = sorted(present - set(model.elements))
    if unknown:
        raise UnknownElementError(
            f"the data contain {element_names(unknown)}, which the model was not trained on "
            f"(it knows {element_names(model.elements)})"
        )


def evaluate_errors(
    model: nn.Module, frames: list[Frame], batch_size: int = FRAMES_PER_CALL, device: str | torch.device = "cpu"
) -> tuple[ErrorAccumulator, ErrorAccumulator]:
    """Energy (per frame, eV) and force-component (eV/Å) errors of ``model`` (in its dtype) on
    labelled ``frames``, predicted in batches by :func:`eqff.prediction.predict` on ``device``."""
    check_elements(model, frames)
    dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
    predictions = predict(model, frames, batch_size, device, dtype)
    energy, forces = ErrorAccumulator(), ErrorAccumulator()
    energy.update(torch.tensor([p.energy for p in predictions], dtype=torch.float64),
                  torch.tensor([f.energy for f in frames], dtype=torch.float64))
    forces.update(
        torch.as_tensor(np.concatenate([p.forces for p in predictions])),
        torch.as_tensor(np.concatenate([f.forces for f in frames])),
    )
    return energy, forces


def evaluate(
    model: nn.Module, frames: list[Frame], batch_size: int = FRAMES_PER_CALL, device: str | torch.device = "cpu"
) -> dict[str, float | int]:
    """Errors of ``model`` (in its dtype) on labelled ``frames``: see :func:`error_report`."""
    return error_report(*evaluate_errors(model, frames, batch_size, device))
