"""DimeNet++: directional message passing (Gasteiger, Giri, Margraf, Günnemann, "Fast and
Uncertainty-Aware Directional Message Passing for Non-Equilibrium Molecules", 2020; DimeNet:
Gasteiger, Groß, Günnemann, ICLR 2020).

The messages live on the directed edges: m (E, F), one per edge e = j → i (eqff's edge (i, j),
centre i, neighbour j; see :mod:`eqff.nn.triplets`). The embedding block builds them from the
two atoms' element embeddings and the edge's radial basis. Each interaction block updates the
message of j → i from the messages of the edges k → j that reach it (the triplets k → j → i),
each weighted by the radial basis of its length d_kj and by the 2D spherical basis of d_kj and
the angle at j between j → i and j → k (:class:`eqff.nn.spherical.SphericalBasis`: spherical
Bessel functions of d_kj times Y_l^0 of the angle). DimeNet++'s changes to DimeNet make this
step cheap: the messages are down-projected to ``int_emb_size`` before the sum over the
triplets, the spherical basis is projected through a ``basis_emb_size`` bottleneck (in place of
DimeNet's bilinear layer), and the sum is up-projected back to F. Residual layers follow, before
and after the skip connection. An
output block after the embedding and after every interaction block sums its edges' messages,
each times a projection of its radial basis, to the centre atom and maps that sum to an energy
through a ``out_emb_channels``-wide MLP; the per-atom sum over the output blocks, scaled and
shifted per element, is the atomic energy.

Shapes: atoms n, edges E, triplets T (every edge pair k → j → i, k ≠ i), D the most edges of
one atom, widths F (``hidden_channels``), I (``int_emb_size``), B (``basis_emb_size``), F_out
(``out_emb_channels``), N radial functions and L orders of the spherical basis.

Smoothness at the cutoff: the message of an edge does not vanish at the cutoff (its layers have
biases), but every path by which it reaches an energy passes a factor that does: the output
blocks weight it by a linear map of its radial basis (no bias), and a triplet that reads it as
input edge k → j multiplies it by the radial basis of d_kj before a down-projection without bias
and SiLU(0) = 0, and by the spherical basis of d_kj. Both bases carry the envelope u, which
vanishes with its first two derivatives at r_c, so energies and forces are continuous as a pair
crosses the cutoff.

The triplet indices are built and cached on the whole edge list and restricted to the pairs
within the cutoff at each call, as for GemNet-T (:meth:`DimeNetPlusPlus.prepare_graph`,
:meth:`eqff.nn.triplets.TripletIndexCache.graph_with_triplets`); ``forward`` calls it unless the
graph already holds them, and :func:`eqff.nn.forces.compiled_energy_forces` calls it before the
compiled forward.

Faithful to the reference implementation (the TensorFlow DimeNet++ of the DimeNet repository,
layer by layer, with its GlorotOrthogonal initialisation and SiLU, its "swish"), except:

- the Bessel frequencies nπ/r_c are fixed, not trainable (:class:`eqff.nn.radial.BesselBasis`,
  as for GemNet-T);
- both bases are eqff's shared ones times constants that give DimeNet's values exactly: its
  radial basis u(d) sin(nπ d/r_c) / (d/r_c), and its spherical basis
  sqrt(2) / |j_(l+1)(z_ln)| j_l(z_ln d/r_c) u(d) / (d/r_c) Y_l^0(θ);
- θ is the angle at atom j between j → i and j → k (:class:`eqff.nn.spherical.TripletAngularBasis`),
  where the reference takes the angle between i → j and j → k, its supplement: Y_l^0 of the two
  differ by the sign (−1)^l, which the first linear layer on the basis absorbs;
- the last layer of each output block starts GlorotOrthogonal, as the reference's configs
  choose for energies ("output_init"), not zero (its code default);
- the element embedding has a row per element the model knows rather than 95;
- reorderings that give the same functions with less work:

  - the triplet sum is one batched matrix product per block over the atoms, in a per-atom
    layout of the edges, with the first projection of the spherical basis (L·N → B) applied to
    its radial part per edge rather than to the basis per triplet: no (T, I) or (T, L·N) tensor
    is formed (:class:`InteractionBlock`); that projection is one matrix product for every block
    (their weights are blocks of rows of one layer, :attr:`DimeNetPlusPlus.sbf_down`);
  - the output blocks are evaluated together, as batched matrix products over the blocks
    (:class:`OutputBlocks`);
  - the two dense layers of each interaction block that read the incoming messages (the
    reference's dense_ji and dense_kj) are one matrix product;
  - the embedding block's dense layer on [h_i, h_j, rbf] applies its atom parts to the n atoms
    before gathering them to the E edges (E / n times fewer multiplications).

``envelope_exponent`` follows DimeNet's convention: its envelope u(x) = 1 + a x^p + b x^(p+1)
+ c x^(p+2) has p = envelope_exponent + 1 (the paper's p = 6 for the default 5), so it is eqff's
:class:`~eqff.nn.radial.PolynomialEnvelope` of exponent ``envelope_exponent + 1``.
"""

