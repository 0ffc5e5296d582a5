"""Steerable MLP blocks of SEGNN (Brandstetter et al., ICLR 2022) on e3nn.

A *steerable feature* is a vector of irreps in e3nn's layout: ``irreps.dim`` components, one
block of ``mul × (2l + 1)`` per entry of an :class:`e3nn.o3.Irreps`. A *steerable layer* maps a
feature x to ``W(x ⊗ a) + b``: the Clebsch–Gordan tensor product of x with a steerable
*attribute* a (the spherical harmonics of an edge, or their mean over an atom's edges), with
learned weights W per path (:class:`e3nn.o3.FullyConnectedTensorProduct`). With a = Y(x̂) the
layer is a linear map whose kernel depends on a direction: SEGNN's generalisation of a linear
layer. The bias b acts on even scalars (0e) only; a bias on any other irrep would break
equivariance. A gated layer follows this with e3nn's gate (:class:`e3nn.nn.Gate`).

The gate alone (:func:`scalar_gate`) and the TorchScript preparation of a model holding gates
(:func:`with_compiled_gates`) serve other e3nn models too (TFN, :mod:`eqff.models.tfn`).

All irreps logic is e3nn's (:mod:`e3nn.o3`); nothing here parses an irreps string.
"""

import copy
import itertools
from typing import Literal, TypeVar

import torch
from e3nn import o3
from e3nn.nn import Gate
from e3nn.util.jit import compile as e3nn_compile
from torch import nn

EVEN_SCALAR = o3.Irrep(0, 1)
"""0e: the irrep of invariant scalars, the only one that may carry a bias."""


def exact_wigner_3j(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_) -> None:
    """A ``load_state_dict`` pre-hook for models holding e3nn tensor products: load their Wigner
    3j symbols (the Clebsch–Gordan coefficients) exact in the model's dtype, not as saved.

    e3nn stores each product's symbols as buffers (``…._w3j_l1_l2_l3``), rounded to the dtype the
    model was built in, so a model trained in float32 saves them rounded to float32, and a model
    loaded from it in float64 would be equivariant only to about 1e-8. Replacing them by
    :func:`e3nn.o3.wigner_3j` in the model's dtype makes it equivariant to float64 precision; in
    float32 they are the numbers saved.
    """
    for name, buffer in module.named_buffers():
        key = prefix + name
        if "_w3j_" in name.rsplit(".", 1)[-1] and key in state_dict:
            l1, l2, l3 = (int(l) for l in name.rsplit("_w3j_", 1)[1].split("_"))
            state_dict[key] = o3.wigner_3j(l1, l2, l3, dtype=buffer.dtype, device=buffer.device)


