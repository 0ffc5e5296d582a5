"""The frame every eqff energy model shares, so that a model file holds only what makes it that model.

An energy model maps an eqff graph (:mod:`eqff.data.keys`) to per-frame and per-atom energies.
Every architecture starts the same way (element indices, edge vectors and lengths computed from
the positions, so that forces follow by autograd) and ends the same way (its per-atom outputs
scaled and shifted per element, then summed per frame). :class:`EnergyModel` holds those two
ends; a subclass builds its layers in ``__init__`` and writes a ``forward`` that reads

    species = self.species(graph[keys.ATOMIC_NUMBERS])       # (n,)
    vectors, distances = self.edge_geometry(graph)           # (E, 3), (E,)
    ...                                                      # the architecture: outputs (n,)
    return self.energies(outputs, species, graph)            # energy (B,), atomic_energies (n,)
"""

import torch
from torch import nn

from eqff.data import keys
from eqff.nn.geometry import edge_vectors
from eqff.nn.species import PerElementScaleShift, SpeciesIndex, sum_per_frame
from eqff.nn.triplets import TripletIndexCache


class EnergyModel(nn.Module):
    """Base of every eqff architecture: the element index, edge geometry and per-element energies.

    Args:
        elements: atomic numbers the model knows (the order of its per-element parameters).
        cutoff: radial cutoff r_c, Å; pairs beyond it never reach ``forward``
            (:func:`eqff.nn.forces.graph_for_model`).

    Attributes:
        species: :class:`~eqff.nn.species.SpeciesIndex`, atomic numbers → indices (refuses unknown
            elements).
        scale_shift: :class:`~eqff.nn.species.PerElementScaleShift`, fitted by training.
        hyperparameters: set by each subclass to its constructor's arguments
            (:func:`eqff.models.hyperparameters.constructor_arguments`), for its model file.
    """

    __jit_ignored_attributes__ = ["hyperparameters"]

    def __init__(self, elements: list[int], cutoff: float) -> None:
        super().__init__()
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.species = SpeciesIndex(elements)
        self.scale_shift = PerElementScaleShift(len(elements))

    def edge_geometry(self, graph: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge vectors x_j − x_i (+ cell shift) (E, 3) and their lengths (E,), Å."""
        vectors = edge_vectors(graph)  # (E, 3)
        return vectors, torch.linalg.vector_norm(vectors, dim=-1)

    def energies(
        self, outputs: torch.Tensor, species: torch.Tensor, graph: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Per-atom network outputs (n,) → ``energy`` (B,) and ``atomic_energies`` (n,), float64 eV."""
        atomic_energies = self.scale_shift(outputs, species)  # (n,)
        energy = sum_per_frame(atomic_energies, graph[keys.BATCH], graph[keys.CELL].shape[0])  # (B,)
        return {keys.ENERGY: energy, keys.ATOMIC_ENERGIES: atomic_energies}


class TripletEnergyModel(EnergyModel):
    """Base of the architectures that pass messages over triplets k → j → i (GemNet-T, DimeNet++).

    :meth:`prepare_graph` adds the triplet indices; :func:`eqff.nn.forces.graph_for_model` calls
    it before ``forward``, which calls it itself for a graph that lacks them.

    Attributes:
        triplets: :class:`~eqff.nn.triplets.TripletIndexCache`, the triplets of the last edge list.
    """

    def __init__(self, elements: list[int], cutoff: float) -> None:
        super().__init__(elements, cutoff)
        self.triplets = TripletIndexCache()

    def prepare_graph(self, graph: dict[str, torch.Tensor], static_shapes: bool = False) -> dict[str, torch.Tensor]:
        """A copy of ``graph`` with its triplet indices
        (:meth:`~eqff.nn.triplets.TripletIndexCache.graph_with_triplets`: built on the whole edge
        list once per neighbour-list rebuild), restricted at each call to the pairs within the
        cutoff unless ``static_shapes`` (:func:`~eqff.nn.forces.graph_for_model`).
        """
        return self.triplets.graph_with_triplets(graph, None if static_shapes else self.cutoff)
