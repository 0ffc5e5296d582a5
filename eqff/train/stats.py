"""Energy offsets and scale from training data, written into the model before training.

A fresh model then predicts per-atom energies ``scale * x + offset[element]`` with x of order
one, so it starts near the data (see :class:`eqff.nn.species.PerElementScaleShift`).
"""

import numpy as np
import torch

from eqff.data.frames import Frame


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
    index = {z: i for i, z in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))  # (frames, elements)
    for row, frame in enumerate(frames):
        for z, count in zip(*np.unique(frame.atomic_numbers, return_counts=True)):
            counts[row, index[int(z)]] = count
    energies = np.array([frame.energy for frame in frames])  # (frames,)
    offsets, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    forces = np.concatenate([frame.forces.ravel() for frame in frames])
    scale = float(np.sqrt(np.mean(forces**2)))
    if not scale > 0:
        raise ValueError("all training forces are zero; cannot set an energy scale")
    return torch.as_tensor(offsets, dtype=torch.float64), scale
