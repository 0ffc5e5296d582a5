"""TFN: tensor field networks (Thomas, Smidt, Kearnes, Yang, Li, Kohlhoff, Riley, 2018), in the
form NequIP (Batzner et al., Nat. Commun. 2022) gave them for interatomic potentials.

Each atom carries a steerable feature h (n, D) of C channels of every irrep l = 0 … l_max with
parity (−1)^l (0e, 1o, 2e, …; e3nn's layout, :mod:`eqff.nn.steerable`). A layer is a steerable
point convolution, whose message from j to i is *linear* in h_j: the Clebsch–Gordan tensor product
of h_j with the spherical harmonics Y(x̂_ij) of the edge direction, one learnt radial weight per
channel and path,

    m_ij = u(r_ij) Σ_paths R_path(r_ij) ⊙ (h_j ⊗ Y(x̂_ij))_path,

with R an MLP of a Bessel basis of r_ij and u the polynomial envelope. Then, on each atom,

    h_i ← σ(W Σ_j m_ij / √N̄ + S_{z_i} h_i + b),

with W a linear map per irrep (TFN's self-interaction), S_{z_i} one per irrep and element of
atom i (NequIP's self-connection), b a bias on the scalars and σ e3nn's gated non-linearity
(SiLU on scalars, every l > 0 irrep multiplied by the sigmoid of its own scalar gate). The
embedding is a learnt vector of C scalars per element; the per-atom energy an MLP of the C
scalars (0e) of the last layer, scaled and shifted per element. All geometry is computed from
the positions in ``forward``, so that forces follow by autograd (:mod:`eqff.nn.forces`); the
energy is invariant under rotations, reflections and translations.

Where eqff follows the paper: the point convolution (filters R(r) Y(r̂) combined with h_j by
Clebsch–Gordan coefficients, a separate radial function per path), the self-interaction and an
equivariant non-linearity, stacked.

Where it differs, following NequIP, and why:

- the paper's radial functions are an MLP of Gaussians with no cutoff; here they are an MLP of 8
  Bessel functions, and every message is multiplied by a polynomial envelope, so that energies
  and forces are continuous as atoms cross the cutoff (NequIP's radial network);
- the paper includes the atom itself in its convolution (at r = 0 only the l = 0 filter
  survives, a linear map of h_i); here that is NequIP's self-connection S_{z_i} h_i, which also
  depends on the element of atom i;
- the paper's non-linearity is a norm non-linearity (a function of ‖h_l‖ scaling h_l); here it
  is the gate, as in NequIP, whose gates are learnt scalars rather than norms;
- features have parity (−1)^l (no pseudotensors such as 1e), which keeps the scalars invariant
  under reflections; messages are summed and divided by √N̄, a fixed typical number of
  neighbours (NequIP's normalisation, with e3nn's unit-variance initialisation);
- the last layer computes only the scalars the readout reads (the l > 0 outputs of a last
  layer in NequIP are discarded): the same energy for fewer tensor-product paths.

Initialisation: e3nn's for the tensor products and linear maps (unit variance, path
normalisation), PyTorch's for the radial MLPs, whose outputs start small: the convolution starts
as a small correction to the self-connection. In 12-epoch runs on 300 rMD17 ethanol frames
(lr 5e-3), radial MLPs whose last bias was zero learnt faster (validation force MAE 56 meV/Å)
than radial weights started about 1, with the sum of messages divided by √N̄ (68 meV/Å; the
messages add up coherently, to features of mean square about 20 by the third layer) or by N̄
(64 meV/Å); one run each (training/README.md).

Precision: e3nn computes the Clebsch–Gordan coefficients of a tensor product in the default
dtype when it builds it, as in :mod:`eqff.models.segnn`: a model built in float32 and cast to
float64 is equivariant to about 1e-8 (relative); one built while the default dtype is float64 is
exact in float64, and so is a model loaded from a file.

TorchScript: :meth:`TFN.__prepare_scriptable__` hands TorchScript a copy whose e3nn gates are
compiled by e3nn (:func:`eqff.nn.steerable.with_compiled_gates`); ``torch.jit.script(model)``
works as for other models.
"""

