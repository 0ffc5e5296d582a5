"""Physics checks that every eqff energy model must pass, whatever its architecture.

A *model* here is any ``nn.Module`` with ``.elements`` (atomic numbers it knows), ``.cutoff``
(Å) and ``forward(graph) -> {"energy": (B,), "atomic_energies": (n,)}`` in eV (see
:mod:`eqff.data.keys`). Forces and stress always come from :func:`eqff.nn.forces.energy_forces_stress`,
the one path used in production, so the checks test what the calculators see.

Each ``check_*`` function raises ``AssertionError`` naming the quantity, the largest
difference, where it occurs and the tolerance. They never modify the model they are given:
they evaluate a deep copy, cast to the requested dtype, in eval mode.

Tolerances: unless ``atol`` is given, two quantities are compared with the absolute tolerance
``FLOAT_TOLERANCE[dtype] * max(1, max |reference|)``, i.e. a relative tolerance for values
larger than one (per-atom energy offsets make total energies large).

:class:`ModelTests` bundles the checks as pytest test methods, so that a new architecture gets
the whole suite by subclassing it (see its docstring).
"""

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch import nn

from eqff.data import keys
from eqff.data.graph import atoms_to_graph, collate
from eqff.model_file import load_model, save_model
from eqff.nn.forces import energy_forces_stress
from eqff.rotations import random_rotations

FLOAT_TOLERANCE: dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float64: 1e-10}
"""Relative tolerance of comparisons between results that are equal in exact arithmetic."""

CUTOFF_SMOOTHNESS_TOLERANCE = 1e-8
"""Floor of the relative tolerance of :func:`check_cutoff_smoothness`: a pair at
``cutoff − delta`` still contributes about ``(delta / cutoff)^k`` (k = 2 for a cosine cutoff)."""


# --------------------------------------------------------------------------------------------
# Building graphs and evaluating models
# --------------------------------------------------------------------------------------------


