"""PaiNN: polarizable atom interaction neural network (Schütt, Unke, Gastegger, ICML 2021).

Each atom carries scalar features s (n, F) and vector features v (n, 3, F). Interactions
alternate a message block (continuous filters of distance, and the unit edge direction) with
an update block (mixing scalars and vector norms). The energy is a sum of invariant per-atom
terms read out from s; forces come from :mod:`eqff.nn.forces`.
"""

import torch
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.mlp import mlp
from eqff.nn.radial import BesselBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum

VECTOR_NORM_EPS = 1e-8
"""Added under the square root of ‖v‖ so its gradient is finite at v = 0."""


class PaiNNMessage(nn.Module):
    """Message block: each atom i sums filtered messages from its neighbours j.

    The filters are linear in the radial basis: filter = basis @ filter_weights.T. Each of the
    three F-wide filters is its own matrix product, so that no (E, 3F) tensor is split in the
    forward pass and concatenated again in the backward pass (the cost that dominates large
    systems is memory traffic over edges).

    Shapes: s (n, F), v (n, 3, F) or ``None`` (all zeros, first block), basis (E, R),
    filter_weights (3F, R), unit vectors (E, 3) → updated s (n, F), v (n, 3, F).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.context = mlp([num_features, num_features, 3 * num_features])

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        basis: torch.Tensor,
        filter_weights: torch.Tensor,
        unit_vectors: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        centre, neighbour = edge_index[0], edge_index[1]
        to_s, to_v, to_direction = self.context(s).split(self.num_features, dim=-1)  # 3 × (n, F)
        w_s, w_v, w_direction = filter_weights.split(self.num_features, dim=0)  # 3 × (F, R)
        ds = to_s.index_select(0, neighbour) * (basis @ w_s.T)  # (E, F)
        along_direction = to_direction.index_select(0, neighbour) * (basis @ w_direction.T)  # (E, F)
        if v is None:
            dv = along_direction.unsqueeze(1) * unit_vectors.unsqueeze(2)  # (E, 3, F)
        else:  # one fused multiply-add: a (E, 3, F) temporary fewer, which is most of a call's memory traffic
            from_v = to_v.index_select(0, neighbour) * (basis @ w_v.T)  # (E, F)
            dv = torch.addcmul(
                from_v.unsqueeze(1) * v.index_select(0, neighbour), along_direction.unsqueeze(1), unit_vectors.unsqueeze(2)
            )  # (E, 3, F)
        n = s.shape[0]
        s = s + scatter_sum(ds, centre, n)
        v_sum = scatter_sum(dv, centre, n)  # (n, 3, F)
        return s, v_sum if v is None else v + v_sum


class PaiNNUpdate(nn.Module):
    """Update block: mixes each atom's scalars with the norms and inner products of its vectors.

    Shapes: s (n, F), v (n, 3, F) → s (n, F), v (n, 3, F).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.vector_norm_eps = VECTOR_NORM_EPS
        self.vector_mix = nn.Linear(num_features, 2 * num_features, bias=False)
        self.gates = mlp([2 * num_features, num_features, 3 * num_features])

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_v, w_v = self.vector_mix(v).split(self.num_features, dim=-1)  # 2 × (n, 3, F)
        w_norm = torch.sqrt((w_v * w_v).sum(dim=1) + self.vector_norm_eps)  # (n, F)
        a_vv, a_sv, a_ss = self.gates(torch.cat([s, w_norm], dim=-1)).split(self.num_features, dim=-1)
        v = v + a_vv.unsqueeze(1) * u_v
        s = s + a_sv * (u_v * w_v).sum(dim=1) + a_ss
        return s, v


class PaiNNInteraction(nn.Module):
    """One message block followed by one update block; shapes as in those blocks."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.message = PaiNNMessage(num_features)
        self.update = PaiNNUpdate(num_features)

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        basis: torch.Tensor,
        filter_weights: torch.Tensor,
        unit_vectors: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s, v = self.message(s, v, basis, filter_weights, unit_vectors, edge_index)
        return self.update(s, v)


class PaiNN(EnergyModel):
    """PaiNN energy model.

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å.
        num_features: F, width of scalar and vector features.
        num_interactions: number of message + update blocks.
        num_radial: number of Bessel radial basis functions.
        envelope_exponent: p of the polynomial cutoff envelope.

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E), batch (n,), cell (B, 3, 3), optional cell_shifts (E, 3)) and returns
    ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        num_features: int = 128,
        num_interactions: int = 3,
        num_radial: int = 20,
        envelope_exponent: int = 6,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        self.num_features = num_features
        self.embedding = nn.Embedding(len(elements), num_features)
        self.radial_basis = BesselBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        # The filters of all interactions, linear in the radial basis (applied in forward).
        self.filters = nn.Linear(num_radial, num_interactions * 3 * num_features)
        self.interactions = nn.ModuleList(PaiNNInteraction(num_features) for _ in range(num_interactions))
        self.readout = mlp([num_features, num_features // 2, 1])

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        edge_index = graph[keys.EDGE_INDEX]
        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        unit_vectors = vectors / distances.unsqueeze(-1)  # (E, 3)
        # Filters are (W b + c) u(r) for the Bessel basis b, envelope u and the weights W, c of
        # self.filters, so that they vanish at the cutoff. Computed as [b u, u] @ [W, c].T: the
        # envelope multiplies the narrow basis (E, R) rather than the wide filters (E, L·3F).
        envelope = self.envelope(distances).unsqueeze(-1)  # (E, 1)
        basis = torch.cat([self.radial_basis(distances) * envelope, envelope], dim=-1)  # (E, R + 1)
        weights = torch.cat([self.filters.weight, self.filters.bias.unsqueeze(-1)], dim=-1)  # (L·3F, R + 1)
        all_filter_weights = weights.split(3 * self.num_features, dim=0)  # L × (3F, R + 1)

        s = self.embedding(species)  # (n, F)
        v: torch.Tensor | None = None
        for k, interaction in enumerate(self.interactions):
            s, v = interaction(s, v, basis, all_filter_weights[k], unit_vectors, edge_index)

        return self.energies(self.readout(s).squeeze(-1), species, graph)
