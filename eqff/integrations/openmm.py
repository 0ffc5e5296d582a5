"""OpenMM through openmm-ml: an eqff potential is ``MLPotential("eqff", modelPath=...)``.

The entry point in ``pyproject.toml`` registers
:class:`~eqff.integrations.openmm_plugin.EqffPotentialImplFactory`, which creates
:class:`EqffPotentialImpl`, as the openmm-ml potential ``eqff``::

    from openmmml import MLPotential

    potential = MLPotential("eqff", modelPath="painn-aspirin")  # a .eqff file or a shipped name
    system = potential.createSystem(topology, precision="double")
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)

Energies and forces come from :class:`eqff.potential.Potential`, the path the ASE calculator
takes (model, neighbour-list cache, input checks), called from an ``openmm.PythonForce``.
With ``implementation="torch"`` the model runs instead inside openmm-torch's ``TorchForce`` as a
TorchScript module that builds its neighbour list in torch (:func:`build_torch_module`). This
module only converts units: OpenMM positions in nm are multiplied by
:data:`~eqff.data.units.NANOMETRE` to give Å, and energies and forces in eV and eV/Å by
:data:`~eqff.data.units.EV_IN_KJ_PER_MOL` and
:data:`~eqff.data.units.EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM` to give kJ/mol and kJ/mol/nm.

As in openmm-ml's own plugins (openmm-ml imports every registered plugin when it is itself
imported), torch and the model code are imported only in :meth:`EqffPotentialImpl.addForces`
and the functions it calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import openmm
import openmm.app
from openmm import unit
from openmmml.mlpotential import MLPotentialImpl

from eqff.data import keys
from eqff.data.units import EV_IN_KJ_PER_MOL, EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM, NANOMETRE
from eqff.errors import EqffInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from eqff.potential import Potential

PRECISIONS: Final[dict[str, str]] = {"single": "float32", "double": "float64"}
"""openmm-ml's ``precision`` names → eqff dtype names."""

IMPLEMENTATIONS: Final[tuple[str, ...]] = ("python", "torch")
"""``python``: ``openmm.PythonForce`` around :class:`~eqff.potential.Potential`; ``torch``: openmm-torch's
``TorchForce`` around :func:`build_torch_module`."""

EMBEDDING_OPTIONS: Final[frozenset[str]] = frozenset({"linkAtomDistances"})
"""Options of openmm-ml's mechanical embedding that ``createMixedSystem`` also passes to ``addForces``."""


class EqffPotentialImpl(MLPotentialImpl):
    """An eqff model as an openmm-ml potential.

    Args:
        name: the name given to ``MLPotential``, ``"eqff"``.
        modelPath: a ``.eqff`` model file or the name of a shipped potential (e.g.
            ``"painn-aspirin"``); default: :data:`eqff.model_file.DEFAULT_POTENTIAL`.

    ``createSystem`` and ``createMixedSystem`` take, besides openmm-ml's own arguments:

    - ``precision``: ``"single"`` (float32) or ``"double"`` (float64); default: the dtype the
      model file was saved in.
    - ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; default: ``"cuda"`` when available.
    - ``implementation``: ``"python"`` (default) or ``"torch"`` (needs openmm-torch).
    - ``threads``: torch CPU threads per force call of the ``"python"`` implementation;
      default: one for molecules, unless set by the user (see :mod:`eqff.threads`).

    Any other argument raises ``TypeError``. Bad input raises ``ValueError`` subclasses from
    :mod:`eqff.errors`: a missing model file, a topology atom without an element, an element the
    model does not know.
    """

    def __init__(self, name: str, modelPath: str | os.PathLike | None) -> None:
        self.name = name
        self.modelPath = modelPath

    def getMLLongRange(self) -> bool:
        """False: eqff models see only atoms within their cutoff (openmm-ml's mechanical embedding asks)."""
        return False

    def addForces(
        self,
        topology: openmm.app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        forceGroup: int,
        precision: str | None = None,
        device: str | None = None,
        implementation: str = "python",
        threads: int | None = None,
        **embeddingArgs,
    ) -> None:
        """Add one force computing the eqff energy of ``atoms`` (all atoms if ``None``) to ``system``.

        Args:
            topology: gives the elements of the atoms, and periodicity if it has box vectors.
            system: receives the force; periodic if it or the topology is.
            atoms: indices of the particles the model applies to; forces on the others are zero.
            forceGroup: the force group of the new force.
            precision, device, implementation, threads: see the class docstring.
            embeddingArgs: options of openmm-ml's embedding, ignored here.
        """
        _check_options(implementation, embeddingArgs)
        particles = list(range(topology.getNumAtoms())) if atoms is None else list(atoms)
        atomic_numbers = topology_atomic_numbers(topology, particles)
        potential = self.load_potential(precision, device, threads)
        potential.check_elements(atomic_numbers)
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        if implementation == "python":
            force = _python_force(potential, atomic_numbers, particles, periodic)
        else:
            force = _torch_force(potential.model, atomic_numbers, particles, periodic)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def load_potential(
        self, precision: str | None = None, device: str | None = None, threads: int | None = None
    ) -> Potential:
        """The :class:`~eqff.potential.Potential` that ``addForces`` evaluates, for the same arguments.

        Args:
            precision: "single" or "double"; default: the dtype the model file was saved in.
            device: default "cuda" when available, else "cpu".
            threads: see :class:`~eqff.potential.Potential`.
        """
        import torch

        from eqff.model_file import DEFAULT_POTENTIAL
        from eqff.potential import Potential

        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)} or None, got {precision!r}")
        model = self.modelPath or DEFAULT_POTENTIAL
        dtype = None if precision is None else PRECISIONS[precision]
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return Potential(model, device=device, dtype=dtype, threads=threads)


