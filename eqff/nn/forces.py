"""The one way eqff gets forces and stress from an energy model: autograd of the energy.

Any model mapping a graph to ``{"energy": (B,), "atomic_energies": (n,)}`` is wrapped here;
forces are −∂E/∂x, so they are conservative by construction. The stress uses a symmetric
strain ε applied to positions and cell: σ = (1/V) ∂E/∂ε (ASE's convention).

A committee (a model with ``num_members`` K, :class:`eqff.models.committee.Committee`) is given
one copy of the positions per member, (K, n, 3), and returns its members' energies
(``member_energies`` (K, B)) besides their mean. One backward pass of the members' summed
energies then gives every member's forces at once (each member's energy depends on its own copy
only), ``member_forces`` (K, n, 3), at the cost of the mean force alone; the forces are their
mean, and their spread is returned as ``energy_uncertainty`` and ``forces_uncertainty``
(:func:`committee_spread`).

:func:`compiled_energy_forces` computes the same energy and forces for training as one
``torch.compile``d function (see there).
"""

from collections.abc import Callable

import torch
from torch import nn

from eqff.data import keys
from eqff.errors import ModelCompileError
from eqff.nn.geometry import within_cutoff


def graph_for_model(
    model: nn.Module, graph: dict[str, torch.Tensor], static_shapes: bool = False
) -> dict[str, torch.Tensor]:
    """A copy of ``graph`` as ``model`` reads it, plus what a model with a
    ``prepare_graph(graph, static_shapes) -> graph`` method derives from its pairs (GemNet-T's
    triplets).

    A Verlet list holds pairs beyond the model's cutoff. By default they are dropped
    (:func:`~eqff.nn.geometry.within_cutoff`), which costs least on a CPU. With
    ``static_shapes`` every pair is kept: each model's envelope is exactly zero beyond its cutoff,
    so they change no energy or force (``check_pairs_beyond_the_cutoff_change_nothing`` tests both
    ways), and the graph's shapes then change only when the list is rebuilt. That spares a GPU the
    host synchronisation of a data-dependent selection at every step.
    """
    prepare_graph = getattr(model, "prepare_graph", None)
    if prepare_graph is not None:
        return prepare_graph(graph, static_shapes)
    if static_shapes:
        return dict(graph)
    return within_cutoff(graph, model.cutoff)[0]


def member_positions(model: nn.Module, positions: torch.Tensor) -> torch.Tensor:
    """The positions (n, 3) that ``model`` is differentiated by: themselves, or, for a committee
    of K members, K copies (K, n, 3)."""
    num_members = getattr(model, "num_members", None)
    if num_members is None:
        return positions
    return positions.expand(num_members, -1, -1).clone()  # (K, n, 3)


def differentiated_energy(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The scalar whose gradient gives the forces: the sum of the frames' energies, or, for a
    committee, of every member's (so that the gradient on member k's positions is its own −F_k)."""
    return out[keys.MEMBER_ENERGIES].sum() if keys.MEMBER_ENERGIES in out else out[keys.ENERGY].sum()


def energies_and_forces(out: dict[str, torch.Tensor], gradient: torch.Tensor) -> dict[str, torch.Tensor]:
    """A model's output with the forces from ``gradient``, the gradient of
    :func:`differentiated_energy` on the positions of :func:`member_positions`: ``energy``
    (B,), ``atomic_energies`` (n,) and ``forces`` (n, 3); for a committee also ``member_energies``
    (K, B), ``member_forces`` (K, n, 3), ``energy_uncertainty`` (B,) and ``forces_uncertainty`` (n,)."""
    result = {keys.ENERGY: out[keys.ENERGY], keys.ATOMIC_ENERGIES: out[keys.ATOMIC_ENERGIES]}
    if keys.MEMBER_ENERGIES not in out:
        result[keys.FORCES] = -gradient
        return result
    member_forces = -gradient  # (K, n, 3)
    result[keys.FORCES] = member_forces.mean(dim=0)
    result[keys.MEMBER_ENERGIES] = out[keys.MEMBER_ENERGIES]
    result[keys.MEMBER_FORCES] = member_forces
    result[keys.ENERGY_UNCERTAINTY], result[keys.FORCES_UNCERTAINTY] = committee_spread(
        out[keys.MEMBER_ENERGIES], member_forces
    )
    return result


def committee_spread(member_energies: torch.Tensor, member_forces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spread of a committee's predictions (see :data:`eqff.data.keys.ENERGY_UNCERTAINTY`).

    Args:
        member_energies: (K, B) eV.
        member_forces: (K, n, 3) eV/Å.

    Returns:
        the standard deviation of the members' energies (B,), eV, and per atom the root mean
        square over the members of ‖F_k − F̄‖ (n,), eV/Å (both over K, not K − 1).
    """
    energy_deviations = member_energies - member_energies.mean(dim=0)  # (K, B)
    force_deviations = member_forces - member_forces.mean(dim=0)  # (K, n, 3)
    energy_spread = energy_deviations.square().mean(dim=0).sqrt()  # (B,)
    forces_spread = force_deviations.square().sum(dim=2).mean(dim=0).sqrt()  # (n,)
    return energy_spread, forces_spread


