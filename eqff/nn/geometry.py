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


def within_cutoff(graph: dict[str, torch.Tensor], cutoff: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A copy of ``graph`` without its pairs at or beyond ``cutoff``, and the mask of the pairs kept.

    A Verlet neighbour list (:class:`eqff.neighbours.NeighbourListCache`, or an MD engine's) holds
    the pairs within ``cutoff + skin`` of the positions at its last build, so that it stays valid
    for many steps. Every eqff model's envelope is zero beyond its cutoff, so the extra pairs change
    no energy or force; dropping them saves their cost.

    Args:
        graph: eqff graph dict (:mod:`eqff.data.keys`) with E pairs.
        cutoff: Å.

    Returns:
        the graph with ``edge_index`` (and ``cell_shifts``) restricted to the kept pairs, in their
        order, and ``keep``, (E,) bool.
    """
    with torch.no_grad():
        keep = torch.linalg.vector_norm(edge_vectors(graph), dim=-1) < cutoff  # (E,)
    restricted = dict(graph)
    restricted[keys.EDGE_INDEX] = graph[keys.EDGE_INDEX][:, keep]
    if keys.CELL_SHIFTS in graph:
        restricted[keys.CELL_SHIFTS] = graph[keys.CELL_SHIFTS][keep]
    return restricted, keep
