"""Random rotations of training frames, for models whose invariance is only approximate.

PONITA's energy is rotation invariant only up to the discretisation of its sphere grid
(:mod:`eqff.models.ponita`); showing it every training frame in a fresh random orientation, as its
reference training does, keeps the kernels from learning the orientation of the data set. Models
that are exactly invariant (PaiNN, GemNet-T, SEGNN) gain nothing from it.
"""

import torch

from eqff.data import keys


def rotate_frames(graph: dict[str, torch.Tensor], rotations: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of ``graph`` with frame b rotated by ``rotations[b]`` (B, 3, 3), e.g. from
    :func:`eqff.rotations.random_rotations`.

    Positions, forces (n, 3) and cell vectors (B, 3, 3) turn with their frame; ``cell_shifts``
    count cell vectors and stay; energies are invariant. Each tensor keeps its dtype.
    """
    rotated = dict(graph)
    rotations = rotations.to(graph[keys.BATCH].device)
    per_atom = rotations[graph[keys.BATCH]]  # (n, 3, 3)
    for key in (keys.POSITIONS, keys.FORCES):
        if key in graph:
            vectors = graph[key]
            rotated[key] = torch.einsum("nij,nj->ni", per_atom.to(vectors), vectors)
    cell = graph[keys.CELL]
    rotated[keys.CELL] = torch.einsum("bij,bkj->bki", rotations.to(cell), cell)
    return rotated