import math

import torch
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import TripletEnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.radial import BesselBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum
from eqff.nn.spherical import SphericalBasis
from eqff.nn.triplets import neighbourhood_slots

GLOROT_ORTHOGONAL_SCALE = 2.0
"""DimeNet's GlorotOrthogonal initialiser: an orthogonal matrix rescaled to variance scale / (fan_in + fan_out)."""


def glorot_orthogonal_(weight: torch.Tensor, scale: float = GLOROT_ORTHOGONAL_SCALE) -> torch.Tensor:
    """DimeNet's initialisation, in place: a random (semi-)orthogonal 2-D ``weight`` rescaled to
    variance ``scale / (fan_in + fan_out)``; returns ``weight``."""
    with torch.no_grad():
        nn.init.orthogonal_(weight)
        weight.mul_(torch.sqrt(scale / ((weight.shape[0] + weight.shape[1]) * weight.var())))
    return weight


def dense(
    width_in: int, width_out: int, bias: bool = True, activation: bool = True, layers: int = 1
) -> nn.Module:
    """DimeNet's dense layer: linear (GlorotOrthogonal weights, zero bias if ``bias``), then SiLU
    if ``activation``.

    ``layers`` > 1 fuses that many layers of the same input into one matrix product: the
    output is their outputs side by side (split it with ``chunk(layers, -1)``), and each has its
    own block of ``width_out`` rows of the weight, initialised as a layer of its own.

    Shapes: (..., width_in) → (..., layers · width_out).
    """
    linear = nn.Linear(width_in, layers * width_out, bias=bias)
    for block in linear.weight.data.split(width_out):
        glorot_orthogonal_(block)
    if bias:
        nn.init.zeros_(linear.bias)
    return nn.Sequential(linear, nn.SiLU()) if activation else linear