class EqffForceComputation:
    """The function of an ``openmm.PythonForce``: an OpenMM state → energy and forces.

    Args:
        potential: evaluates structures in Å and eV.
        atomic_numbers: (n,) of the force's particles, in their order.
        periodic: use the state's periodic box vectors as the cell, periodic in all directions.

    Called with a state holding the (n, 3) positions of the force's particles in nm, it returns
    the energy in kJ/mol and the (n, 3) forces in kJ/mol/nm.
    """

    def __init__(self, potential: Potential, atomic_numbers: np.ndarray, periodic: bool) -> None:
        self.potential = potential
        self.atomic_numbers = atomic_numbers
        self.periodic = periodic

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * NANOMETRE  # (n, 3) Å
        if self.periodic:
            cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) * NANOMETRE  # (3, 3) Å
        else:
            cell = np.zeros((3, 3))
        pbc = np.full(3, self.periodic)
        out = self.potential(self.atomic_numbers, positions, cell, pbc, compute_stress=False)
        return out[keys.ENERGY] * EV_IN_KJ_PER_MOL, out[keys.FORCES] * EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM


def molecule_topology(atomic_numbers: Sequence[int], residue_name: str = "MOL") -> openmm.app.Topology:
    """A topology of one chain and one residue without bonds, atoms named by element (C1, C2, H1, ...).

    Args:
        atomic_numbers: (n,) in the order of the positions that go with the topology.
        residue_name: name of the single residue.
    """
    topology = openmm.app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    counts: dict[int, int] = {}
    for z in atomic_numbers:
        element = openmm.app.Element.getByAtomicNumber(int(z))
        counts[element.atomic_number] = counts.get(element.atomic_number, 0) + 1
        topology.addAtom(f"{element.symbol}{counts[element.atomic_number]}", element, residue)
    return topology


def topology_atomic_numbers(topology: openmm.app.Topology, particles: Sequence[int]) -> np.ndarray:
    """(n,) int64 atomic numbers of the topology atoms with indices ``particles``.

    Raises :class:`~eqff.errors.EqffInputError` naming the first of them that has no element.
    """
    atoms = list(topology.atoms())
    numbers = []
    for index in particles:
        atom = atoms[index]
        if atom.element is None:
            raise EqffInputError(
                f"topology atom {index} ({atom.name!r} in residue {atom.residue.name} {atom.residue.id}) "
                "has no element; eqff needs the element of every atom it models"
            )
        numbers.append(atom.element.atomic_number)
    return np.array(numbers, dtype=np.int64)


