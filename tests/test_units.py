"""eqff.data.units: factors derived from ase.units, and round trips between units."""

import math

import pytest
from ase import units as ase_units

from eqff.data import units


def test_factors_are_those_of_ase():
    assert units.KCAL_PER_MOL == ase_units.kcal / ase_units.mol
    assert units.KJ_PER_MOL == ase_units.kJ / ase_units.mol
    assert units.HARTREE == ase_units.Hartree
    assert units.NANOMETRE == ase_units.nm
    assert units.BOHR == ase_units.Bohr


def test_factors_against_independent_reference_values():
    """CODATA-derived values, to catch an inverted or mistyped factor (not a copy of ase.units)."""
    assert 1.0 / units.KCAL_PER_MOL == pytest.approx(23.0605, rel=1e-5)  # kcal/mol per eV
    assert 1.0 / units.KJ_PER_MOL == pytest.approx(96.4853, rel=1e-5)  # kJ/mol per eV
    assert units.KCAL_PER_MOL / units.KJ_PER_MOL == pytest.approx(4.184, rel=1e-12)  # thermochemical calorie
    assert units.HARTREE == pytest.approx(27.2114, rel=1e-5)
    assert units.NANOMETRE == pytest.approx(10.0, rel=1e-12)
    assert units.BOHR == pytest.approx(0.529177, rel=1e-5)


@pytest.mark.parametrize("value", [1.0, -3.7, 1234.5678, 1e-9])
def test_energy_round_trips(value):
    in_ev = value * units.KCAL_PER_MOL  # kcal/mol → eV
    assert in_ev / units.KCAL_PER_MOL == pytest.approx(value, rel=1e-14)
    in_kj = in_ev / units.KJ_PER_MOL  # eV → kJ/mol
    assert in_kj == pytest.approx(4.184 * value, rel=1e-12)
    # kJ/mol → eV → kcal/mol
    assert in_kj * units.KJ_PER_MOL / units.KCAL_PER_MOL == pytest.approx(value, rel=1e-14)


@pytest.mark.parametrize("value", [1.0, 0.1234, 57.0])
def test_length_round_trips(value):
    in_angstrom = value * units.NANOMETRE
    assert in_angstrom == pytest.approx(10.0 * value, rel=1e-14)
    assert in_angstrom / units.NANOMETRE == pytest.approx(value, rel=1e-14)


def test_force_conversion_kcal_per_mol_per_angstrom_to_ev_per_angstrom():
    """MD17 forces (kcal/mol/Å) to eqff's eV/Å and OpenMM's kJ/mol/nm, and back."""
    force = 10.0  # kcal/mol/Å
    ev_per_angstrom = force * units.KCAL_PER_MOL / 1.0
    kj_per_mol_per_nm = ev_per_angstrom / units.KJ_PER_MOL * units.NANOMETRE
    assert kj_per_mol_per_nm == pytest.approx(force * 4.184 * 10.0, rel=1e-12)
    back = kj_per_mol_per_nm * units.KJ_PER_MOL / units.NANOMETRE / units.KCAL_PER_MOL
    assert back == pytest.approx(force, rel=1e-14)


def test_unit_tables():
    for name, factor in units.ENERGY_UNITS.items():
        assert units.energy_unit_factor(name) == factor
        assert math.isfinite(factor) and factor > 0
    for name, factor in units.LENGTH_UNITS.items():
        assert units.length_unit_factor(name) == factor
    assert units.energy_unit_factor("eV") == 1.0
    assert units.energy_unit_factor("meV") == pytest.approx(1e-3)
    assert units.energy_unit_factor("kcal/mol") == units.KCAL_PER_MOL
    assert units.energy_unit_factor("kJ/mol") == units.KJ_PER_MOL
    assert units.length_unit_factor("Å") == units.length_unit_factor("A") == 1.0
    assert units.length_unit_factor("nm") == units.NANOMETRE


@pytest.mark.parametrize("unit", ["kcal", "ev", "kJ/mole", ""])
def test_unknown_energy_unit(unit):
    with pytest.raises(ValueError, match="unknown energy unit.*known"):
        units.energy_unit_factor(unit)


@pytest.mark.parametrize("unit", ["nanometre", "pm", "angstrom"])
def test_unknown_length_unit(unit):
    with pytest.raises(ValueError, match="unknown length unit.*known"):
        units.length_unit_factor(unit)