def _prepared(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of ``model`` in ``dtype`` and eval mode (the caller's model is left as it was)."""
    if dtype not in FLOAT_TOLERANCE:
        raise ValueError(f"dtype must be one of {list(FLOAT_TOLERANCE)}, got {dtype}")
    return copy.deepcopy(model).to(dtype=dtype).eval()


def _is_fully_periodic(atoms: Atoms) -> bool:
    return bool(np.all(atoms.pbc))


def _evaluate_prepared(
    model: nn.Module,
    atoms: Atoms,
    dtype: torch.dtype,
    compute_stress: bool = False,
    skin: float = 0.0,
    static_shapes: bool = False,
) -> dict[str, torch.Tensor]:
    graph = atoms_to_graph(atoms, model.cutoff + skin, dtype)
    out = energy_forces_stress(model, graph, compute_stress=compute_stress, static_shapes=static_shapes)
    result = {
        keys.ENERGY: out[keys.ENERGY].detach().double().reshape(()),  # ()
        keys.ATOMIC_ENERGIES: out[keys.ATOMIC_ENERGIES].detach().double(),  # (n,)
        keys.FORCES: out[keys.FORCES].detach().double(),  # (n, 3)
    }
    if compute_stress:
        result[keys.STRESS] = out[keys.STRESS].detach().double()[0]  # (3, 3)
    return result


def evaluate(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, compute_stress: bool = False
) -> dict[str, torch.Tensor]:
    """Energy (), atomic energies (n,), forces (n, 3) and optionally stress (3, 3) of ``atoms``.

    The model is evaluated in ``dtype`` (on a copy); results are returned as float64 CPU tensors.
    """
    return _evaluate_prepared(_prepared(model, dtype), atoms, dtype, compute_stress)


# --------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------


def _tolerance(dtype: torch.dtype, atol: float | None, reference: torch.Tensor) -> float:
    if atol is not None:
        return atol
    magnitude = float(reference.abs().max()) if reference.numel() else 0.0
    return FLOAT_TOLERANCE[dtype] * max(1.0, magnitude)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float, what: str) -> None:
    """Raise ``AssertionError`` unless ``|actual - expected| <= tolerance`` everywhere (NaN fails)."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} differs from expected {tuple(expected.shape)}")
    if not (torch.isfinite(actual).all() and torch.isfinite(expected).all()):
        raise AssertionError(f"{what}: non-finite values (got {actual}, expected {expected})")
    if actual.numel() == 0:
        return
    difference = (actual - expected).abs()
    worst = float(difference.max())
    if worst > tolerance:
        index = tuple(int(i) for i in np.unravel_index(int(difference.argmax()), tuple(difference.shape)))
        raise AssertionError(
            f"{what}: max |difference| {worst:.3e} exceeds tolerance {tolerance:.3e}"
            + (f" at index {index}" if index else "")
            + f" (got {float(actual[index]):.12g}, expected {float(expected[index]):.12g})"
        )


def _compare_results(
    new: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    dtype: torch.dtype,
    atol: float | None,
    context: str,
    permutation: np.ndarray | None = None,
    rotation: torch.Tensor | None = None,
) -> None:
    """``new`` must equal ``reference`` after permuting atoms and rotating vectors (as given)."""
    index = slice(None) if permutation is None else torch.as_tensor(permutation)
    forces = reference[keys.FORCES][index]
    stress = reference.get(keys.STRESS)
    if rotation is not None:
        forces = forces @ rotation.T
        if stress is not None:
            stress = rotation @ stress @ rotation.T
    energy = reference[keys.ENERGY]
    _assert_close(new[keys.ENERGY], energy, _tolerance(dtype, atol, energy), f"{context}: energy changed")
    atomic = reference[keys.ATOMIC_ENERGIES][index]
    _assert_close(new[keys.ATOMIC_ENERGIES], atomic, _tolerance(dtype, atol, atomic), f"{context}: atomic energies")
    _assert_close(new[keys.FORCES], forces, _tolerance(dtype, atol, forces), f"{context}: forces")
    if stress is not None and keys.STRESS in new:
        _assert_close(new[keys.STRESS], stress, _tolerance(dtype, atol, stress), f"{context}: stress")


def _transformed(atoms: Atoms, matrix: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with positions and cell vectors (rows) mapped by ``matrix`` (3, 3)."""
    moved = atoms.copy()
    moved.calc = None
    moved.set_cell(atoms.cell.array @ matrix.T, scale_atoms=False)
    moved.set_positions(atoms.positions @ matrix.T)
    return moved


# --------------------------------------------------------------------------------------------
# Symmetry checks
# --------------------------------------------------------------------------------------------


def _check_orthogonal_map(
    model: nn.Module, atoms: Atoms, matrix: np.ndarray, dtype: torch.dtype, atol: float | None, name: str
) -> None:
    prepared = _prepared(model, dtype)
    stress = _is_fully_periodic(atoms)
    reference = _evaluate_prepared(prepared, atoms, dtype, stress)
    mapped = _evaluate_prepared(prepared, _transformed(atoms, matrix), dtype, stress)
    context = f"{name} by Q={np.round(matrix, 4).tolist()} ({'positions and cell' if atoms.pbc.any() else 'positions'})"
    _compare_results(mapped, reference, dtype, atol, context, rotation=torch.as_tensor(matrix))
    if not atoms.pbc.any():
        # Rotation invariance of an isolated structure implies zero net torque; each force may be
        # off by the force tolerance, so the torque by that times the sum of the lever arms.
        forces = reference[keys.FORCES]
        centred = torch.as_tensor(atoms.positions - atoms.positions.mean(0))  # (n, 3)
        torque = torch.linalg.cross(centred, forces).sum(0)  # (3,)
        lever_arms = float(torch.linalg.vector_norm(centred, dim=-1).sum())
        _assert_close(
            torque,
            torch.zeros(3, dtype=torch.float64),
            _tolerance(dtype, atol, forces) * max(1.0, lever_arms),
            "net torque of an isolated structure is not zero",
        )


def check_rotation_invariance(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, atol: float | None = None, seed: int = 0
) -> None:
    """Energy invariant, forces (and stress, if fully periodic) equivariant under a random rotation.

    Positions and, for periodic structures, the cell vectors are rotated by a matrix from
    :func:`eqff.rotations.random_rotations`. For an isolated structure the net torque must also vanish.
    """
    _check_orthogonal_map(model, atoms, random_rotations(1, seed)[0].numpy(), dtype, atol, "rotation")


def check_reflection_invariance(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, atol: float | None = None, seed: int = 0
) -> None:
    """As :func:`check_rotation_invariance` for an improper rotation (inversion times a rotation).

    Only for models whose energy is parity-even (no chirality-sensitive pseudoscalars).
    """
    _check_orthogonal_map(model, atoms, -random_rotations(1, seed)[0].numpy(), dtype, atol, "reflection")


def check_translation_invariance(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, atol: float | None = None, seed: int = 0
) -> None:
    """Energy, atomic energies and forces unchanged by translations, and zero net force.

    Always: a random uniform translation. For structures periodic in some direction also: each
    atom moved by its own random lattice vector (along periodic directions), and a uniform
    translation followed by wrapping the atoms back into the cell.
    """
    rng = np.random.default_rng(seed)
    prepared = _prepared(model, dtype)
    stress = _is_fully_periodic(atoms)
    reference = _evaluate_prepared(prepared, atoms, dtype, stress)
    translation = rng.normal(size=3) * 2.0
    variants: dict[str, Atoms] = {}
    shifted = atoms.copy()
    shifted.calc = None
    shifted.positions += translation
    variants[f"uniform translation by {np.round(translation, 4).tolist()} Å"] = shifted
    if atoms.pbc.any():
        lattice_steps = rng.integers(-2, 3, size=(len(atoms), 3)) * atoms.pbc  # (n, 3)
        if not lattice_steps.any():
            lattice_steps[0, int(np.argmax(atoms.pbc))] = 1
        by_lattice = atoms.copy()
        by_lattice.calc = None
        by_lattice.positions += lattice_steps @ atoms.cell.array
        variants["each atom moved by an integer lattice vector"] = by_lattice
        wrapped = shifted.copy()
        wrapped.wrap()
        variants["uniform translation then wrapping into the cell"] = wrapped
    for context, moved in variants.items():
        _compare_results(_evaluate_prepared(prepared, moved, dtype, stress), reference, dtype, atol, context)
    forces = reference[keys.FORCES]
    _assert_close(
        forces.sum(0),
        torch.zeros(3, dtype=torch.float64),
        _tolerance(dtype, atol, forces) * len(atoms),  # each force may be off by the tolerance
        "net force is not zero (translation invariance)",
    )


def check_permutation_equivariance(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, atol: float | None = None, seed: int = 0
) -> None:
    """Reordering the atoms reorders atomic energies and forces the same way and keeps the energy."""
    if len(atoms) < 2:
        raise ValueError("need at least two atoms to permute")
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(len(atoms))
    if np.array_equal(permutation, np.arange(len(atoms))):
        permutation = np.roll(permutation, 1)
    prepared = _prepared(model, dtype)
    stress = _is_fully_periodic(atoms)
    reference = _evaluate_prepared(prepared, atoms, dtype, stress)
    permuted = atoms[permutation]
    permuted.calc = None
    new = _evaluate_prepared(prepared, permuted, dtype, stress)
    _compare_results(new, reference, dtype, atol, f"permutation {permutation.tolist()}", permutation=permutation)


# --------------------------------------------------------------------------------------------
# Derivative checks (float64)
# --------------------------------------------------------------------------------------------


def check_forces_match_finite_differences(
    model: nn.Module, atoms: Atoms, delta: float = 1e-4, atol: float = 1e-6
) -> None:
    """Autograd forces equal −(E(x+δ) − E(x−δ)) / 2δ for every coordinate, in float64.

    The neighbour list is rebuilt for every displaced structure, as in production.
    """
    prepared = _prepared(model, torch.float64)
    forces = _evaluate_prepared(prepared, atoms, torch.float64)[keys.FORCES]
    numerical = torch.zeros_like(forces)
    for a, d in itertools.product(range(len(atoms)), range(3)):
        energies = []
        for sign in (1.0, -1.0):
            moved = atoms.copy()
            moved.calc = None
            moved.positions[a, d] += sign * delta
            energies.append(_evaluate_prepared(prepared, moved, torch.float64)[keys.ENERGY])
        numerical[a, d] = -(energies[0] - energies[1]) / (2 * delta)
    _assert_close(forces, numerical, atol, f"autograd forces vs central finite differences (delta={delta} Å)")


def check_stress_matches_finite_differences(
    model: nn.Module, atoms: Atoms, delta: float = 1e-5, atol: float = 1e-6
) -> None:
    """Autograd stress equals (1/V) ∂E/∂ε by central differences of symmetric strains, in float64.

    Each strain scales cell and positions (``x → x (1 + ε)``), as ASE's
    ``calculate_numerical_stress`` does. ``atoms`` must be periodic in all directions.
    """
    if not _is_fully_periodic(atoms):
        raise ValueError("stress needs a structure periodic in all three directions")
    prepared = _prepared(model, torch.float64)
    stress = _evaluate_prepared(prepared, atoms, torch.float64, compute_stress=True)[keys.STRESS]
    volume = abs(np.linalg.det(atoms.cell.array))
    numerical = torch.zeros_like(stress)
    for a in range(3):
        for b in range(a, 3):
            strain = np.zeros((3, 3))
            strain[a, b] = strain[b, a] = delta
            energies = []
            for sign in (1.0, -1.0):
                deformed = atoms.copy()
                deformed.calc = None
                deformed.set_cell(atoms.cell.array @ (np.eye(3) + sign * strain), scale_atoms=True)
                energies.append(_evaluate_prepared(prepared, deformed, torch.float64)[keys.ENERGY])
            derivative = (energies[0] - energies[1]) / (2 * delta)  # ∂E/∂h; off-diagonal h enters twice
            numerical[a, b] = numerical[b, a] = derivative / volume / (1 if a == b else 2)
    _assert_close(stress, numerical, atol, f"autograd stress vs central finite differences (delta={delta})")


# --------------------------------------------------------------------------------------------
# Batching, locality and smoothness
# --------------------------------------------------------------------------------------------


def check_batch_consistency(
    model: nn.Module, frames: Sequence[Atoms], dtype: torch.dtype = torch.float64, atol: float | None = None
) -> None:
    """A collated batch gives each frame's own results, and no frame's energy sees another frame.

    Compares energy, atomic energies, forces (and stress, if every frame is fully periodic)
    of :func:`eqff.data.graph.collate` of the frames with frame-by-frame results, then checks
    that the gradient of each frame's energy with respect to the positions of the atoms of the
    other frames is exactly zero.
    """
    if len(frames) < 2:
        raise ValueError("need at least two frames to test batching")
    prepared = _prepared(model, dtype)
    stress = all(_is_fully_periodic(f) for f in frames)
    graphs = [atoms_to_graph(f, prepared.cutoff, dtype) for f in frames]
    singles = [_evaluate_prepared(prepared, f, dtype, stress) for f in frames]
    batch = collate(graphs)
    out = energy_forces_stress(prepared, batch, compute_stress=stress)
    expected = {
        keys.ENERGY: torch.stack([s[keys.ENERGY] for s in singles]),
        keys.ATOMIC_ENERGIES: torch.cat([s[keys.ATOMIC_ENERGIES] for s in singles]),
        keys.FORCES: torch.cat([s[keys.FORCES] for s in singles]),
    }
    if stress:
        expected[keys.STRESS] = torch.stack([s[keys.STRESS] for s in singles])
    for key, value in expected.items():
        _assert_close(
            out[key].detach().double(),
            value,
            _tolerance(dtype, atol, value),
            f"batch of {len(frames)} frames vs one by one: {key}",
        )

    graph = dict(batch)
    positions = batch[keys.POSITIONS].detach().requires_grad_(True)
    graph[keys.POSITIONS] = positions
    with torch.enable_grad():
        energy = prepared(graph)[keys.ENERGY]  # (B,)
        for b in range(len(frames)):
            (gradient,) = torch.autograd.grad(energy[b], positions, retain_graph=True)
            leak = gradient[batch[keys.BATCH] != b].abs()
            if leak.numel() and float(leak.max()) != 0.0:
                raise AssertionError(
                    f"the energy of frame {b} depends on the positions of atoms of other frames "
                    f"(max |gradient| {float(leak.max()):.3e}); frames in a batch must not interact"
                )


def check_fragment_additivity(
    model: nn.Module,
    fragment_a: Atoms,
    fragment_b: Atoms,
    dtype: torch.dtype = torch.float64,
    atol: float | None = None,
) -> None:
    """Two isolated fragments farther apart than the cutoff: energies add, forces are each fragment's own."""
    if fragment_a.pbc.any() or fragment_b.pbc.any():
        raise ValueError("fragment additivity needs isolated (non-periodic) fragments")
    prepared = _prepared(model, dtype)
    gap = prepared.cutoff + 1.0
    far = fragment_b.copy()
    far.calc = None
    far.positions += np.array([fragment_a.positions[:, 0].max() - fragment_b.positions[:, 0].min() + gap, 0.0, 0.0])
    combined = fragment_a.copy() + far
    combined.calc = None
    parts = [_evaluate_prepared(prepared, f, dtype) for f in (fragment_a, far)]
    whole = _evaluate_prepared(prepared, combined, dtype)
    expected = {
        keys.ENERGY: parts[0][keys.ENERGY] + parts[1][keys.ENERGY],
        keys.ATOMIC_ENERGIES: torch.cat([p[keys.ATOMIC_ENERGIES] for p in parts]),
        keys.FORCES: torch.cat([p[keys.FORCES] for p in parts]),
    }
    for key, value in expected.items():
        _assert_close(
            whole[key],
            value,
            _tolerance(dtype, atol, value),
            f"fragments {gap:.2f} Å apart (> cutoff): {key} not additive",
        )


def check_supercell_consistency(
    model: nn.Module,
    atoms: Atoms,
    repeat: tuple[int, int, int] = (2, 1, 1),
    dtype: torch.dtype = torch.float64,
    atol: float | None = None,
) -> None:
    """A periodic supercell has the energy of its copies and every copy the forces of the original.

    Energy of ``atoms.repeat(repeat)`` must be ``prod(repeat)`` times that of ``atoms``, its
    forces and atomic energies those of ``atoms`` tiled, and (fully periodic) its stress equal.
    """
    if not all(atoms.pbc[k] or repeat[k] == 1 for k in range(3)):
        raise ValueError("repeat only along periodic directions")
    prepared = _prepared(model, dtype)
    stress = _is_fully_periodic(atoms)
    copies = int(np.prod(repeat))
    reference = _evaluate_prepared(prepared, atoms, dtype, stress)
    supercell = atoms.repeat(repeat)
    supercell.calc = None
    new = _evaluate_prepared(prepared, supercell, dtype, stress)
    expected = {
        keys.ENERGY: reference[keys.ENERGY] * copies,
        keys.ATOMIC_ENERGIES: reference[keys.ATOMIC_ENERGIES].repeat(copies),
        keys.FORCES: reference[keys.FORCES].repeat(copies, 1),
    }
    if stress:
        expected[keys.STRESS] = reference[keys.STRESS]
    for key, value in expected.items():
        _assert_close(new[key], value, _tolerance(dtype, atol, value), f"{repeat} supercell vs its unit cell: {key}")


def check_cutoff_smoothness(
    model: nn.Module,
    dtype: torch.dtype = torch.float64,
    atol: float | None = None,
    delta: float = 1e-5,
    element_pairs: Sequence[tuple[int, int]] | None = None,
    seed: int = 0,
) -> None:
    """Energy and forces are continuous as a pair of atoms crosses the cutoff.

    A pair at ``cutoff − delta`` (in a random orientation) is in the neighbour list; an instant
    later, beyond the cutoff, it is not. Continuity means that at the same positions, the
    energy and forces with the pair's two edges are those without them. This is checked for
    each pair of elements (default: every unordered pair of ``model.elements``), once for the
    pair alone and once with a spectator atom within the cutoff of both (so that angular terms
    see the pair). Comparing at the same positions leaves no legitimate difference of order
    ``delta × force``, so the tolerance can be tight: ``atol`` defaults to
    ``max(FLOAT_TOLERANCE[dtype], CUTOFF_SMOOTHNESS_TOLERANCE) * max(1, |value|)``.
    """
    prepared = _prepared(model, dtype)
    cutoff = float(prepared.cutoff)
    elements = list(prepared.elements)
    if element_pairs is None:
        element_pairs = list(itertools.combinations_with_replacement(elements, 2))
    pairs = list(element_pairs)
    rotation = random_rotations(1, seed)[0].numpy()
    relative = max(FLOAT_TOLERANCE[dtype], CUTOFF_SMOOTHNESS_TOLERANCE)
    failures = []
    for (z_a, z_b), with_spectator in itertools.product(pairs, (False, True)):
        numbers = [z_a, z_b] + ([elements[0]] if with_spectator else [])
        positions = [[0.0, 0.0, 0.0], [cutoff - delta, 0.0, 0.0]]
        if with_spectator:
            positions.append([0.5 * cutoff, 0.4 * cutoff, 0.0])
        atoms = Atoms(numbers=numbers, positions=np.asarray(positions) @ rotation.T)
        graph = atoms_to_graph(atoms, cutoff, dtype)
        centre, neighbour = graph[keys.EDGE_INDEX]
        is_pair = (centre + neighbour == 1) & (centre != neighbour)  # edges 0→1 and 1→0  (E,)
        if int(is_pair.sum()) != 2:
            raise ValueError(f"the pair at {cutoff - delta} Å should be in the neighbour list of cutoff {cutoff} Å")
        without = dict(graph)
        without[keys.EDGE_INDEX] = graph[keys.EDGE_INDEX][:, ~is_pair]
        inside = energy_forces_stress(prepared, graph)
        outside = energy_forces_stress(prepared, without)
        setting = f"pair {z_a}-{z_b}{' with a spectator' if with_spectator else ''} at r_c − {delta} Å"
        for key in (keys.ENERGY, keys.FORCES):
            reference = outside[key].detach().double()
            tolerance = atol if atol is not None else relative * max(1.0, float(reference.abs().max()))
            try:
                what = f"{setting}: {key} with and without the pair differ"
                _assert_close(inside[key].detach(), reference, tolerance, what)
            except AssertionError as error:
                failures.append(str(error))
    if failures:
        raise AssertionError(f"{len(failures)} discontinuities at the cutoff r_c={cutoff} Å:\n" + "\n".join(failures))


def check_pairs_beyond_the_cutoff_change_nothing(
    model: nn.Module, atoms: Atoms, dtype: torch.dtype = torch.float64, skin: float = 1.0, atol: float | None = None
) -> None:
    """A neighbour list that also holds pairs up to ``cutoff + skin`` Å (a Verlet list, as eqff's
    calculators and MD engines pass) gives the energy, forces and (periodic) stress of the exact list,
    both with the extra pairs dropped before the model and kept for its envelope to zero (static
    shapes, :func:`eqff.nn.forces.graph_for_model`).

    Raises ``ValueError`` if ``atoms`` has no pair in that shell, which would make the check vacuous.
    """
    prepared = _prepared(model, dtype)
    cutoff = float(prepared.cutoff)
    if atoms_to_graph(atoms, cutoff + skin, dtype)[keys.EDGE_INDEX].shape[1] == atoms_to_graph(atoms, cutoff, dtype)[
        keys.EDGE_INDEX
    ].shape[1]:
        raise ValueError(f"no pair of the structure lies between {cutoff} and {cutoff + skin} Å")
    stress = _is_fully_periodic(atoms)
    exact = _evaluate_prepared(prepared, atoms, dtype, stress)
    for static_shapes in (False, True):
        verlet = _evaluate_prepared(prepared, atoms, dtype, stress, skin=skin, static_shapes=static_shapes)
        kept = "kept" if static_shapes else "dropped"
        _compare_results(verlet, exact, dtype, atol, f"neighbour list with pairs up to {cutoff + skin} Å ({kept})")


def check_model_file_round_trip(model: nn.Module, structures: Sequence[Atoms], dtype: torch.dtype, folder: Path) -> None:
    """A model file written from ``model`` (cast to ``dtype``) loads as the same model, bit for bit.

    Same hyperparameters, dtype and state (every parameter and buffer: fitted scales, grids), and
    the same energies on ``structures``, with zero tolerance.
    """
    prepared = _prepared(model, dtype)
    loaded, _ = load_model(save_model(Path(folder) / "model.eqff", prepared))
    assert loaded.hyperparameters == prepared.hyperparameters, "hyperparameters changed in the model file"
    assert next(loaded.parameters()).dtype == dtype, f"loaded in {next(loaded.parameters()).dtype}, saved in {dtype}"
    state, loaded_state = prepared.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys(), f"state keys differ: {set(state) ^ set(loaded_state)}"
    changed = [key for key in state if not torch.equal(state[key], loaded_state[key])]
    assert not changed, f"weights or buffers changed in the model file: {changed}"
    for atoms in structures:
        graph = atoms_to_graph(atoms, prepared.cutoff, dtype)
        _assert_close(loaded(graph)[keys.ENERGY].detach(), prepared(graph)[keys.ENERGY].detach(), 0.0,
                      "energy of the loaded model differs")  # fmt: skip


# --------------------------------------------------------------------------------------------
# A pytest mixin running every check
# --------------------------------------------------------------------------------------------


class ModelTests:
    """The physics test suite of one model, as pytest test methods.

    Subclass it in a test module as ``class TestMyModel(ModelTests)`` and provide fixtures:

    - ``model``: the energy model (any dtype; the checks cast a copy);
    - ``dtype``: parametrised over ``torch.float32`` and ``torch.float64``;
    - ``molecule``: an isolated ``ase.Atoms`` of elements the model knows, several atoms;
    - ``periodic_atoms``: an ``ase.Atoms`` periodic in all three directions.

    Finite-difference tests run in float64 only. Override a method to mark it (for example
    ``xfail`` for a known bug, or to drop reflection tests for a parity-odd model).
    """

    def test_rotation_invariance(self, model, molecule, dtype):
        check_rotation_invariance(model, molecule, dtype)

    def test_rotation_invariance_periodic(self, model, periodic_atoms, dtype):
        check_rotation_invariance(model, periodic_atoms, dtype)

    def test_reflection_invariance(self, model, molecule, dtype):
        check_reflection_invariance(model, molecule, dtype)

    def test_reflection_invariance_periodic(self, model, periodic_atoms, dtype):
        check_reflection_invariance(model, periodic_atoms, dtype)

    def test_translation_invariance(self, model, molecule, dtype):
        check_translation_invariance(model, molecule, dtype)

    def test_translation_invariance_periodic(self, model, periodic_atoms, dtype):
        check_translation_invariance(model, periodic_atoms, dtype)

    def test_permutation_equivariance(self, model, molecule, dtype):
        check_permutation_equivariance(model, molecule, dtype)

    def test_permutation_equivariance_periodic(self, model, periodic_atoms, dtype):
        check_permutation_equivariance(model, periodic_atoms, dtype)

    def test_forces_match_finite_differences(self, model, molecule):
        check_forces_match_finite_differences(model, molecule)

    def test_forces_match_finite_differences_periodic(self, model, periodic_atoms):
        check_forces_match_finite_differences(model, periodic_atoms)

    def test_stress_matches_finite_differences(self, model, periodic_atoms):
        check_stress_matches_finite_differences(model, periodic_atoms)

    def test_batch_consistency(self, model, molecule, periodic_atoms, dtype):
        rattled = molecule.copy()
        rattled.rattle(0.05, seed=1)
        check_batch_consistency(model, [molecule, periodic_atoms, rattled[: max(2, len(rattled) // 2)]], dtype)

    def test_batch_consistency_periodic(self, model, periodic_atoms, dtype):
        strained = periodic_atoms.copy()
        strained.set_cell(periodic_atoms.cell.array * 1.03, scale_atoms=True)
        check_batch_consistency(model, [periodic_atoms, strained], dtype)

    def test_supercell_consistency(self, model, periodic_atoms, dtype):
        check_supercell_consistency(model, periodic_atoms, (2, 1, 1), dtype)

    def test_fragment_additivity(self, model, molecule, dtype):
        check_fragment_additivity(model, molecule, molecule[: max(1, len(molecule) // 2)], dtype)

    def test_model_file_round_trip(self, model, molecule, periodic_atoms, dtype, tmp_path):
        check_model_file_round_trip(model, [molecule, periodic_atoms], dtype, tmp_path)

    def test_cutoff_smoothness(self, model, dtype):
        check_cutoff_smoothness(model, dtype)

    def test_pairs_beyond_the_cutoff_change_nothing(self, model, molecule, periodic_atoms, dtype):
        for atoms in (molecule, periodic_atoms):
            check_pairs_beyond_the_cutoff_change_nothing(model, atoms, dtype)
