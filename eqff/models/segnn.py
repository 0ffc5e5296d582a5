"""SEGNN: steerable E(3)-equivariant graph neural network (Brandstetter et al., ICLR 2022).

Each atom carries a steerable feature h (n, D) of irreps 0e, 1o, 2e, … (see
:func:`eqff.nn.steerable.balanced_irreps`). Every linear map of the network is a steerable
layer, a tensor product with a geometric *attribute* (:mod:`eqff.nn.steerable`):

- edge attribute a_ij = Y(x̂_ij), the spherical harmonics (l ≤ l_max_attr, parity (−1)^l,
  component normalisation, so Y_0 = 1) of the edge direction i → j;
- node attribute ā_i, the mean of the edge attributes of atom i weighted by the envelope u(r_ij),
  with the atom itself counted once as the attribute 1 (l = 0) and 0 (l > 0):
  ā_i = (e_0 + Σ_j u_ij a_ij) / (1 + Σ_j u_ij). Its l = 0 part is exactly 1, and as u vanishes
  smoothly at the cutoff, so does the contribution of every edge.

One layer, with ρ the Bessel basis of r_ij, ‖ concatenation and φ gated steerable layers:

    m_ij = u(r_ij) R(ρ(r_ij)) ⊙ φ_m2(φ_m1(h_i ‖ h_j ‖ ρ(r_ij); a_ij); a_ij)
    h_i ← h_i + ψ_u2(φ_u1(h_i ‖ Σ_j m_ij / N̄; ā_i); ā_i)

(R is an MLP of the radial basis giving one weight per irrep copy of m, the same for the 2l + 1
components of a copy; ψ_u2 has no gate, N̄ is a fixed typical number of neighbours; the
concatenations are ordered by irrep, :class:`~eqff.nn.steerable.SortedConcatenation`, which makes
the tensor products faster.) The embedding is a steerable layer of the one-hot element
conditioned on ā_i, and the per-atom energy an MLP of the even scalars (0e) of the last h, scaled
and shifted per element.
All geometry is computed from the positions in ``forward``, so that forces follow by autograd
(:mod:`eqff.nn.forces`); the scalars are invariant under rotations and reflections.

Differences from the reference implementation, for a force field:

- the invariant edge input is a Bessel basis of r_ij rather than ‖x_ij‖², and every message and
  node-attribute term is multiplied by a polynomial envelope, so that energies and forces are
  continuous as atoms cross the cutoff (and edges beyond it, from a neighbour-list skin, count
  for nothing);
- every message is multiplied, per irrep copy, by a learnt function R of the distance, as the
  radial filters of PaiNN and NequIP multiply theirs. In the reference the distance enters only
  as an input beside h_i and h_j, so a message can depend on it only through the gates; in short
  ethanol trainings SEGNN learnt markedly faster with R than without;
- node attributes are the envelope-weighted mean above rather than a plain mean whose l = 0
  part is reset to 1 (the plain mean jumps when a neighbour enters);
- messages are summed and divided by the constant N̄; no batch or instance normalisation,
  which would couple the frames of a batch;
- the energy is a sum of per-atom terms (no pooling before the last layers);
- weights keep e3nn's initialisation (N(0, 1) with path normalisation, see
  :class:`~eqff.nn.steerable.SteerableLayer`) rather than the reference's uniform rescaling.

Precision: e3nn computes the Clebsch–Gordan coefficients of a tensor product (buffers, saved
with the weights) in the default dtype when it builds the product. A model built in float32, as
eqff's training builds them, and cast to float64 is therefore equivariant to about 1e-8
(relative) rather than to float64 precision; one built while the default dtype is float64 is
exact in float64. A model loaded from a file (:func:`eqff.model_file.load_model`) gets exact
coefficients in its dtype rather than the file's (:func:`eqff.nn.steerable.exact_wigner_3j`).

TorchScript: e3nn's gate holds activations that only its own compiler can handle, so
:meth:`SEGNN.__prepare_scriptable__` (called by :func:`torch.jit.script`) hands TorchScript a
copy, sharing parameters and buffers, whose gates are compiled with
:func:`e3nn.util.jit.compile`; ``torch.jit.script(model)`` therefore works as for other models.
"""

import copy
import itertools

