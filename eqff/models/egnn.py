"""EGNN: E(n) equivariant graph neural network (Satorras, Hoogeboom, Welling, ICML 2021).

Each atom carries invariant features h (n, F) and a position x̃ (n, 3), at first its own.
One layer (EGCL), with u the envelope of the true distance r_ij, r̃_ij = ‖x̃_j − x̃_i‖ the
distance of the updated positions, g a Gaussian basis and N a constant:

    m_ij = u(r_ij) φ_e(h_i, h_j, g(r̃_ij))                                  message, (E, F)
    x̃_i ← x̃_i + (1/N) Σ_j (x̃_i − x̃_j) / (r̃_ij + 1) · u(r_ij) φ_x(m_ij)     position, (n, 3)
    h_i ← h_i + φ_h(h_i, (1/N) Σ_j m_ij)                                  features, (n, F)

φ_e, φ_x and φ_h are two-layer SiLU networks as in the paper (φ_e with a SiLU after its last
layer; φ_x ends in one output without bias, initialised small). The energy is a sum of per-atom
terms, an MLP of the last h scaled and shifted per element; forces are the negative gradient of
that energy by autograd (:mod:`eqff.nn.forces`). The updated positions are not forces: they are
internal equivariant vectors, read by later layers only through the invariant distances r̃.
h depends on positions only through distances, so the energy is invariant under rotations,
reflections and translations. eqff updates edge vectors rather than positions,
x̃_j − x̃_i (+ cell shift) ← x̃_j − x̃_i (+ cell shift) + Δx̃_j − Δx̃_i, which is the same for a
molecule and also holds for periodic images (Δx̃ is translation invariant). The last layer
updates no position: no later layer would read it.

Where eqff differs from the paper, for a smooth and size-extensive force field:

- the distance enters φ_e as a Gaussian basis of r̃ (:class:`~eqff.nn.radial.GaussianBasis`)
  rather than the raw ‖x_i − x_j‖², which grows without bound and gives the network one number
  to resolve every length scale with;
- the envelope u of the true distance multiplies every message and every position weight, so
  that a pair's every contribution (to h, and to the positions that later distances read) goes
  smoothly to zero as it crosses the cutoff: energies and forces are continuous, and pairs
  beyond the cutoff count for nothing. The paper's graphs are fully connected or fixed;
- sums over neighbours are divided by a constant N (as EDM, Hoogeboom et al. 2022, does) rather
  than by the number of neighbours (the paper's C = 1/(M − 1), its code's mean): a neighbour
  count jumps by one as a pair crosses the cutoff, whatever the envelope, and a mean would make
  an atom's energy depend on how crowded its surroundings are rather than add up over them;
- the relative position in the position update is divided by r̃ + 1 (EDM's ``coord2diff`` with
  ``norm_constant`` 1), so that each neighbour moves an atom by at most |u φ_x| / N and far pairs
  do not dominate. The paper code's ``normalize`` option divides by a detached r̃ instead; here
  nothing is detached, since forces differentiate the energy through every position update;
- the energy is a sum of per-atom terms (the paper's QM9 model pools before its last MLP,
  which is not size-extensive), and elements enter through an embedding (the same as a linear
  map of the one-hot vector).
"""

import torch
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.mlp import mlp
from eqff.nn.radial import GaussianBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum

POSITION_WEIGHT_GAIN = 0.001
"""Xavier gain of φ_x's last layer, the paper's: the position updates start near zero."""