def balanced_irreps(
    num_features: int, l_max: int, balance: Literal["dimension", "multiplicity"] = "dimension"
) -> o3.Irreps:
    """Hidden irreps of exactly ``num_features`` components with every l = 0 … l_max, parity (−1)^l.

    The parities are those of the spherical harmonics (0e, 1o, 2e, …), so that features built
    from harmonics of edge vectors stay true tensors and the scalars (0e) invariant under
    reflections.

    Args:
        num_features: the feature budget D, the total number of components.
        l_max: the largest order l.
        balance: ``"dimension"`` gives each order about D / (l_max + 1) components (SEGNN's
            balanced irreps: multiplicities fall as 1 / (2l + 1)); ``"multiplicity"`` gives every
            order the same number of copies, D // (l_max + 1)². The components left over become
            extra scalars.

    Returns:
        irreps ordered by l (scalars first), of dimension ``num_features``.

    Raises:
        ValueError: if ``balance`` is unknown, ``l_max`` is negative, or the budget is too small
        to give every order at least one copy.
    """
    if l_max < 0:
        raise ValueError(f"l_max must be at least 0, got {l_max}")
    orders = [o3.Irrep(l, (-1) ** l) for l in range(l_max + 1)]
    if balance == "dimension":
        multiplicities = [num_features // ((l_max + 1) * ir.dim) for ir in orders]
    elif balance == "multiplicity":
        multiplicities = [num_features // (l_max + 1) ** 2] * (l_max + 1)
    else:
        raise ValueError(f"balance must be 'dimension' or 'multiplicity', got {balance!r}")
    if min(multiplicities) < 1:
        raise ValueError(f"{num_features} features are too few for one copy of each order up to l_max={l_max}")
    multiplicities[0] += num_features - sum(mul * ir.dim for mul, ir in zip(multiplicities, orders))
    return o3.Irreps(list(zip(multiplicities, orders)))


def even_scalar_indices(irreps: o3.Irreps) -> torch.Tensor:
    """(S,) int64: the components of a feature of ``irreps`` that are even scalars (0e), in order."""
    indices = [
        torch.arange(components.start, components.stop)
        for (_, ir), components in zip(irreps, irreps.slices())
        if ir == EVEN_SCALAR
    ]
    return torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)


def irrep_copy_index(irreps: o3.Irreps) -> torch.Tensor:
    """(D,) int64: for each component of a feature of ``irreps``, the irrep copy it belongs to
    (0 … ``irreps.num_irreps`` − 1, in order). Indexing a (N, irreps.num_irreps) tensor of
    invariant weights with it gives one weight per component, the same for the 2l + 1 components
    of a copy: multiplying a feature by that is equivariant."""
    copy_dims = torch.tensor([ir.dim for mul, ir in irreps for _ in range(mul)], dtype=torch.long)  # (num_irreps,)
    return torch.arange(irreps.num_irreps).repeat_interleave(copy_dims)


class SortedConcatenation(nn.Module):
    """Concatenates steerable features and orders the components by irrep (0e, 0o, 1o, 1e, …).

    A tensor product of the result has one path per pair of distinct irreps rather than one per
    pair of input blocks: the same map, but fewer and larger products (for SEGNN's message input
    h_i ‖ h_j ‖ ρ about 1.6 times faster than the unsorted concatenation).

    Args:
        irreps: the irreps of each input, in the order they are passed.

    Attributes:
        irreps_out: the sorted and simplified irreps of the result.

    Shapes: list of (N, irreps[k].dim) → (N, Σ_k irreps[k].dim).
    """

    def __init__(self, irreps: list[o3.Irreps]) -> None:
        super().__init__()
        joined = sum((o3.Irreps(part) for part in irreps), o3.Irreps())
        ordered = joined.sort()  # ordered.inv[k]: the block of ``joined`` that comes k-th
        blocks = joined.slices()
        pieces = [torch.arange(blocks[k].start, blocks[k].stop) for k in ordered.inv]
        order = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)  # (D,)
        self.register_buffer("order", order, persistent=False)
        self.irreps_out = ordered.irreps.simplify()

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(features, dim=-1).index_select(-1, self.order)  # (N, D)