import itertools
import math

import torch
from e3nn import o3
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.mlp import mlp
from eqff.nn.radial import BesselBasis, PolynomialEnvelope
from eqff.nn.scatter import scatter_sum
from eqff.nn.steerable import (
    EVEN_SCALAR,
    SteerableLayer,
    exact_wigner_3j,
    scalar_gate,
    with_compiled_gates,
)


def convolution_paths(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps
) -> tuple[o3.Irreps, list[tuple[int, int, int, str, bool]]]:
    """The channel-wise ("uvu") tensor-product paths h ⊗ Y → every irrep of ``irreps_target``.

    Each path (an irrep of h, one of Y, and one of their products that ``irreps_target`` holds)
    keeps the channels of its h irrep and has one weight per channel.

    Returns:
        the output irreps of the paths, sorted by irrep (so that the linear map after them has
        one block per irrep once simplified), and e3nn's instructions
        (in1, in2, out, "uvu", weighted) into them.
    """
    outputs: list[tuple[int, o3.Irrep]] = []
    instructions: list[tuple[int, int, int, str, bool]] = []
    for index_in, (mul, ir_in) in enumerate(irreps_in):
        for index_sh, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in irreps_target:
                    instructions.append((index_in, index_sh, len(outputs), "uvu", True))
                    outputs.append((mul, ir_out))
    irreps_paths, permutation, _ = o3.Irreps(outputs).sort()
    return irreps_paths, [(i_in, i_sh, permutation[i_out], mode, w) for i_in, i_sh, i_out, mode, w in instructions]