class EGNNConvolution(nn.Module):
    """Messages m_ij and the feature update h_i ← h_i + φ_h(h_i, Σ_j m_ij / N).

    φ_e's first layer is applied to atoms before it is gathered to edges: W [h_i, h_j, g] =
    W_i h_i + W_j h_j + W_g g, the same map as the dense layer on the (E, 2F + R) concatenation
    at the cost of (n, F) products instead of (E, F) ones.

    Shapes: h (n, F), basis (E, R), envelope (E, 1), edge_index (2, E) → h (n, F) and the
    messages m (E, F).
    """

    def __init__(self, num_features: int, num_radial: int, neighbour_normalization: float) -> None:
        super().__init__()
        self.num_features = num_features
        self.inverse_normalization = 1.0 / neighbour_normalization
        self.message_atoms = nn.Linear(num_features, 2 * num_features)
        self.message_radial = nn.Linear(num_radial, num_features, bias=False)
        self.message_output = nn.Sequential(nn.SiLU(), nn.Linear(num_features, num_features), nn.SiLU())
        self.update = mlp([2 * num_features, num_features, num_features])

    def forward(
        self, h: torch.Tensor, basis: torch.Tensor, envelope: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        centre, neighbour = edge_index[0], edge_index[1]
        from_centre, from_neighbour = self.message_atoms(h).split(self.num_features, dim=-1)  # 2 × (n, F)
        hidden = from_centre.index_select(0, centre) + from_neighbour.index_select(0, neighbour)  # (E, F)
        hidden = torch.addmm(hidden, basis, self.message_radial.weight.t())  # + W_g g, (E, F)
        messages = self.message_output(hidden) * envelope  # (E, F)
        aggregated = scatter_sum(messages, centre, h.shape[0]) * self.inverse_normalization  # (n, F)
        return h + self.update(torch.cat([h, aggregated], dim=-1)), messages


class PositionUpdate(nn.Module):
    """The position update, applied to edge vectors: Δx̃_i = −(1/N) Σ_j v_ij / (r̃_ij + 1) · u_ij φ_x(m_ij).

    (v_ij = x̃_j − x̃_i, eqff's edge direction, so −v_ij is the paper's x̃_i − x̃_j.)

    Shapes: messages (E, F), vectors v (E, 3) and their lengths r̃ (E,), envelope u (E, 1),
    edge_index (2, E) → updated vectors v_ij + Δx̃_j − Δx̃_i, (E, 3).
    """

    def __init__(self, num_features: int, neighbour_normalization: float) -> None:
        super().__init__()
        self.inverse_normalization = 1.0 / neighbour_normalization
        self.weights = nn.Sequential(
            nn.Linear(num_features, num_features), nn.SiLU(), nn.Linear(num_features, 1, bias=False)
        )
        nn.init.xavier_uniform_(self.weights[-1].weight, gain=POSITION_WEIGHT_GAIN)

    def forward(
        self,
        messages: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        envelope: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
    ) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        weights = self.weights(messages) * envelope / (lengths.unsqueeze(-1) + 1.0)  # (E, 1)
        shifts = scatter_sum(vectors * weights, centre, num_atoms) * -self.inverse_normalization  # Δx̃ (n, 3)
        return vectors + shifts.index_select(0, neighbour) - shifts.index_select(0, centre)


class EGNNLayer(nn.Module):
    """An EGCL that updates positions too: messages and features, then the edge vectors.

    Shapes: h (n, F), vectors (E, 3), their lengths (E,) and basis (E, R), envelope (E, 1),
    edge_index (2, E) → h (n, F), vectors (E, 3).
    """

    def __init__(self, num_features: int, num_radial: int, neighbour_normalization: float) -> None:
        super().__init__()
        self.convolution = EGNNConvolution(num_features, num_radial, neighbour_normalization)
        self.position_update = PositionUpdate(num_features, neighbour_normalization)

    def forward(
        self,
        h: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        basis: torch.Tensor,
        envelope: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, messages = self.convolution(h, basis, envelope, edge_index)
        return h, self.position_update(messages, vectors, lengths, envelope, edge_index, h.shape[0])


class EGNN(EnergyModel):
    """EGNN energy model.

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å; also the centre of the last Gaussian.
        num_features: F, width of the atom features and messages.
        num_layers: L, number of EGCLs (the first L − 1 update positions). 3 by default, the
            receptive field of eqff's PaiNN (3 × 5 Å): the paper's 4 (N-body; QM9: 7) cost 0.85
            to 0.95 of PaiNN's call on aspirin, 3 about 0.7.
        num_radial: number of Gaussians of the radial basis, evenly spaced on [0, r_c].
        envelope_exponent: p of the polynomial cutoff envelope.
        neighbour_normalization: N, the constant that sums over neighbours are divided by (about
            the typical number of neighbours within the cutoff; aspirin has 14 within 5 Å).

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E), batch (n,), cell (B, 3, 3), optional cell_shifts (E, 3)) and returns
    ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        num_features: int = 128,
        num_layers: int = 3,
        num_radial: int = 20,
        envelope_exponent: int = 6,
        neighbour_normalization: float = 10.0,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        if num_layers < 1 or not neighbour_normalization > 0:
            raise ValueError(f"need num_layers ≥ 1 and neighbour_normalization > 0, got {num_layers}, "
                             f"{neighbour_normalization}")  # fmt: skip
        self.embedding = nn.Embedding(len(elements), num_features)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.radial_basis = GaussianBasis(cutoff, num_radial)
        self.layers = nn.ModuleList(
            EGNNLayer(num_features, num_radial, neighbour_normalization) for _ in range(num_layers - 1)
        )
        self.last_layer = EGNNConvolution(num_features, num_radial, neighbour_normalization)
        self.readout = mlp([num_features, num_features // 2, 1])

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        edge_index = graph[keys.EDGE_INDEX]
        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        envelope = self.envelope(distances).unsqueeze(-1)  # (E, 1), of the true distances in every layer

        h = self.embedding(species)  # (n, F)
        lengths = distances  # r̃ (E,)
        for layer in self.layers:
            h, vectors = layer(h, vectors, lengths, self.radial_basis(lengths), envelope, edge_index)
            lengths = torch.linalg.vector_norm(vectors, dim=-1)
        h, _ = self.last_layer(h, self.radial_basis(lengths), envelope, edge_index)

        return self.energies(self.readout(h).squeeze(-1), species, graph)
