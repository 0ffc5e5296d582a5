"""SchNet: continuous-filter convolutional network (Schütt et al., NeurIPS 2017; J. Chem. Phys. 148, 241722, 2018).

Each atom carries invariant features h (n, F), starting from an embedding of its element.
Every interaction adds to them a continuous-filter convolution of the neighbours' features:

    W_ij = u(r_ij) φ_W(g(r_ij))                       filter, (E, F)
    h_i ← h_i + φ_out(Σ_j W_ij ⊙ (A h_j))              interaction, (n, F)

with g a Gaussian radial basis (:class:`~eqff.nn.radial.GaussianBasis`), φ_W the
filter-generating network (dense, shifted softplus, dense), A an atom-wise linear map without
bias, φ_out an atom-wise dense, shifted softplus, dense, and u a smooth envelope. The energy is a
sum of per-atom terms, an atom-wise network (F → F/2 → 1, shifted softplus) of the last h,
scaled and shifted per element; forces follow by autograd (:mod:`eqff.nn.forces`). Distances are
the only geometry the network sees, so the energy is invariant under rotations and reflections.

As in SchNetPack (``schnetpack.representation.SchNet``, the defaults of its rMD17 experiments:
128 features, 6 interactions, 20 Gaussians of width their spacing on [0, 5 Å], cutoff 5 Å), and
unlike the NeurIPS paper's 300 Gaussians on [0, 30 Å] with no cutoff, the filters vanish at a
finite cutoff, so that the cost grows linearly with the number of atoms. Where eqff differs:

- the envelope u is DimeNet's polynomial (:class:`~eqff.nn.radial.PolynomialEnvelope`) rather
  than SchNetPack's cosine cutoff ½(cos(π r / r_c) + 1). Both vanish with their first derivative
  at r_c, so energies and forces are continuous, but the cosine's second derivative does not:
  the force of a pair at r_c − δ is of order δ (and its derivative jumps), the polynomial's of
  order δ², which MD integrators and eqff's cutoff-smoothness check prefer;
- the L filter-generating networks are evaluated together, as batched matrix products
  (:class:`FilterNetworks`): the same maps as L separate networks, in fewer, larger operations.
"""

import math

import torch
from torch import nn
from torch.nn import functional

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.mlp import mlp
from eqff.nn.radial import GaussianBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum


class ShiftedSoftplus(nn.Module):
    """ssp(x) = ln(1 + eˣ) − ln 2, SchNet's activation: smooth, and 0 at x = 0. Shapes: any → same."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = math.log(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.softplus(x) - self.shift


class FilterNetworks(nn.Module):
    """The filter-generating networks of all L interactions, evaluated together.

    W_ij^(k) = u(r_ij) (A_k ssp(B_k g(r_ij) + b_k) + a_k): for each interaction k a dense layer of
    the radial basis, a shifted softplus and a dense layer, times the envelope. The L networks
    are stacked, so that each step is one batched matrix product over all of them rather than L
    (on a molecule, much of the cost of such small products is per operation); each has its own
    weights, initialised as ``nn.Linear`` initialises its own.

    Shapes: basis g (E, R), envelope u (E, 1) → filters (L, E, F).
    """

    def __init__(self, num_interactions: int, num_radial: int, num_features: int) -> None:
        super().__init__()
        self.input_weight = nn.Parameter(torch.empty(num_interactions, num_radial, num_features))
        self.input_bias = nn.Parameter(torch.empty(num_interactions, 1, num_features))
        self.output_weight = nn.Parameter(torch.empty(num_interactions, num_features, num_features))
        self.output_bias = nn.Parameter(torch.empty(num_interactions, 1, num_features))
        self.activation = ShiftedSoftplus()
        for weight, bias in ((self.input_weight, self.input_bias), (self.output_weight, self.output_bias)):
            bound = 1.0 / math.sqrt(weight.shape[1])  # nn.Linear's U(−1/√fan_in, 1/√fan_in)
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, basis: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        stacked_basis = basis.expand(self.input_weight.shape[0], -1, -1)  # (L, E, R), a view
        hidden = self.activation(torch.baddbmm(self.input_bias, stacked_basis, self.input_weight))  # (L, E, F)
        return torch.baddbmm(self.output_bias, hidden, self.output_weight) * envelope  # (L, E, F)


class SchNetInteraction(nn.Module):
    """One interaction: continuous-filter convolution with the given filters, then the atom-wise layers φ_out.

    Shapes: h (n, F), filters W (E, F), edge_index (2, E) → the update of h, (n, F).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.to_filter_space = nn.Linear(num_features, num_features, bias=False)
        self.atom_wise = mlp([num_features, num_features, num_features], activation=ShiftedSoftplus)

    def forward(self, h: torch.Tensor, filters: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        convolved = self.to_filter_space(h).index_select(0, neighbour) * filters  # (E, F)
        return self.atom_wise(scatter_sum(convolved, centre, h.shape[0]))  # (n, F)


class SchNet(EnergyModel):
    """SchNet energy model.

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å; also the centre of the last Gaussian.
        num_features: F, width of the atom features and of the filters.
        num_interactions: L, number of interaction blocks.
        num_radial: number of Gaussians of the radial basis, evenly spaced on [0, r_c].
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
        num_interactions: int = 6,
        num_radial: int = 20,
        envelope_exponent: int = 6,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        if num_interactions < 1:
            raise ValueError(f"num_interactions must be at least 1, got {num_interactions}")
        self.embedding = nn.Embedding(len(elements), num_features)
        self.radial_basis = GaussianBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.filter_networks = FilterNetworks(num_interactions, num_radial, num_features)
        self.interactions = nn.ModuleList(SchNetInteraction(num_features) for _ in range(num_interactions))
        self.readout = mlp([num_features, num_features // 2, 1], activation=ShiftedSoftplus)

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        edge_index = graph[keys.EDGE_INDEX]
        _, distances = self.edge_geometry(graph)  # (E,)
        envelope = self.envelope(distances).unsqueeze(-1)  # (E, 1)
        # unbind, not filters[k]: the backward of each index would fill an (L, E, F) tensor of zeros
        filters = self.filter_networks(self.radial_basis(distances), envelope).unbind(0)  # L × (E, F)

        h = self.embedding(species)  # (n, F)
        for k, interaction in enumerate(self.interactions):
            h = h + interaction(h, filters[k], edge_index)

        return self.energies(self.readout(h).squeeze(-1), species, graph)
