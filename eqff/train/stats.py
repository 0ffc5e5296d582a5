"""Statistics of the training data written into the model before training.

Energy offsets and scale: a fresh model then predicts per-atom energies
``scale * x + offset[element]`` with x of order one, so it starts near the data (see
:class:`eqff.nn.species.PerElementScaleShift`). Hyperparameters that describe the data, such as
SEGNN's average number of neighbours (:data:`FITTED_HYPERPARAMETERS`), are computed from the
training frames unless the config sets them.
"""

import inspect

import numpy as np
import torch
from torch import nn

from eqff.data import keys
from eqff.data.frames import Frame
from eqff.models import ARCHITECTURES
from eqff.neighbours import neighbour_list


def energy_statistics(frames: list[Frame], elements: list[int]) -> tuple[torch.Tensor, float]:
    """Per-element energy offsets and an energy scale.

    Offsets solve ``counts @ offsets ≈ energies`` by least squares (minimum norm, so a single
    composition, as in MD17, spreads the mean energy over its atoms). The scale is the RMS of
    all force components, a typical energy change per Å of motion.

    Args:
        frames: labelled training frames (energy in eV, forces in eV/Å).
        elements: atomic numbers in the model's index order.

    Returns:
        offsets: (len(elements),) float64, eV per atom of each element.
        scale: eV (numerically the force RMS in eV/Å).
    """
    energies = np.array([frame.energy for frame in frames])  # (frames,)
    offsets, *_ = np.linalg.lstsq(element_counts(frames, elements), energies, rcond=None)
    forces = np.concatenate([frame.forces.ravel() for frame in frames])
    scale = float(np.sqrt(np.mean(forces**2)))
    if not scale > 0:
        raise ValueError("all training forces are zero; cannot set an energy scale")
    return torch.as_tensor(offsets, dtype=torch.float64), scale


def element_counts(frames: list[Frame], elements: list[int]) -> np.ndarray:
    """(frames, elements) numbers of atoms of each element (in ``elements`` order) in each frame."""
    index = {z: i for i, z in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))
    for row, frame in enumerate(frames):
        for z, count in zip(*np.unique(frame.atomic_numbers, return_counts=True)):
            counts[row, index[int(z)]] = count
    return counts


@torch.no_grad()
def refit_energy_offsets(model: nn.Module, graphs: list[dict[str, torch.Tensor]], frames: list[Frame]) -> torch.Tensor:
    """Correct a trained model's per-element energy offsets to new labelled frames, in place.

    The correction solves ``counts @ correction ≈ E_label − E_model`` by least squares (minimum
    norm), so the network is untouched, the offsets of elements absent from ``frames`` stay as
    they were, and on a single composition the mean energy error over ``frames`` becomes zero.
    Fine-tuning starts from this, so that its first steps fit the new frames' forces and energy
    differences rather than a constant energy shift (another reference or another molecule).

    Args:
        model: an eqff model with ``scale_shift`` and ``elements``.
        graphs: one-frame graphs of ``frames`` in the model's dtype (see
            :func:`eqff.train.dataset.frame_to_graph`).
        frames: the labelled frames (energy in eV).

    Returns:
        (len(elements),) float64 correction, eV per atom, already added to the offsets.
    """
    was_training = model.training
    model.eval()
    predicted = np.array([float(model(graph)[keys.ENERGY]) for graph in graphs])  # (frames,) eV
    model.train(was_training)
    residuals = np.array([frame.energy for frame in frames]) - predicted
    correction, *_ = np.linalg.lstsq(element_counts(frames, model.elements), residuals, rcond=None)
    correction = torch.as_tensor(correction, dtype=torch.float64)
    shift = model.scale_shift
    shift.set_statistics(shift.offsets.cpu() + correction, float(shift.scale))
    return correction


FITTED_HYPERPARAMETERS = ("average_num_neighbours",)
"""Constructor arguments computed from the training frames when the config does not set them."""


def fitted_values(hyperparameters: dict) -> dict:
    """The :data:`FITTED_HYPERPARAMETERS` among a model's hyperparameters (a committee's: among
    its members', ``member_hyperparameters``)."""
    hyperparameters = hyperparameters.get("member_hyperparameters") or hyperparameters
    return {key: value for key, value in hyperparameters.items() if key in FITTED_HYPERPARAMETERS}


def average_num_neighbours(frames: list[Frame], cutoff: float) -> float:
    """The mean number of neighbours within ``cutoff`` (Å) per atom over all ``frames``."""
    pairs = sum(neighbour_list(f.positions, f.cell, f.pbc, cutoff)[0].shape[1] for f in frames)
    return pairs / sum(frame.num_atoms for frame in frames)


def fitted_hyperparameters(architecture: str, hyperparameters: dict, frames: list[Frame]) -> dict[str, float]:
    """The :data:`FITTED_HYPERPARAMETERS` that ``architecture`` takes and ``hyperparameters`` lacks,
    computed from ``frames`` (at the configured cutoff, else the architecture's default)."""
    parameters = inspect.signature(ARCHITECTURES[architecture]).parameters
    fitted = {}
    if "average_num_neighbours" in parameters and "average_num_neighbours" not in hyperparameters:
        cutoff = hyperparameters.get("cutoff", parameters["cutoff"].default)
        fitted["average_num_neighbours"] = round(average_num_neighbours(frames, cutoff), 4)
    return fitted