def energy_forces_stress(
    model: nn.Module, graph: dict[str, torch.Tensor], compute_stress: bool = False, static_shapes: bool = False
) -> dict[str, torch.Tensor]:
    """Energy, forces and, optionally, stress of every frame in ``graph``.

    The autograd graph is kept (``create_graph``) only when ``model.training``, so that a loss
    on forces can be back-propagated; at inference it is freed at once. ``graph`` is not
    modified.

    Args:
        model: maps a graph to ``energy`` (B,) in eV.
        graph: eqff graph dict (see :mod:`eqff.data.keys`).
        compute_stress: also return ``stress`` (B, 3, 3), eV/Å³; every frame must be periodic.
        static_shapes: keep the pairs beyond the cutoff (:func:`graph_for_model`).

    Returns:
        ``energy`` (B,), ``atomic_energies`` (n,), ``forces`` (n, 3) and, if asked, ``stress``;
        for a committee, the member predictions and their spread too (see
        :func:`energies_and_forces`) and the mean stress.
    """
    graph = graph_for_model(model, graph, static_shapes)
    with torch.enable_grad():
        positions = member_positions(model, graph[keys.POSITIONS]).detach().requires_grad_(True)  # (n, 3) or (K, n, 3)
        inputs = [positions]
        if compute_stress:
            cell = graph[keys.CELL]
            strain = torch.zeros_like(cell, requires_grad=True)  # (B, 3, 3)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("...ad,ade->...ae", positions, symmetric[graph[keys.BATCH]])
            graph[keys.CELL] = cell + torch.bmm(cell, symmetric)
            inputs.append(strain)
        graph[keys.POSITIONS] = positions
        out = model(graph)
        gradients = torch.autograd.grad(differentiated_energy(out), inputs, create_graph=model.training)
    result = energies_and_forces(out, gradients[0])
    if compute_stress:
        volume = torch.linalg.det(cell).abs()  # (B,)
        num_members = out[keys.MEMBER_ENERGIES].shape[0] if keys.MEMBER_ENERGIES in out else 1
        result[keys.STRESS] = gradients[1] / (num_members * volume[:, None, None])  # a committee's: the mean
    return result


def compiled_energy_forces(
    model: nn.Module, static_shapes: bool = False
) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Energy and forces of ``model`` as one ``torch.compile``d function, for training steps.

    The same energy and forces as :func:`energy_forces_stress` of a model in training mode
    (forces −∂E/∂x, differentiable with respect to the weights), but the derivative is taken
    with ``torch.func.grad_and_value`` inside the compiled function, so that TorchInductor sees
    the model and its derivative as one graph and a loss on the forces back-propagates through
    the compiled graph's backward. (``torch.autograd.grad(create_graph=True)``, as in
    :func:`energy_forces_stress`, would need a double backward, which ``torch.compile`` does not
    support.) Shapes are compiled dynamic, so batches of other sizes do not recompile. Every
    graph goes through :func:`graph_for_model` eagerly first: it drops pairs beyond the cutoff
    and adds the index tensors that a model derives from the edge list (GemNet-T's triplets),
    whose data-dependent sizes a compiled graph can take as inputs but not build.

    The first call compiles, which takes minutes; later calls are several times faster than
    eager ones for models of many small operations (SEGNN's tensor products). Under
    compilation :class:`~eqff.nn.species.SpeciesIndex` does not check the atomic numbers:
    check the frames' elements first (:func:`eqff.train.metrics.check_elements`).

    Args:
        model: maps a graph to ``energy`` (B,) in eV and ``atomic_energies`` (n,).
        static_shapes: keep the pairs beyond the cutoff (:func:`graph_for_model`); on a GPU,
            also replay the compiled step as a CUDA graph (``mode="reduce-overhead"``), whose
            outputs the next call overwrites: copy them before calling again.

    Returns:
        a function of a graph giving ``energy`` (B,), ``atomic_energies`` (n,) and ``forces`` (n, 3)
        (and, for a committee, what :func:`energies_and_forces` adds).
        A call raises :class:`~eqff.errors.ModelCompileError` if the model's forward cannot be
        traced as one graph (for example, if it branches on the values of a tensor) or
        TorchInductor fails to generate its code (at the first call, or at a later one that
        recompiles for new shapes).
    """

    def energy_and_forces(positions: torch.Tensor, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def total_energy(positions: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            out = model({**graph, keys.POSITIONS: positions})
            return differentiated_energy(out), out

        gradient, (_, out) = torch.func.grad_and_value(total_energy, has_aux=True)(positions)
        return energies_and_forces(out, gradient)

    # With static shapes on a GPU a step's shapes stay the same until the neighbour list is
    # rebuilt, so the compiled step is replayed as a CUDA graph (one recorded per edge count).
    on_gpu = any(parameter.is_cuda for parameter in model.parameters())
    mode = "reduce-overhead" if static_shapes and on_gpu else None
    compiled = torch.compile(energy_and_forces, dynamic=True, fullgraph=True, mode=mode)

    def compiled_call(graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        graph = graph_for_model(model, graph, static_shapes)
        try:
            return compiled(member_positions(model, graph[keys.POSITIONS]), graph)
        except torch._dynamo.exc.Unsupported as error:
            reason = str(error).strip().splitlines()[0]
            raise ModelCompileError(
                f"torch.compile cannot trace {type(model).__name__}'s energy and forces as one graph ({reason}); "
                "compute them eagerly instead"
            ) from error
        except torch._dynamo.exc.BackendCompilerFailed as error:  # TorchInductor's code generation failed
            raise ModelCompileError(
                f"torch.compile could not generate code for {type(model).__name__}'s energy and forces "
                f"({type(error.inner_exception).__name__} in TorchInductor); compute them eagerly instead"
            ) from error

    return compiled_call
