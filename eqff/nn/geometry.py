"""Edge geometry computed in torch from positions, so that forces flow by autograd."""

import torch

from eqff.data import keys


def edge_vectors(graph: dict[str, torch.Tensor]) -> torch.Tensor:
    """(E, 3) vectors from atom i to the (image of) atom j, Å.

    ``positions[j] - positions[i] + cell_shifts @ cell``; the shift term is added only when the
    graph holds ``cell_shifts`` (periodic structures).
    """
    positions = graph[keys.POSITIONS]
    centre, neighbour = graph[keys.EDGE_INDEX][0], graph[keys.EDGE_INDEX][1]
    vectors = positions.index_select(0, neighbour) - positions.index_select(0, centre)
    if keys.CELL_SHIFTS in graph:
        cell_per_edge = graph[keys.CELL][graph[keys.BATCH][centre]]  # (E, 3, 3)
        vectors = vectors + torch.einsum("ek,ekd->ed", graph[keys.CELL_SHIFTS], cell_per_edge)
    return vectors
