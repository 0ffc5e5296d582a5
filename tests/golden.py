"""Golden values of the shipped potentials: float64 energy and forces of each one's example
structure (the first rMD17 train_01 frame of its molecule, stored in the model file).

``tests/test_potentials.py`` recomputes them and compares with ``tests/data/golden_potentials.json``.
After retraining a shipped potential on purpose, write them again with ``python tests/golden.py``.
"""

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from eqff import EqffCalculator
from eqff.model_file import read_model_file, resolve_model_path, shipped_potentials

GOLDEN_FILE = Path(__file__).resolve().parent / "data" / "golden_potentials.json"
RELATIVE_TOLERANCE = 1e-6
"""Of the energy, and of the forces relative to the largest force component."""


def example_structure(potential: str) -> Atoms:
    """The structure stored in a model file's metadata."""
    example = read_model_file(resolve_model_path(potential))["metadata"]["example_structure"]
    return Atoms(numbers=example["atomic_numbers"], positions=example["positions"])


def golden_values(calculator: EqffCalculator, atoms: Atoms) -> dict[str, float | list[list[float]]]:
    """Energy (eV) and forces ((n, 3) eV/Å) of ``atoms`` by ``calculator`` (float64)."""
    atoms = atoms.copy()
    atoms.calc = calculator
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()}


def differences(computed: dict, stored: dict) -> tuple[float, float]:
    """Relative differences of energy and of forces (against the largest stored component)."""
    energy = abs(computed["energy"] - stored["energy"]) / abs(stored["energy"])
    reference = np.asarray(stored["forces"])
    forces = float(np.abs(np.asarray(computed["forces"]) - reference).max() / np.abs(reference).max())
    return energy, forces


def main() -> None:
    values = {
        name: golden_values(EqffCalculator(name, dtype="float64"), example_structure(name)) for name in shipped_potentials()
    }
    GOLDEN_FILE.parent.mkdir(exist_ok=True)
    GOLDEN_FILE.write_text(json.dumps(values, indent=1) + "\n")
    print(f"wrote {GOLDEN_FILE} ({len(values)} potentials)")


if __name__ == "__main__":
    main()
