"""Where each architecture sits in the lecture's taxonomy of equivariant message passing.

The lecture asks two questions of a message-passing layer:

1. **Message**: is the message from j to i a *linear convolution*, m_ij = k(x_j − x_i) f_j, a
   kernel of the relative position (through its invariants, or steered by it) applied to the
   sender's features, or a *non-linear* function m_ij = φ(f_i, f_j, a_ij) of both atoms'
   features and the pair's geometry? A node-wise transform of f_j before the kernel, or a
   non-linearity after the sum, leaves a convolution linear: what matters is whether the message
   mixes the receiver's features and the sender's non-linearly.
2. **Features**: do the features live on R³ (invariant scalars per atom), on R³×S² (regular
   representations: a feature per direction, or messages on directed edges with angles between
   them) or in steerable SE(3) representations (irreps of l > 0, spherical or Cartesian)?

Sources, per architecture: SchNet, EGNN, DimeNet++ and TFN as the lecture's table has them.
The others from their papers (cited in each model's module docstring), read against the two
definitions above:

- PaiNN (Schütt et al. 2021, its message block): m_ij = φ(s_j) ⊙ W(r_ij), and for the vectors
  φ_v(s_j) W_v(r_ij) ⊙ v_j + φ_d(s_j) W_d(r_ij) r̂_ij: a radial kernel, and the l = 1 kernel
  r̂_ij, applied to node-wise transforms of the sender's features; the receiver's features do
  not enter, so it is a linear (depthwise) steerable convolution, as SchNet's continuous filter
  is a linear one. Its features, scalars and Cartesian vectors, are steerable of l ≤ 1.
- GemNet-T (Gasteiger et al. 2021): like DimeNet++, non-linear messages on directed edges,
  updated from the edges k → j through the angle ∠ijk: directional, R³×S².
- PONITA (Bekkers et al. 2024): a separable *group convolution* on R³×S², its kernels functions
  of the invariants of the pair of position-orientations only, applied linearly to the sender's
  field; the ConvNeXt MLP acts per atom and orientation after the sum. Linear, on R³×S²
  (regular representations on a sphere grid).
- SEGNN (Brandstetter et al. 2022): steerable MLPs of h_i ‖ h_j ‖ ρ(r_ij), conditioned on
  Y(x̂_ij): non-linear, steerable.
"""

from dataclasses import dataclass

MESSAGE_KINDS = ("linear", "non-linear")
"""The answers to the first question, in the order ``eqff report --taxonomy`` lists them."""
FEATURE_SPACES = ("R³", "R³×S²", "steerable SE(3)")
"""The answers to the second question, invariant to steerable, in the order listed."""


@dataclass(frozen=True)
class Taxonomy:
    """An architecture's answers to the lecture's two questions and what it adds to the ones before."""

    message: str
    """One of :data:`MESSAGE_KINDS`."""
    features: str
    """One of :data:`FEATURE_SPACES`."""
    adds: str
    """One line: what the architecture adds."""


TAXONOMY: dict[str, Taxonomy] = {
    "schnet": Taxonomy("linear", "R³", "continuous-filter convolution of invariant features by filters of distance"),
    "ponita": Taxonomy("linear", "R³×S²", "separable group convolution of fields on a sphere grid per atom"),
    "painn": Taxonomy("linear", "steerable SE(3)", "Cartesian vector features (l ≤ 1), the edge direction as a kernel"),
    "tfn": Taxonomy("linear", "steerable SE(3)", "kernels Y(x̂) R(r) through Clebsch–Gordan products, irreps of any l"),
    "egnn": Taxonomy("non-linear", "R³", "messages of both atoms' features; updated positions read through distances"),
    "dimenet++": Taxonomy("non-linear", "R³×S²", "messages on directed edges, updated through the angles between them"),
    "gemnet-t": Taxonomy("non-linear", "R³×S²", "DimeNet's triplets with bilinear layers and atom and edge embeddings"),
    "segnn": Taxonomy("non-linear", "steerable SE(3)", "steerable MLPs of both atoms' irreps, conditioned on Y(x̂)"),
}  # fmt: skip
"""Architecture name (as in :data:`eqff.models.ARCHITECTURES`) → its taxonomy; every architecture
but ``committee``, which wraps members of one of these. Listed in the report's order."""


def taxonomy_order(architecture: str) -> tuple[int, int, int]:
    """Sort key of ``architecture``: message kind, then feature space, then its place in :data:`TAXONOMY`."""
    entry = TAXONOMY[architecture]
    return MESSAGE_KINDS.index(entry.message), FEATURE_SPACES.index(entry.features), list(TAXONOMY).index(architecture)
