"""GemNet-T: geometric message passing with triplets (Gasteiger, Becker, Günnemann, NeurIPS 2021).

Every directed edge carries an embedding m (E, F_edge) besides the atom embeddings h (n, F_atom).
Each interaction block updates the edge embeddings by a *triplet interaction*: the message of
edge j → i gathers those of the edges k → j, weighted by a radial embedding of the length of
k → j and a spherical basis of the angle ∠ijk and the length of j → i (:mod:`eqff.nn.spherical`),
through GemNet's efficient bilinear layer: down-projection of the input messages, contraction
with the basis, and a bilinear map to the output width, before an up-projection. Atom
embeddings are updated from the sums of their edge embeddings, and edge embeddings from their
two atoms. An output block after the embedding and after every interaction block reads per-atom
energies out of the edge embeddings; their sum, scaled and shifted per element, is the atomic
energy.

Conventions: eqff's edge e = (i, j) (centre i, neighbour j) is GemNet's edge j → i (source j,
target i); sums over edges go to the centre (target) atom. The triplets are built from
``edge_index`` and the cell shifts by :func:`eqff.nn.triplets.triplet_indices`, reused while
the edge list stays the same, as a Verlet list does between its rebuilds
(:class:`eqff.nn.triplets.TripletIndexCache`), and restricted at each call to the pairs within
the cutoff: by :meth:`GemNetT.prepare_graph`, which ``forward`` calls unless the graph already
holds them. Their sizes depend on the data, so
:func:`eqff.nn.forces.compiled_energy_forces` calls it before the compiled forward.

Faithful to the reference implementation except:

- the Bessel radial basis has fixed frequencies nπ/r_c (:class:`eqff.nn.radial.BesselBasis`)
  rather than trainable ones;
- the gradients of the layers shared by all blocks are not divided by the number of blocks:
  Adam's steps do not depend on a constant gradient scale (only gradient clipping would see it);
- GemNet's scale factors (below) are fitted on the training data of each run, not read from a
  file fitted once on the COLL data set;
- two reorderings of linear maps that give the same functions with less arithmetic: the basis'
  radial and angular parts are multiplied once per call rather than in every block
  (:class:`TripletInteraction`), and the dense layer on the concatenation [h_i, h_j, x] of an
  edge applies its atom parts to the n atoms before they are gathered to the E edges
  (:class:`EdgeEmbedding`).

Scale factors. GemNet multiplies the output of each sum over edges or triplets, and of each
product with a radial embedding, by a factor chosen so that its variance at initialisation equals
that of a reference input; the reference code fits them in a separate script with class-level
queues (global state) and stores them in a JSON file. Here each factor is a buffer of a
:class:`FittedScale` module, 1 until :meth:`GemNetT.fit_scales` is called once on a batch of
training graphs (eqff's training does so before the first step). That method runs one forward
pass in which every factor, in the order the network uses them, is set from the variances of the
batch, so each is fitted with the factors before it already in place, as GemNet's sequential fit
does. The factors are saved with the weights (the state dict), so a model file reproduces its
predictions exactly. Fitting rather than fixing them keeps GemNet's normalisation, which depends
on the numbers of neighbours and triplets of the data.
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

INV_SQRT_2 = 1.0 / math.sqrt(2.0)
"""Residual sums of two terms of unit variance are scaled by this to keep unit variance."""

SILU_SCALE = 1.0 / 0.6
"""GemNet's ScaledSiLU: SiLU times this keeps the variance of standard-normal inputs about 1."""


def he_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """GemNet's initialisation, in place: a random (semi-)orthogonal matrix, standardised to zero
    mean and unit variance per output unit, times 1/sqrt(fan_in). The output units are the first
    axis of a 2-D (out, in) weight and the last axis of a 3-D one; returns ``weight``."""
    with torch.no_grad():
        nn.init.orthogonal_(weight)
        axes = [0, 1] if weight.dim() == 3 else [1]
        fan_in = weight.shape[0] * weight.shape[1] if weight.dim() == 3 else weight.shape[1]
        variance, mean = torch.var_mean(weight, dim=axes, keepdim=True)
        weight.copy_((weight - mean) / torch.sqrt(variance + 1e-6) / math.sqrt(fan_in))
    return weight


