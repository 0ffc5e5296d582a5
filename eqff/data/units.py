"""Unit conversion factors, all derived from :mod:`ase.units`.

Internal units are eV and Å. Each factor multiplies a value in the named unit to
give it in eV (energies) or Å (lengths); divide to convert back. The two ``EV..._IN_...``
factors go the other way, from eqff's energies and forces to OpenMM's kJ/mol and kJ/mol/nm
(OpenMM positions in nm are multiplied by :data:`NANOMETRE`).

The factors are those of ASE's default constants, CODATA 2014 (1 kcal/mol = 0.0433641 eV). The
rMD17 energies are totals of thousands of eV (about −17,600 eV for aspirin), so a kcal/mol factor
from another CODATA release shifts a converted total energy by several meV: energy errors within
eqff are unaffected, but compare absolute energies with another code only in the same units.
"""

from typing import Final

from ase import units

CODATA_RELEASE: Final[str] = f"CODATA {units.__codata_version__}"
"""The release of the physical constants behind every factor here (ASE's default)."""

KCAL_PER_MOL: Final[float] = units.kcal / units.mol
"""1 kcal/mol in eV."""

KJ_PER_MOL: Final[float] = units.kJ / units.mol
"""1 kJ/mol in eV."""

HARTREE: Final[float] = units.Hartree
"""1 Hartree in eV."""

NANOMETRE: Final[float] = units.nm
"""1 nm in Å."""

BOHR: Final[float] = units.Bohr
"""1 Bohr in Å."""

EV_IN_KJ_PER_MOL: Final[float] = 1.0 / KJ_PER_MOL
"""1 eV in kJ/mol: multiplies an eqff energy to give it in OpenMM's unit."""

EV_PER_ANGSTROM_IN_KJ_PER_MOL_PER_NM: Final[float] = NANOMETRE / KJ_PER_MOL
"""1 eV/Å in kJ/mol/nm: multiplies an eqff force to give it in OpenMM's unit."""

ENERGY_UNITS: Final[dict[str, float]] = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": KCAL_PER_MOL,
    "kJ/mol": KJ_PER_MOL,
    "Hartree": HARTREE,
}
"""Energy units that data files may use, with their value in eV."""

LENGTH_UNITS: Final[dict[str, float]] = {"Å": 1.0, "A": 1.0, "nm": NANOMETRE, "Bohr": BOHR}
"""Length units that data files may use, with their value in Å."""


def energy_unit_factor(unit: str) -> float:
    """Return the value of one ``unit`` in eV; raise ``ValueError`` for an unknown unit."""
    try:
        return ENERGY_UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown energy unit {unit!r}; known: {sorted(ENERGY_UNITS)}") from None


def length_unit_factor(unit: str) -> float:
    """Return the value of one ``unit`` in Å; raise ``ValueError`` for an unknown unit."""
    try:
        return LENGTH_UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown length unit {unit!r}; known: {sorted(LENGTH_UNITS)}") from None