class SteerableLayer(nn.Module):
    """A tensor-product layer conditioned on a steerable attribute: y = W(x ⊗ a) + b.

    Initialisation: e3nn draws every weight from N(0, 1) and divides each output path by the
    square root of its number of inputs (``path_normalization="element"``, ``"component"``
    irreps), so inputs whose components have unit mean square give outputs of unit mean square;
    the biases start at zero.

    Args:
        irreps_in: irreps of the feature x.
        irreps_attr: irreps of the attribute a.
        irreps_out: irreps of the output y; its 0e blocks get a bias.

    Shapes: x (N, irreps_in.dim), attr (N, irreps_attr.dim) → (N, irreps_out.dim).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_attr: o3.Irreps, irreps_out: o3.Irreps) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_attr = o3.Irreps(irreps_attr)
        self.irreps_out = o3.Irreps(irreps_out)
        self.tensor_product = o3.FullyConnectedTensorProduct(self.irreps_in, self.irreps_attr, self.irreps_out)
        bias_index = even_scalar_indices(self.irreps_out)
        self.register_buffer("bias_index", bias_index, persistent=False)  # (S,)
        self.bias = nn.Parameter(torch.zeros(bias_index.shape[0]))

    def forward(self, x: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        y = self.tensor_product(x, attr)  # (N, D_out)
        return y.index_add(1, self.bias_index, self.bias.expand(y.shape[0], -1))  # (N, D_out)


class GatedSteerableLayer(nn.Module):
    """A steerable layer followed by e3nn's gated non-linearity: y = Gate(W(x ⊗ a) + b).

    The tensor product outputs the scalars of ``irreps_out``, one extra 0e *gate* per
    non-scalar irrep, and the non-scalar irreps. The gate applies SiLU to even scalars (tanh to
    odd ones, to keep their parity) and multiplies every non-scalar irrep by the sigmoid of its
    gate; e3nn normalises each activation to keep a unit second moment.

    Args:
        irreps_in: irreps of the feature x.
        irreps_attr: irreps of the attribute a.
        irreps_out: irreps of the output y; its scalars must come before its other irreps (as
            in :func:`balanced_irreps`), the layout of e3nn's gate output.

    Shapes: x (N, irreps_in.dim), attr (N, irreps_attr.dim) → (N, irreps_out.dim).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_attr: o3.Irreps, irreps_out: o3.Irreps) -> None:
        super().__init__()
        irreps_out = o3.Irreps(irreps_out)
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps([(gated.num_irreps, EVEN_SCALAR)] if gated.num_irreps > 0 else [])
        scalar_activations = [nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = Gate(scalars, scalar_activations, gates, [torch.sigmoid] * len(gates), gated)
        if self.gate.irreps_out != irreps_out:
            raise ValueError(f"irreps_out must list its scalars first, got {irreps_out}")
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_attr = o3.Irreps(irreps_attr)
        self.irreps_out = irreps_out
        self.layer = SteerableLayer(self.irreps_in, self.irreps_attr, self.gate.irreps_in)

    def forward(self, x: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        return self.gate(self.layer(x, attr))  # (N, D_out)


def scalar_gate(irreps_out: o3.Irreps) -> Gate:
    """e3nn's gated non-linearity whose output is ``irreps_out``, as in :class:`GatedSteerableLayer`.

    SiLU on the even scalars, tanh on the odd ones (to keep their parity), and every non-scalar
    irrep multiplied by the sigmoid of its own 0e gate. The gate's ``irreps_in`` is the scalars,
    then one 0e gate per non-scalar irrep, then the non-scalar irreps: the layer before it
    outputs that.

    Raises:
        ValueError: if ``irreps_out`` does not list its scalars first.
    """
    irreps_out = o3.Irreps(irreps_out)
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps([(gated.num_irreps, EVEN_SCALAR)] if gated.num_irreps > 0 else [])
    scalar_activations = [nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
    gate = Gate(scalars, scalar_activations, gates, [torch.sigmoid] * len(gates), gated)
    if gate.irreps_out != irreps_out:
        raise ValueError(f"irreps_out must list its scalars first, got {irreps_out}")
    return gate


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def with_compiled_gates(model: ModuleT) -> ModuleT:
    """A copy of ``model`` for TorchScript, sharing its parameters and buffers, in which every
    e3nn :class:`~e3nn.nn.Gate` is compiled by :func:`e3nn.util.jit.compile`.

    e3nn's gate holds activations that only e3nn's compiler can script; a model's
    ``__prepare_scriptable__`` returns this copy, so that ``torch.jit.script(model)`` works and
    the eager model keeps its eager gates.
    """
    shared = {id(tensor): tensor for tensor in itertools.chain(model.parameters(), model.buffers())}
    prepared = copy.deepcopy(model, shared)
    for module in list(prepared.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Gate):
                setattr(module, name, e3nn_compile(child))
    return prepared
