"""The ASE calculator: ``atoms.calc = EqffCalculator("painn-aspirin")``."""

import os

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

from eqff.data import keys
from eqff.potential import DEFAULT_SKIN, Potential

UNCERTAINTIES = (keys.ENERGY_UNCERTAINTY, keys.FORCES_UNCERTAINTY)
"""The extra results of a committee model (eV and (n,) eV/Å), named as in :mod:`eqff.data.keys`."""


class EqffCalculator(Calculator):
    """ASE calculator for an eqff model.

    Args:
        model: a model file path, the name of a shipped potential, or an eqff model.
        device: "cpu", "cuda" or "cuda:N"; refused if not available.
        dtype: "float32" or "float64".
        skin: neighbour-list skin in Å; the list is rebuilt only when an atom moved more than
            skin/2, or numbers, cell or pbc changed.
        threads: torch CPU threads per call; default: one for molecules, torch's setting for
            large systems or when the user set one (:mod:`eqff.threads`).
        compile: default: compiled once eager calls have taken about what compiling costs
            (a minute; :mod:`eqff.compilation`), so that long runs go faster and short ones
            never wait; ``True``: from the first call; ``False``: never.

    Results are in ASE units: energy and free_energy in eV, forces in eV/Å, and, for
    structures periodic in all three directions, stress in eV/Å³ (Voigt order); asking for the
    stress of any other structure raises ASE's ``PropertyNotImplementedError``. A committee
    model (:mod:`eqff.models.committee`) gives its members' means and, as extra results, their
    spread: ``energy_uncertainty`` in eV (the standard deviation of the members' energies) and
    ``forces_uncertainty`` (n,) in eV/Å (per atom, the root mean square over the members of
    ‖F_k − F̄‖); read them with ``calc.get_property("forces_uncertainty", atoms)`` or from
    ``calc.results`` after any call.
    Bad input (unknown element, NaN positions, pbc without a cell) raises ``ValueError``
    subclasses from :mod:`eqff.errors`.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: str | os.PathLike | nn.Module,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
        skin: float = DEFAULT_SKIN,
        threads: int | None = None,
        compile: bool | None = None,
    ) -> None:
        super().__init__()
        self.potential = Potential(model, device=device, dtype=dtype, skin=skin, threads=threads, compile=compile)
        if self.potential.gives_uncertainty:
            self.implemented_properties = [*type(self).implemented_properties, *UNCERTAINTIES]

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        properties = properties or ["energy"]
        if "stress" in properties and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress is defined only for structures periodic in all three directions")
        out = self.potential(
            self.atoms.numbers,
            self.atoms.positions,
            self.atoms.cell.array,
            self.atoms.pbc,
            compute_stress="stress" in properties,
        )
        self.results = {"energy": out[keys.ENERGY], "free_energy": out[keys.ENERGY], "forces": out[keys.FORCES]}
        if keys.STRESS in out:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out[keys.STRESS])
        for name in UNCERTAINTIES:
            if name in out:
                self.results[name] = out[name]