class ScaledSiLU(nn.Module):
    """SiLU(x) / 0.6 (GemNet's activation). Shapes: any → same."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = SILU_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) * self.scale


def dense(width_in: int, width_out: int, activation: bool = True, layers: int = 1) -> nn.Module:
    """GemNet's dense layer: linear without bias (He-orthogonal weights), then ScaledSiLU if
    ``activation``. Without biases a zero input gives a zero output, which keeps every
    contribution of an edge proportional to its vanishing envelope at the cutoff.

    ``layers`` > 1 fuses that many layers of the same input into one matrix product: the
    output is their outputs side by side (split it with ``chunk(layers, -1)``), and each has
    its own block of ``width_out`` rows of the weight, initialised as a layer of its own.

    Shapes: (..., width_in) → (..., layers · width_out).
    """
    linear = nn.Linear(width_in, layers * width_out, bias=False)
    for block in linear.weight.data.split(width_out):
        he_orthogonal_(block)
    return nn.Sequential(linear, ScaledSiLU()) if activation else linear


class ResidualLayer(nn.Module):
    """(x + dense(dense(x))) / sqrt(2). Shapes: (..., F) → (..., F)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inv_sqrt_2 = INV_SQRT_2
        self.layers = nn.Sequential(dense(width, width), dense(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.layers(x)) * self.inv_sqrt_2


def residual_stack(width: int, depth: int) -> nn.Sequential:
    """``depth`` residual layers in a row (the identity for depth 0). Shapes: (..., F) → (..., F)."""
    return nn.Sequential(*[ResidualLayer(width) for _ in range(depth)])


class FittedScale(nn.Module):
    """Multiplies by a scale factor, a buffer fitted once so that Var(scale · y) = Var(reference).

    Variances are GemNet's: the mean over features of the variance over rows. In normal use the
    factor is fixed; while ``fitting`` is set (only by :meth:`GemNetT.fit_scales`), each call
    first sets it from the call's own ``y`` and ``reference``.

    Shapes: y (R, F), reference (R', F') → (R, F).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.fitting = False

    def forward(self, y: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if self.fitting:
            variance = y.var(dim=0).mean()
            target = reference.var(dim=0).mean()
            if not bool(torch.isfinite(variance) & torch.isfinite(target) & (variance > 0) & (target > 0)):
                raise ValueError(
                    "cannot fit GemNet's scale factors: a layer's output or input has no variance on this batch; "
                    "fit on several frames with triplets"
                )
            self.scale.copy_(torch.sqrt(target / variance))
        return self.scale * y


class EdgeEmbedding(nn.Module):
    """Edge features from the embeddings of both atoms and an edge input: GemNet's dense layer on
    the concatenation [h_i, h_j, x_ij].

    The linear map of the concatenation is the sum of those of its three parts, so the parts of
    h_i and h_j are applied to the n atoms and then gathered to the E edges, which takes E / n
    times fewer multiplications than gathering first (E / n is the mean number of neighbours).

    Shapes: h (n, F_atom), x (E, F_in), edge_index (2, E) → (E, F_edge).
    """

    def __init__(self, atom_width: int, input_width: int, edge_width: int) -> None:
        super().__init__()
        self.atom_width = atom_width
        self.linear = dense(2 * atom_width + input_width, edge_width, activation=False)  # columns: [h_i, h_j, x]
        self.activation = ScaledSiLU()

    def forward(self, h: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        weight, width = self.linear.weight, self.atom_width
        centre_part = nn.functional.linear(h, weight[:, :width])  # (n, F_edge)
        neighbour_part = nn.functional.linear(h, weight[:, width : 2 * width])  # (n, F_edge)
        edge_part = nn.functional.linear(x, weight[:, 2 * width :])  # (E, F_edge)
        combined = centre_part.index_select(0, edge_index[0]) + neighbour_part.index_select(0, edge_index[1])
        return self.activation(combined + edge_part)  # (E, F_edge)


class TripletInteraction(nn.Module):
    """GemNet's triplet interaction with the efficient bilinear layer.

    For the output edge e = j → i and its triplets' input edges f = k → j, with x_f the edge
    messages after a dense layer (applied by :class:`InteractionBlock`, fused with its skip
    layer), a product with their radial embedding and a down-projection:

        y_e = W · vec_{c, g}( Σ_f B_ef[c] x_f[g] ),    B_ef[c] = Σ_l R_e[c, l] A_ef[l],

    R (E, C, L) the shared projection of the radial part of the spherical basis, A the angular
    part and W the bilinear weights (C·F_trip → F_bil). As in GemNet, the triplets of each output
    edge are laid out in a zero-padded (E, K, ·) block (K the most triplets of one edge), so that
    the sum over f is a batched matrix product. The basis B is the same in every block, so
    :class:`GemNetT` contracts R with A once per call; GemNet's reference contracts both with the
    messages in every block, which gives the same sums with one more product per block.
    GemNet's symmetric messages: the edge e receives up_own(y_e) + up_reverse(y_reverse(e)), so
    that every edge also sees the triplets of its reverse edge, with separate weights (the two
    up-projections are one fused :func:`dense`).

    Shapes: x (E, F_edge), rbf (E, F_rbf), basis (E, C, K) padded, input_edges (T,),
    output_edges (T,), slot (T,) (see :func:`eqff.nn.triplets.triplet_slots`), reverse (E,) →
    (E, F_edge).
    """

    def __init__(
        self, edge_width: int, triplet_width: int, bilinear_width: int, rbf_width: int, cbf_width: int
    ) -> None:
        super().__init__()
        self.inv_sqrt_2 = INV_SQRT_2
        self.rbf_projection = dense(rbf_width, edge_width, activation=False)
        self.scale_rbf = FittedScale()
        self.down_projection = dense(edge_width, triplet_width)
        self.bilinear = dense(cbf_width * triplet_width, bilinear_width, activation=False)
        self.scale_sum = FittedScale()
        self.up_own_and_reverse = dense(bilinear_width, edge_width, layers=2)

    def forward(
        self,
        x: torch.Tensor,
        rbf: torch.Tensor,
        basis: torch.Tensor,
        input_edges: torch.Tensor,
        output_edges: torch.Tensor,
        slot: torch.Tensor,
        reverse: torch.Tensor,
    ) -> torch.Tensor:
        x = self.scale_rbf(x * self.rbf_projection(rbf), x)  # (E, F_edge)
        x_in = self.down_projection(x).index_select(0, input_edges)  # (T, F_trip)
        padded = x_in.new_zeros(x.shape[0], basis.shape[2], x_in.shape[1])  # (E, K, F_trip)
        padded.index_put_((output_edges, slot), x_in)  # input messages of each output edge, in place: no copy
        basis_sum = torch.bmm(basis, padded)  # (E, C, F_trip)
        y = self.bilinear(basis_sum.flatten(1))  # (E, F_bil)
        y = self.scale_sum(y, x_in)
        own, of_reverse = self.up_own_and_reverse(y).chunk(2, dim=-1)  # (E, F_edge) each
        return (own + of_reverse.index_select(0, reverse)) * self.inv_sqrt_2  # (E, F_edge)


class AtomUpdate(nn.Module):
    """Atom features from the sum of their edges' embeddings, each times a radial embedding.

    Shapes: m (E, F_edge), rbf (E, F_rbf), centre (E,), num_atoms n → (n, F_atom).
    """

    def __init__(self, atom_width: int, edge_width: int, rbf_width: int, num_residual: int) -> None:
        super().__init__()
        self.rbf_projection = dense(rbf_width, edge_width, activation=False)
        self.scale_sum = FittedScale()
        self.layers = nn.Sequential(dense(edge_width, atom_width), residual_stack(atom_width, num_residual))

    def forward(self, m: torch.Tensor, rbf: torch.Tensor, centre: torch.Tensor, num_atoms: int) -> torch.Tensor:
        x = scatter_sum(m * self.rbf_projection(rbf), centre, num_atoms)  # (n, F_edge)
        return self.layers(self.scale_sum(x, m))  # (n, F_atom)


class OutputBlock(nn.Module):
    """An atom update followed by a linear map to one energy per atom (no bias: an atom without
    edges contributes nothing).

    Shapes: m (E, F_edge), rbf (E, F_rbf), centre (E,), num_atoms n → (n,).
    """

    def __init__(self, atom_width: int, edge_width: int, rbf_width: int, num_residual: int) -> None:
        super().__init__()
        self.atoms = AtomUpdate(atom_width, edge_width, rbf_width, num_residual)
        self.energy = dense(atom_width, 1, activation=False)

    def forward(self, m: torch.Tensor, rbf: torch.Tensor, centre: torch.Tensor, num_atoms: int) -> torch.Tensor:
        return self.energy(self.atoms(m, rbf, centre, num_atoms)).squeeze(-1)  # (n,)


class InteractionBlock(nn.Module):
    """GemNet-T's interaction block: triplet interaction, edge residual layers, atom update and
    the edge update from both atoms, each residual sum scaled by 1/sqrt(2).

    Shapes: h (n, F_atom), m (E, F_edge), rbf_triplet (E, F_rbf), basis (E, C, K),
    input_edges (T,), output_edges (T,), slot (T,), reverse (E,),
    rbf_atom (E, F_rbf), edge_index (2, E) → h (n, F_atom), m (E, F_edge).
    """

    def __init__(
        self,
        atom_width: int,
        edge_width: int,
        triplet_width: int,
        bilinear_width: int,
        rbf_width: int,
        cbf_width: int,
        num_before_skip: int,
        num_after_skip: int,
        num_concat: int,
        num_atom: int,
    ) -> None:
        super().__init__()
        self.inv_sqrt_2 = INV_SQRT_2
        self.skip_and_triplet_input = dense(edge_width, edge_width, layers=2)  # GemNet's dense_ca and dense_ba
        self.triplet = TripletInteraction(edge_width, triplet_width, bilinear_width, rbf_width, cbf_width)
        self.before_skip = residual_stack(edge_width, num_before_skip)
        self.after_skip = residual_stack(edge_width, num_after_skip)
        self.atom_update = AtomUpdate(atom_width, edge_width, rbf_width, num_atom)
        self.concat = EdgeEmbedding(atom_width, edge_width, edge_width)
        self.after_concat = residual_stack(edge_width, num_concat)

    def forward(
        self,
        h: torch.Tensor,
        m: torch.Tensor,
        rbf_triplet: torch.Tensor,
        basis: torch.Tensor,
        input_edges: torch.Tensor,
        output_edges: torch.Tensor,
        slot: torch.Tensor,
        reverse: torch.Tensor,
        rbf_atom: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        skip, triplet_input = self.skip_and_triplet_input(m).chunk(2, dim=-1)  # (E, F_edge) each
        x3 = self.triplet(triplet_input, rbf_triplet, basis, input_edges, output_edges, slot, reverse)  # (E, F_edge)
        x = self.before_skip((skip + x3) * self.inv_sqrt_2)  # (E, F_edge)
        m = self.after_skip((m + x) * self.inv_sqrt_2)  # (E, F_edge)
        h = (h + self.atom_update(m, rbf_atom, edge_index[0], h.shape[0])) * self.inv_sqrt_2  # (n, F_atom)
        m = (m + self.after_concat(self.concat(h, m, edge_index))) * self.inv_sqrt_2  # (E, F_edge)
        return h, m


class GemNetT(TripletEnergyModel):
    """GemNet-T energy model (triplets only; forces by autograd through :mod:`eqff.nn.forces`).

    The defaults are eqff's GemNet-T size, that of its shipped potentials: GemNet-T's published
    hyperparameters (the reference implementation's MD17 and COLL settings) except 3 blocks
    rather than 4 and half the widths: 64 for atoms and edges (published 128), 32 for the
    triplet and bilinear widths (published 64). On a 2-core CPU the published size cost 5–7
    PaiNN calls on aspirin, this one about 3 (``eqff bench``; training/README.md, "GemNet-T's
    size").

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å.
        num_blocks: number of interaction blocks (there is one more output block).
        emb_size_atom: F_atom, width of atom embeddings.
        emb_size_edge: F_edge, width of edge embeddings.
        emb_size_trip: F_trip, width of the down-projected messages in the triplet interaction.
        emb_size_rbf: width of the (shared) projections of the radial basis.
        emb_size_cbf: C, width of the (shared) projection of the spherical basis' radial part.
        emb_size_bil_trip: F_bil, output width of the bilinear layer.
        num_before_skip: residual layers on the edge update before its skip connection.
        num_after_skip: residual layers after it.
        num_concat: residual layers after the edge update from both atoms.
        num_atom: residual layers in each atom update and output block.
        num_radial: N, number of radial basis functions (Bessel, and per order in the spherical basis).
        num_spherical: L, number of orders l of the spherical basis.
        envelope_exponent: p of the polynomial cutoff envelope.

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E) of a full neighbour list, batch (n,), cell (B, 3, 3), optional
    cell_shifts (E, 3)) and returns ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        num_blocks: int = 3,
        emb_size_atom: int = 64,
        emb_size_edge: int = 64,
        emb_size_trip: int = 32,
        emb_size_rbf: int = 16,
        emb_size_cbf: int = 16,
        emb_size_bil_trip: int = 32,
        num_before_skip: int = 1,
        num_after_skip: int = 1,
        num_concat: int = 1,
        num_atom: int = 2,
        num_radial: int = 6,
        num_spherical: int = 7,
        envelope_exponent: int = 5,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
        self.embedding = nn.Embedding(len(elements), emb_size_atom)
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3.0), math.sqrt(3.0))  # unit variance
        self.radial_basis = BesselBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.spherical_basis = SphericalBasis(cutoff, num_spherical, num_radial, envelope_exponent)
        # Projections of the bases shared by all blocks.
        self.rbf_triplet = dense(num_radial, emb_size_rbf, activation=False)
        self.rbf_atom = dense(num_radial, emb_size_rbf, activation=False)
        self.rbf_output = dense(num_radial, emb_size_rbf, activation=False)
        self.cbf_projection = nn.Parameter(he_orthogonal_(torch.empty(num_spherical, num_radial, emb_size_cbf)))
        self.edge_embedding = EdgeEmbedding(emb_size_atom, num_radial, emb_size_edge)
        widths = (emb_size_atom, emb_size_edge, emb_size_trip, emb_size_bil_trip, emb_size_rbf, emb_size_cbf)
        self.interactions = nn.ModuleList(
            InteractionBlock(*widths, num_before_skip, num_after_skip, num_concat, num_atom) for _ in range(num_blocks)
        )
        self.initial_output = OutputBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom)
        self.outputs = nn.ModuleList(
            OutputBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom) for _ in range(num_blocks)
        )

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if keys.TRIPLET_INPUT_EDGES not in graph:
            graph = self.prepare_graph(graph)
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        num_atoms = species.shape[0]
        edge_index = graph[keys.EDGE_INDEX]
        centre = edge_index[0]
        input_edges, output_edges = graph[keys.TRIPLET_INPUT_EDGES], graph[keys.TRIPLET_OUTPUT_EDGES]
        slot, width, reverse = graph[keys.TRIPLET_SLOTS], graph[keys.TRIPLET_WIDTH].shape[0], graph[keys.REVERSE_EDGES]

        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        rbf = self.radial_basis(distances) * self.envelope(distances).unsqueeze(-1)  # (E, N)
        radial, angular = self.spherical_basis(vectors, distances, input_edges, output_edges)  # (E, L, N), (T, L)
        padded = angular.new_zeros(centre.shape[0], width, angular.shape[1])  # (E, K, L)
        angular = padded.index_put_((output_edges, slot), angular).transpose(1, 2)  # (E, L, K)
        cbf_radial = torch.einsum("eln,lnc->ecl", radial, self.cbf_projection)  # (E, C, L)
        basis = torch.bmm(cbf_radial, angular)  # (E, C, K): the triplet basis of every block
        rbf_triplet = self.rbf_triplet(rbf)  # (E, F_rbf)
        rbf_atom = self.rbf_atom(rbf)  # (E, F_rbf)
        rbf_output = self.rbf_output(rbf)  # (E, F_rbf)

        h = self.embedding(species)  # (n, F_atom)
        m = self.edge_embedding(h, rbf, edge_index)  # (E, F_edge)
        outputs = self.initial_output(m, rbf_output, centre, num_atoms)  # (n,)
        for interaction, output in zip(self.interactions, self.outputs):
            h, m = interaction(
                h, m, rbf_triplet, basis, input_edges, output_edges, slot, reverse, rbf_atom, edge_index
            )
            outputs = outputs + output(m, rbf_output, centre, num_atoms)  # (n,)

        return self.energies(outputs, species, graph)

    def fit_scales(self, graph: dict[str, torch.Tensor]) -> None:
        """Fit every scale factor (see the module docstring) on one batch of training graphs.

        One forward pass without gradients, in which each :class:`FittedScale` sets its factor
        from the batch before applying it, so later factors see the earlier ones fitted. Use a
        batch of several frames (eqff's training uses up to
        :data:`eqff.train.run.SCALE_FIT_FRAMES`); the weights are not changed.
        """
        scales = [module for module in self.modules() if isinstance(module, FittedScale)]
        for scale in scales:
            scale.fitting = True
        try:
            with torch.no_grad():
                self(graph)
        finally:
            for scale in scales:
                scale.fitting = False
