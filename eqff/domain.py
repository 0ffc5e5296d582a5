"""A model's training domain: the compositions it was trained on, and a warning for any other.

Per-element energy offsets fitted on one composition cannot be told apart, so a potential applied
to a molecule of other proportions of the same elements can be off by electronvolts without any
error (``painn-aspirin`` on salicylic acid: 13.7 eV). The compositions of the training frames are
stored in the model file (``metadata["training_domain"]``, written by ``eqff train``), and
:class:`DomainCheck` warns once per composition outside them.

A composition is the reduced (empirical) formula in Hill order: aspirin is ``C9H8O4``, uracil ``C2H2NO``, and every
water box is ``H2O``, so that a model trained on one box size is not warned about another.
"""

import warnings
from collections import Counter
from collections.abc import Iterable

import numpy as np
from ase.formula import Formula
from ase.symbols import chemical_symbols

from eqff.errors import OutOfDomainWarning


def composition(atomic_numbers: Iterable[int]) -> str:
    """The reduced formula of atomic numbers (n,) in Hill order, e.g. ``C9H8O4``."""
    formula = Formula.from_list([chemical_symbols[int(z)] for z in atomic_numbers])
    return formula.reduce()[0].format("hill")


def training_domain(frames: Iterable[np.ndarray]) -> dict:
    """What a model file records of its training frames' chemistry.

    Args:
        frames: the atomic numbers (n,) of each training frame.

    Returns:
        ``compositions``: reduced formula → number of frames; ``elements``: element symbol →
        number of atoms of that element over all frames.
    """
    compositions: Counter[str] = Counter()
    elements: Counter[str] = Counter()
    for atomic_numbers in frames:
        compositions[composition(atomic_numbers)] += 1
        elements.update(chemical_symbols[int(z)] for z in atomic_numbers)
    return {"compositions": dict(sorted(compositions.items())), "elements": dict(sorted(elements.items()))}


class DomainCheck:
    """Warns (:class:`OutOfDomainWarning`) once per composition that is not in a training domain.

    Args:
        domain: a :func:`training_domain` dict, or ``None`` for a model without one (nothing is checked).
    """

    def __init__(self, domain: dict | None) -> None:
        self.compositions = set(domain["compositions"]) if domain else None
        self._seen: set[str] = set()
        self._last: np.ndarray | None = None

    def __call__(self, atomic_numbers: np.ndarray) -> None:
        """Check one structure's atomic numbers (n,); the same numbers as the last call cost one comparison."""
        if self.compositions is None or (self._last is not None and np.array_equal(atomic_numbers, self._last)):
            return
        self._last = np.array(atomic_numbers)
        found = composition(atomic_numbers)
        if found in self.compositions or found in self._seen:
            return
        self._seen.add(found)
        warnings.warn(
            f"this structure's composition {found} never occurred in the model's training frames "
            f"({', '.join(sorted(self.compositions))}); its energies may be far off (per-element offsets "
            "fitted on other compositions) and its forces less accurate",
            OutOfDomainWarning,
            stacklevel=3,
        )