class ResidualLayer(nn.Module):
    """x + dense(dense(x)), both dense layers with bias and SiLU. Shapes: (..., F) → (..., F)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(dense(width, width), dense(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def residual_stack(width: int, depth: int) -> nn.Sequential:
    """``depth`` residual layers in a row (the identity for depth 0). Shapes: (..., F) → (..., F)."""
    return nn.Sequential(*[ResidualLayer(width) for _ in range(depth)])


class EmbeddingBlock(nn.Module):
    """The first messages: m_ji = SiLU(W [h_i, h_j, SiLU(W_rbf rbf_ji + b_rbf)] + b), h the
    element embeddings (initialised uniform in ±√3, unit variance).

    The linear map of the concatenation is the sum of those of its three parts, so the parts of
    h_i and h_j are applied to the n atoms (one matrix product for both) and then gathered to the
    E edges.

    Shapes: species (n,), rbf (E, N), edge_index (2, E) → (E, F).
    """

    def __init__(self, num_elements: int, num_radial: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.embedding = nn.Embedding(num_elements, width)
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3.0), math.sqrt(3.0))
        self.rbf = dense(num_radial, width)
        self.linear = dense(3 * width, width, activation=False)  # columns: [h_i, h_j, rbf]
        self.activation = nn.SiLU()

    def forward(self, species: torch.Tensor, rbf: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.embedding(species)  # (n, F)
        weight, width = self.linear.weight, self.width
        atom_weights = torch.cat([weight[:, :width], weight[:, width : 2 * width]])  # (2F, F): h_i's rows, h_j's rows
        centre_part, neighbour_part = nn.functional.linear(h, atom_weights).chunk(2, dim=-1)  # (n, F) each
        edge_part = nn.functional.linear(self.rbf(rbf), weight[:, 2 * width :], self.linear.bias)  # (E, F)
        combined = centre_part.index_select(0, edge_index[0]) + neighbour_part.index_select(0, edge_index[1])
        return self.activation(combined + edge_part)  # (E, F)


class InteractionBlock(nn.Module):
    """DimeNet++'s interaction block: the directional message update through the triplets.

    For the output edge j → i and its triplets' input edges k → j:

        x_kj = SiLU(W_down (SiLU(W_kj m_kj + b_kj) ⊙ W_rbf2 W_rbf1 rbf_kj))              (E, I)
        t_ji = SiLU(W_up Σ_k (W_sbf2 W_sbf1 sbf_kj,ji) ⊙ x_kj)                           (E, F)
        m_ji ← after_skip(m_ji + SiLU(W (before_skip(SiLU(W_ji m_ji + b_ji) + t_ji)) + b))

    The projections of the bases and the down- and up-projections have no bias.

    The triplet sum, as one matrix product per atom. The spherical basis factorises,
    sbf_kj,ji[l, n] = R_kj[l, n] Y_l(θ_kji), into a radial part of the input edge alone and an
    angular part, so

        Σ_k (W_sbf2 W_sbf1 sbf_kj,ji) ⊙ x_kj = Σ_k Σ_l Y_l(θ_kji) Q_kj[l],
        Q_kj[l] = (W_sbf2 P_kj[l]) ⊙ x_kj,    P_kj[l, b] = Σ_n W_sbf1[b, l, n] R_kj[l, n],

    with Q and P per edge; :class:`DimeNetPlusPlus` computes P (``radial_projected``) for all
    blocks at once. The edges j → k and j → i (the reverse of the output edge) of a triplet
    both belong to atom j, so in a zero-padded per-atom layout of the edges, (n, D, ...)
    (:func:`eqff.nn.triplets.neighbourhood_slots`), the angular parts of atom j's triplets form
    a (D, D·L) matrix: rows the slot of j → i, columns the slot of j → k times the order l, zero
    where there is no triplet. The sums of all the output edges that end at j are that matrix
    times atom j's Q, (D·L, I): one batched matrix product over the atoms, and no (T, I)
    tensor is formed.

    Shapes: m (E, F), rbf (E, N), radial_projected (n·D, L, B) (P in the per-atom layout, zero
    in its padding), angular (n, D, D·L), position (E,) (each edge's row of the per-atom
    layout), output_row (E,) (the row of each edge's reverse) → (E, F).
    """

    def __init__(
        self,
        width: int,
        int_width: int,
        basis_width: int,
        num_radial: int,
        num_before_skip: int,
        num_after_skip: int,
    ) -> None:
        super().__init__()
        self.ji_and_kj = dense(width, width, layers=2)  # the reference's dense_ji and dense_kj
        self.rbf_down = dense(num_radial, basis_width, bias=False, activation=False)
        self.rbf_up = dense(basis_width, width, bias=False, activation=False)
        self.sbf_up = dense(basis_width, int_width, bias=False, activation=False)
        self.down_projection = dense(width, int_width, bias=False)
        self.up_projection = dense(int_width, width, bias=False)
        self.before_skip = residual_stack(width, num_before_skip)
        self.final_before_skip = dense(width, width)
        self.after_skip = residual_stack(width, num_after_skip)

    def forward(
        self,
        m: torch.Tensor,
        rbf: torch.Tensor,
        radial_projected: torch.Tensor,
        angular: torch.Tensor,
        position: torch.Tensor,
        output_row: torch.Tensor,
    ) -> torch.Tensor:
        num_atoms = angular.shape[0]
        x_ji, x_kj = self.ji_and_kj(m).chunk(2, dim=-1)  # (E, F) each
        x_kj = self.down_projection(x_kj * self.rbf_up(self.rbf_down(rbf)))  # (E, I)
        x_padded = x_kj.new_zeros(radial_projected.shape[0], x_kj.shape[1]).index_copy_(0, position, x_kj)  # (n·D, I)
        per_edge = self.sbf_up(radial_projected) * x_padded.unsqueeze(1)  # (n·D, L, I): Q, zero in the padding
        sums = torch.bmm(angular, per_edge.view(num_atoms, -1, per_edge.shape[2]))  # (n, D, I)
        sums = sums.flatten(0, 1).index_select(0, output_row)  # (E, I)
        x = self.final_before_skip(self.before_skip(x_ji + self.up_projection(sums)))  # (E, F)
        return self.after_skip(m + x)  # (E, F)


def stacked_weights(*shape: int) -> nn.Parameter:
    """A parameter of (..., width_in, width_out) matrices, each initialised GlorotOrthogonal on
    its own, for batched products x @ W (:func:`torch.bmm`)."""
    weights = torch.empty(shape)
    for matrix in weights.view(-1, shape[-2], shape[-1]):
        glorot_orthogonal_(matrix)
    return nn.Parameter(weights)


class OutputBlocks(nn.Module):
    """The model's output blocks, one after the embedding and one after each interaction block,
    evaluated together: the sum over blocks b of the per-atom energies

        P_b,i = W_b,E SiLU(… SiLU(W_b,1 W_b,up Σ_j (W_b,rbf rbf_ji) ⊙ m^b_ji + c_b,1) …),

    the reference's output block: the sum over the atom's edges of the messages after block b,
    each times a projection of its radial basis, an up-projection to F_out (no bias),
    ``num_layers`` dense layers (bias, SiLU) and a linear map to one number (no bias).

    The blocks have their own weights, but their atom-level layers act on the same few atoms, so
    they are applied as batched matrix products over the blocks (block b's weights are slice
    [b] of stacked parameters), and their radial projections are one fused :func:`dense`: the
    same functions as separate blocks with one operation per layer rather than one per block,
    whose fixed cost is most of what the n-row products of a molecule take.

    Shapes: messages (E, num_outputs·F) (the messages after each block, side by side),
    rbf (E, N), centre (E,), num_atoms n → (n,).
    """

    def __init__(self, num_outputs: int, width: int, out_width: int, num_radial: int, num_layers: int) -> None:
        super().__init__()
        self.num_outputs = num_outputs
        self.width = width
        self.num_layers = num_layers
        self.rbf = dense(num_radial, width, bias=False, activation=False, layers=num_outputs)
        self.up_projection = stacked_weights(num_outputs, width, out_width)
        self.weights = stacked_weights(num_layers, num_outputs, out_width, out_width)
        self.biases = nn.Parameter(torch.zeros(num_layers, num_outputs, 1, out_width))
        self.energy = stacked_weights(num_outputs, out_width, 1)
        self.activation = nn.SiLU()

    def forward(
        self, messages: torch.Tensor, rbf: torch.Tensor, centre: torch.Tensor, num_atoms: int
    ) -> torch.Tensor:
        x = scatter_sum(self.rbf(rbf) * messages, centre, num_atoms)  # (n, num_outputs·F)
        x = x.view(num_atoms, self.num_outputs, self.width).transpose(0, 1)  # (num_outputs, n, F)
        x = torch.bmm(x, self.up_projection)  # (num_outputs, n, F_out)
        for layer in range(self.num_layers):
            x = self.activation(torch.baddbmm(self.biases[layer], x, self.weights[layer]))  # (num_outputs, n, F_out)
        return torch.bmm(x, self.energy).sum(0).squeeze(-1)  # (n,)


class DimeNetPlusPlus(TripletEnergyModel):
    """DimeNet++ energy model (forces by autograd through :mod:`eqff.nn.forces`).

    The defaults are eqff's DimeNet++ size, that of its configs: the paper's hyperparameters
    (those of its QM9 and MD17 models) except, as for eqff's GemNet-T, 3 blocks rather than 4 and
    half the widths: 64 for the messages (paper 128), 32 in the triplet step (paper 64), 128 in
    the output MLPs (paper 256); the basis bottleneck stays 8. On a 2-core CPU the paper's size
    cost about 1.5 GemNet-T calls on aspirin, this one less than one (``eqff bench``;
    training/README.md, "DimeNet++'s size").

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å.
        hidden_channels: F, width of the messages.
        num_blocks: number of interaction blocks (there is one more output block).
        int_emb_size: I, width of the down-projected messages in the triplet step.
        basis_emb_size: B, width of the bottleneck of the bases' projections.
        out_emb_channels: F_out, width of the output blocks' MLPs.
        num_spherical: L, number of orders l of the spherical basis.
        num_radial: N, number of radial basis functions (and per order in the spherical basis).
        envelope_exponent: DimeNet's envelope exponent (see the module docstring: p = this + 1).
        num_before_skip: residual layers before each interaction block's skip connection.
        num_after_skip: residual layers after it.
        num_output_layers: dense layers of each output block's MLP.

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E) of a full neighbour list, batch (n,), cell (B, 3, 3), optional
    cell_shifts (E, 3)) and returns ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        hidden_channels: int = 64,
        num_blocks: int = 3,
        int_emb_size: int = 32,
        basis_emb_size: int = 8,
        out_emb_channels: int = 128,
        num_spherical: int = 7,
        num_radial: int = 6,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self.radial_basis = BesselBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent + 1)
        self.spherical_basis = SphericalBasis(cutoff, num_spherical, num_radial, envelope_exponent + 1)
        # DimeNet's values of the two bases are eqff's times these (module docstring): the radial
        # basis times r_c sqrt(r_c / 2), the spherical basis' radial part times r_c^(5/2) / d.
        self.rbf_scale = cutoff * math.sqrt(cutoff / 2.0)
        self.sbf_scale = cutoff**2.5
        self.embedding = EmbeddingBlock(len(elements), num_radial, hidden_channels)
        # The first projection of the spherical basis, L·N → B, of every block: block b's weights
        # are rows b·B … (b + 1)·B − 1.
        self.sbf_down = dense(
            num_spherical * num_radial, basis_emb_size, bias=False, activation=False, layers=num_blocks
        )
        self.interactions = nn.ModuleList(
            InteractionBlock(hidden_channels, int_emb_size, basis_emb_size, num_radial, num_before_skip, num_after_skip)
            for _ in range(num_blocks)
        )
        self.outputs = OutputBlocks(num_blocks + 1, hidden_channels, out_emb_channels, num_radial, num_output_layers)

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if keys.TRIPLET_INPUT_EDGES not in graph:
            graph = self.prepare_graph(graph)
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        num_atoms = species.shape[0]
        edge_index = graph[keys.EDGE_INDEX]
        centre = edge_index[0]
        input_edges, output_edges = graph[keys.TRIPLET_INPUT_EDGES], graph[keys.TRIPLET_OUTPUT_EDGES]
        width = graph[keys.TRIPLET_WIDTH].shape[0] + 1  # D, the most edges of one atom (neighbourhood_slots)

        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        rbf = self.radial_basis(distances) * (self.rbf_scale * self.envelope(distances)).unsqueeze(-1)  # (E, N)
        radial, angular = self.spherical_basis(vectors, distances, input_edges, output_edges)  # (E, L, N), (T, L)
        radial = radial * (self.sbf_scale / distances)[:, None, None]  # (E, L, N)
        # The per-atom layout of the triplets (InteractionBlock): edge e is row position[e] of
        # (n·D, ...); the angular basis of triplet k → j → i sits in the row of j → i, the reverse
        # of its output edge, and the column of j → k, its input edge.
        slot = neighbourhood_slots(centre, num_atoms)  # (E,)
        position = centre * width + slot  # (E,)
        output_row = position.index_select(0, graph[keys.REVERSE_EDGES])  # (E,)
        triplet_position = output_row.index_select(0, output_edges) * width + slot.index_select(0, input_edges)  # (T,)
        padded = angular.new_zeros(num_atoms * width * width, angular.shape[1])  # (n·D·D, L)
        angular = padded.index_copy_(0, triplet_position, angular).view(num_atoms, width, -1)  # (n, D, D·L)

        sbf_down = self.sbf_down.weight.unflatten(1, radial.shape[1:])  # (num_blocks·B, L, N)
        radial_projected = torch.einsum("eln,bln->elb", radial, sbf_down)  # (E, L, num_blocks·B)
        padded = radial_projected.new_zeros(num_atoms * width, radial_projected.shape[1], radial_projected.shape[2])
        radial_projected = padded.index_copy_(0, position, radial_projected)  # (n·D, L, num_blocks·B)
        radial_projected = radial_projected.chunk(self.num_blocks, dim=-1)  # (n·D, L, B) each

        m = self.embedding(species, rbf, edge_index)  # (E, F)
        messages = [m]
        for block, interaction in enumerate(self.interactions):
            m = interaction(m, rbf, radial_projected[block], angular, position, output_row)  # (E, F)
            messages.append(m)

        outputs = self.outputs(torch.cat(messages, dim=1), rbf, centre, num_atoms)  # (n,)
        return self.energies(outputs, species, graph)