class TFNLayer(nn.Module):
    """A point convolution, the self-interaction and self-connection, and the gate.

    Args:
        irreps_in: irreps of h.
        irreps_sh: irreps of the edge spherical harmonics.
        irreps_out: irreps of the new h (scalars first).
        num_elements: Z, the width of the one-hot element.
        num_radial: width of the radial basis.
        radial_hidden: width of the two hidden layers of the radial MLP R.
        average_num_neighbours: N̄, the sum of an atom's messages is divided by √N̄.

    Shapes: h (n, irreps_in.dim), one_hot (n, Z), edge_sh (E, irreps_sh.dim) (envelope included),
    radial (E, num_radial), edge_index (2, E) → (n, irreps_out.dim).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_out: o3.Irreps,
        num_elements: int,
        num_radial: int,
        radial_hidden: int,
        average_num_neighbours: float,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        self.gate = scalar_gate(self.irreps_out)
        irreps_paths, instructions = convolution_paths(self.irreps_in, irreps_sh, self.irreps_out)
        self.convolution = o3.TensorProduct(
            self.irreps_in, irreps_sh, irreps_paths, instructions, shared_weights=False, internal_weights=False
        )
        self.radial_weights = mlp([num_radial, radial_hidden, radial_hidden, self.convolution.weight_numel])
        self.message_scale = 1.0 / math.sqrt(average_num_neighbours)
        # The sorted paths have consecutive blocks of the same irrep: simplifying them changes no component.
        self.self_interaction = o3.Linear(irreps_paths.simplify(), self.gate.irreps_in)
        irreps_one_hot = o3.Irreps([(num_elements, EVEN_SCALAR)])
        self.self_connection = SteerableLayer(self.irreps_in, irreps_one_hot, self.gate.irreps_in)

    def forward(
        self,
        h: torch.Tensor,
        one_hot: torch.Tensor,
        edge_sh: torch.Tensor,
        radial: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        weights = self.radial_weights(radial)  # (E, paths × C)
        messages = self.convolution(h.index_select(0, neighbour), edge_sh, weights)  # (E, P)
        aggregate = scatter_sum(messages, centre, h.shape[0]) * self.message_scale  # (n, P)
        return self.gate(self.self_interaction(aggregate) + self.self_connection(h, one_hot))  # (n, D_out)


class TFN(EnergyModel):
    """Tensor field network energy model (see the module docstring).

    The defaults are NequIP's smaller rMD17 settings (32 channels up to l = 2, radial MLP of two
    hidden layers of 64 on 8 Bessel functions, envelope exponent 6, cutoff 5 Å), with 3 layers.

    Args:
        elements: atomic numbers the model knows (its embedding rows, in this order).
        cutoff: radial cutoff r_c, Å.
        num_channels: C, channels of each irrep of h.
        l_max: largest order of the irreps of h and of the spherical harmonics.
        num_layers: number of convolution layers (the last outputs only scalars).
        num_radial: number of Bessel radial basis functions.
        radial_hidden: width of the two hidden layers of each layer's radial MLP.
        envelope_exponent: p of the polynomial cutoff envelope.
        average_num_neighbours: N̄, the sum of an atom's messages is divided by √N̄; a typical
            number of neighbours within the cutoff (rMD17 at 5 Å: 8 for ethanol, 14.4 for aspirin).

    ``forward(graph)`` takes an eqff graph (positions (n, 3), atomic_numbers (n,),
    edge_index (2, E), batch (n,), cell (B, 3, 3), optional cell_shifts (E, 3)) and returns
    ``energy`` (B,) and ``atomic_energies`` (n,) in eV.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        num_channels: int = 32,
        l_max: int = 2,
        num_layers: int = 3,
        num_radial: int = 8,
        radial_hidden: int = 64,
        envelope_exponent: int = 6,
        average_num_neighbours: float = 12.0,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        self.register_load_state_dict_pre_hook(exact_wigner_3j)
        self.hyperparameters["average_num_neighbours"] = float(average_num_neighbours)
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if l_max < 0:
            raise ValueError(f"l_max must be at least 0, got {l_max}")
        if not average_num_neighbours > 0:
            raise ValueError(f"average_num_neighbours must be positive, got {average_num_neighbours}")
        self.num_elements = len(elements)
        irreps_scalars = o3.Irreps([(num_channels, EVEN_SCALAR)])
        self.irreps_hidden = o3.Irreps([(num_channels, o3.Irrep(l, (-1) ** l)) for l in range(l_max + 1)])
        irreps_sh = o3.Irreps.spherical_harmonics(l_max)
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")
        self.radial_basis = BesselBasis(cutoff, num_radial)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.embedding = nn.Embedding(len(elements), num_channels)  # N(0, 1): scalars of unit variance
        irreps = [irreps_scalars] + [self.irreps_hidden] * (num_layers - 1) + [irreps_scalars]
        self.layers = nn.ModuleList(
            TFNLayer(
                irreps_in, irreps_sh, irreps_out, len(elements), num_radial, radial_hidden, average_num_neighbours
            )
            for irreps_in, irreps_out in itertools.pairwise(irreps)
        )
        self.readout = mlp([num_channels, num_channels, 1])

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        edge_index = graph[keys.EDGE_INDEX]
        vectors, distances = self.edge_geometry(graph)  # (E, 3), (E,)
        radial = self.radial_basis(distances)  # (E, R)
        # The product is linear in Y: the envelope on Y is the envelope on every message.
        edge_sh = self.spherical_harmonics(vectors) * self.envelope(distances).unsqueeze(-1)  # (E, (l_max + 1)²)
        one_hot = nn.functional.one_hot(species, self.num_elements).to(vectors.dtype)  # (n, Z)
        h = self.embedding(species)  # (n, C)
        for layer in self.layers:
            h = layer(h, one_hot, edge_sh, radial, edge_index)  # (n, D), (n, C) after the last
        return self.energies(self.readout(h).squeeze(-1), species, graph)

    def __prepare_scriptable__(self) -> "TFN":
        """A copy for TorchScript, sharing parameters and buffers, with e3nn's gates compiled by e3nn."""
        return with_compiled_gates(self)