import torch
from e3nn import o3
from e3nn.util.jit import compile as e3nn_compile
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.mlp import mlp
from eqff.nn.radial import BesselBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum
from eqff.nn.steerable import (
    EVEN_SCALAR,
    GatedSteerableLayer,
    SortedConcatenation,
    SteerableLayer,
    balanced_irreps,
    even_scalar_indices,
    exact_wigner_3j,
    irrep_copy_index,
)

RADIAL_HIDDEN = 64
"""Width of the hidden layer of the MLP R that weights each message by its distance."""


class NodeAttributes(nn.Module):
    """Envelope-weighted mean of each atom's edge attributes, the atom itself counted as e_0.

    ā_i = (e_0 + Σ_j u_ij a_ij) / (1 + Σ_j u_ij), with e_0 the attribute that is 1 at l = 0 and
    0 elsewhere (e3nn's Y_0 = 1 in component normalisation).

    Args:
        irreps_attr: irreps of the attributes (0e first).

    Shapes: edge_attr (E, A), envelope (E,), centre (E,), num_atoms n → (n, A).
    """

    def __init__(self, irreps_attr: o3.Irreps) -> None:
        super().__init__()
        if irreps_attr[0] != (1, EVEN_SCALAR):
            raise ValueError(f"the attribute irreps must start with one 0e, got {irreps_attr}")
        own = torch.zeros(irreps_attr.dim)
        own[0] = 1.0
        self.register_buffer("own", own, persistent=False)  # (A,)

    def forward(
        self, edge_attr: torch.Tensor, envelope: torch.Tensor, centre: torch.Tensor, num_atoms: int
    ) -> torch.Tensor:
        weighted = scatter_sum(edge_attr * envelope.unsqueeze(-1), centre, num_atoms)  # (n, A)
        weight = 1.0 + scatter_sum(envelope, centre, num_atoms)  # (n,)
        return (weighted + self.own) / weight.unsqueeze(-1)  # (n, A)