def _check_options(implementation: str, embedding_args: dict) -> None:
    """Refuse an unknown implementation (``ValueError``) or argument (``TypeError``)."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}")
    unknown = sorted(set(embedding_args) - EMBEDDING_OPTIONS)
    if unknown:
        raise TypeError(
            f"the eqff potential got unknown arguments {unknown}; it takes precision, device, implementation and threads"
        )


def _python_force(
    potential: Potential, atomic_numbers: np.ndarray, particles: list[int], periodic: bool
) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``potential`` on ``particles`` (forces go back to them)."""
    force = openmm.PythonForce(EqffForceComputation(potential, atomic_numbers, periodic))
    force.setParticles(particles)
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def _torch_force(model: nn.Module, atomic_numbers: np.ndarray, particles: list[int], periodic: bool) -> openmm.Force:
    """openmm-torch's ``TorchForce`` running :func:`build_torch_module`.

    Raises ``ImportError`` naming the missing package where openmm-torch or vesin-torch does not import.
    """
    try:
        import openmmtorch
        import vesin_torch  # noqa: F401  (used by build_torch_module)
    except ImportError as error:
        raise ImportError(
            f"implementation='torch' needs openmm-torch and vesin-torch, and {error.name} does not import here "
            f"({error}); install them (conda install -c conda-forge openmm-torch; pip install vesin-torch) "
            "or use implementation='python'"
        ) from None
    force = openmmtorch.TorchForce(build_torch_module(model, atomic_numbers, particles))
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def build_torch_module(
    model: nn.Module, atomic_numbers: Sequence[int], particles: Sequence[int]
) -> torch.jit.ScriptModule:
    """A TorchScript module for openmm-torch: all particles' positions in nm → the model's energy in kJ/mol.

    ``forward(positions, boxvectors=None)`` takes the (N, 3) positions of all N particles of the
    System in nm and, for a periodic System, the (3, 3) box vectors (rows) in nm. It picks the
    modelled ``particles``, builds their neighbour list with vesin-torch (periodic when box
    vectors are given) and returns the energy, a scalar in kJ/mol; forces are its negative
    gradient, which openmm-torch takes by autograd.

    Args:
        model: an eqff model on its device, in its dtype and in eval mode.
        atomic_numbers: (n,) of the modelled particles.
        particles: (n,) their indices among the System's particles.
    """
    import torch
    from vesin_torch import NeighborList

    class EqffTorchForceModule(torch.nn.Module):
        """positions (N, 3) nm, optional boxvectors (3, 3) nm → energy (), kJ/mol."""

        def __init__(self) -> None:
            super().__init__()
            parameter = next(model.parameters())
            self.model = model
            self.dtype = parameter.dtype
            self.length_scale = NANOMETRE
            self.energy_scale = EV_IN_KJ_PER_MOL
            self.neighbours = NeighborList(cutoff=model.cutoff, full_list=True)
            as_index = dict(dtype=torch.long, device=parameter.device)
            self.register_buffer("atomic_numbers", torch.as_tensor(np.asarray(atomic_numbers), **as_index))  # (n,)
            self.register_buffer("particles", torch.as_tensor(list(particles), **as_index))  # (n,)

        def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor | None = None) -> torch.Tensor:
            device = self.atomic_numbers.device
            positions = positions.to(device).index_select(0, self.particles)  # (n, 3) nm
            positions = positions.to(self.dtype) * self.length_scale  # (n, 3) Å
            if boxvectors is None:
                cell = torch.zeros((3, 3), dtype=self.dtype, device=device)
            else:
                cell = boxvectors.to(device=device, dtype=self.dtype) * self.length_scale  # (3, 3) Å
            periodic = boxvectors is not None
            i, j, shifts = self.neighbours.compute(positions.detach(), cell, periodic, "ijS", True)  # (E,) (E,) (E, 3)
            graph = {
                keys.ATOMIC_NUMBERS: self.atomic_numbers,
                keys.POSITIONS: positions,
                keys.CELL: cell.unsqueeze(0),
                keys.PBC: torch.full((1, 3), periodic, dtype=torch.bool, device=device),
                keys.BATCH: torch.zeros_like(self.atomic_numbers),
                keys.EDGE_INDEX: torch.stack([i, j]),
            }
            if periodic:
                graph[keys.CELL_SHIFTS] = shifts.to(self.dtype)
            return self.model(graph)[keys.ENERGY].sum() * self.energy_scale

    return torch.jit.script(EqffTorchForceModule())