class SEGNNLayer(nn.Module):
    """One message-passing layer: gated steerable messages weighted by distance, a steerable
    update and a residual.

    Args:
        irreps_hidden: irreps of h (scalars first).
        irreps_attr: irreps of the edge and node attributes.
        num_radial: width of the radial basis ρ.
        average_num_neighbours: N̄, divides the sum of an atom's messages.

    Shapes: h (n, D), edge_attr (E, A), node_attr (n, A), radial (E, num_radial), envelope (E,),
    edge_index (2, E) → (n, D).
    """

    def __init__(
        self, irreps_hidden: o3.Irreps, irreps_attr: o3.Irreps, num_radial: int, average_num_neighbours: float
    ) -> None:
        super().__init__()
        irreps_radial = o3.Irreps([(num_radial, EVEN_SCALAR)])
        self.inverse_neighbours = 1.0 / average_num_neighbours
        self.radial_weights = mlp([num_radial, RADIAL_HIDDEN, irreps_hidden.num_irreps])
        nn.init.ones_(self.radial_weights[-1].bias)  # weights start about 1: messages pass as in the reference
        self.register_buffer("copy_index", irrep_copy_index(irreps_hidden), persistent=False)  # (D,)
        self.message_input = SortedConcatenation([irreps_hidden, irreps_hidden, irreps_radial])
        self.message_1 = GatedSteerableLayer(self.message_input.irreps_out, irreps_attr, irreps_hidden)
        self.message_2 = GatedSteerableLayer(irreps_hidden, irreps_attr, irreps_hidden)
        self.update_input = SortedConcatenation([irreps_hidden, irreps_hidden])
        self.update_1 = GatedSteerableLayer(self.update_input.irreps_out, irreps_attr, irreps_hidden)
        self.update_2 = SteerableLayer(irreps_hidden, irreps_attr, irreps_hidden)

    def forward(
        self,
        h: torch.Tensor,
        edge_attr: torch.Tensor,
        node_attr: torch.Tensor,
        radial: torch.Tensor,
        envelope: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        pair = self.message_input([h.index_select(0, centre), h.index_select(0, neighbour), radial])  # (E, 2D + R)
        weights = self.radial_weights(radial).index_select(1, self.copy_index) * envelope.unsqueeze(-1)  # (E, D)
        message = self.message_2(self.message_1(pair, edge_attr), edge_attr) * weights  # (E, D)
        aggregate = scatter_sum(message, centre, h.shape[0]) * self.inverse_neighbours  # (n, D)
        update = self.update_2(self.update_1(self.update_input([h, aggregate]), node_attr), node_attr)  # (n, D)
        return h + update


class SEGNN(EnergyModel):
    """SEGNN energy model.

    Args:
        elements: atomic numbers the model knows (its one-hot rows, in this order).
        cutoff: radial cutoff r_c, Å.
        num_features: D, the number of components of the hidden features.
        l_max: largest order of the hidden irreps.
        l_max_attr: largest order of the spherical-harmonic edge and node attributes.
        balance: how the hidden irreps share the D components among the orders,
            ``"dimension"`` or ``"multiplicity"`` (see :func:`eqff.nn.steerable.balanced_irreps`).
        num_layers: number of message-passing layers.
        num_radial: number of Bessel radial basis functions in the message input.
        envelope_exponent: p of the polynomial cutoff envelope.
        average_num_neighbours: N̄, the sum of an atom's messages is divided by it; a typical
            number of neighbours within the cutoff (rMD17 at 5 Å: 8 for ethanol, 14.4 for aspirin).

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E), batch (n,), cell (B, 3, 3), optional cell_shifts (E, 3)) and returns
    ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        num_features: int = 128,
        l_max: int = 2,
        l_max_attr: int = 2,
        balance: str = "dimension",
        num_layers: int = 4,
        num_radial: int = 8,
        envelope_exponent: int = 6,
        average_num_neighbours: float = 12.0,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        self.register_load_state_dict_pre_hook(exact_wigner_3j)
        self.hyperparameters["average_num_neighbours"] = float(average_num_neighbours)
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not average_num_neighbours > 0:
            raise ValueError(f"average_num_neighbours must be positive, got {average_num_neighbours}")
        self.num_elements = len(elements)
        irreps_hidden = balanced_irreps(num_features, l_max, balance)
        irreps_attr = o3.Irreps.spherical_harmonics(l_max_attr)
        self.irreps_hidden = irreps_hidden
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_attr, normalize=True, normalization="component")
        self.node_attributes = NodeAttributes(irreps_attr)
        self.radial_basis = BesselBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        irreps_one_hot = o3.Irreps([(len(elements), EVEN_SCALAR)])
        self.embedding = SteerableLayer(irreps_one_hot, irreps_attr, irreps_hidden)
        self.layers = nn.ModuleList(
            SEGNNLayer(irreps_hidden, irreps_attr, num_radial, average_num_neighbours) for _ in range(num_layers)
        )
        scalar_index = even_scalar_indices(irreps_hidden)
        self.register_buffer("scalar_index", scalar_index, persistent=False)  # (S,)
        num_scalars = scalar_index.shape[0]
        self.readout = mlp([num_scalars, num_scalars, 1])

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        num_atoms = species.shape[0]
        edge_index = graph[keys.EDGE_INDEX]
        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        envelope = self.envelope(distances)  # (E,)
        radial = self.radial_basis(distances)  # (E, R)
        edge_attr = self.spherical_harmonics(vectors)  # (E, A)
        node_attr = self.node_attributes(edge_attr, envelope, edge_index[0], num_atoms)  # (n, A)

        one_hot = nn.functional.one_hot(species, self.num_elements).to(vectors.dtype)  # (n, Z)
        h = self.embedding(one_hot, node_attr)  # (n, D)
        for layer in self.layers:
            h = layer(h, edge_attr, node_attr, radial, envelope, edge_index)

        scalars = h.index_select(1, self.scalar_index)  # (n, S)
        return self.energies(self.readout(scalars).squeeze(-1), species, graph)

    def __prepare_scriptable__(self) -> "SEGNN":
        """A copy for TorchScript, sharing parameters and buffers, with e3nn's gates compiled by e3nn."""
        shared = {id(tensor): tensor for tensor in itertools.chain(self.parameters(), self.buffers())}
        prepared = copy.deepcopy(self, shared)
        for module in prepared.modules():
            if isinstance(module, GatedSteerableLayer):
                module.gate = e3nn_compile(module.gate)
        return prepared
