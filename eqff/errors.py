"""Exceptions raised by eqff.

Bad input from a user (a structure, a data file, a model file, a training config) raises a subclass
of :class:`EqffError`; ``eqff``'s command line prints such an error as one ``error: ...`` line.
All are ``ValueError`` subclasses, so callers can catch either.
"""

from collections.abc import Iterable

from ase.data import chemical_symbols


def element_names(atomic_numbers: Iterable[int]) -> str:
    """Elements as error messages name them: symbols with atomic numbers, sorted, e.g. ``C (6), S (16)``."""
    return ", ".join(f"{chemical_symbols[z]} ({z})" for z in sorted({int(z) for z in atomic_numbers}))


class EqffError(ValueError):
    """Bad input from a user; the message names the problem."""


class EqffInputError(EqffError):
    """A structure given to a model or calculator is unusable (NaN positions, bad cell, shapes)."""


class UnknownElementError(EqffInputError):
    """A structure contains an element the model was not trained on."""


class DataFileError(EqffError):
    """A data file is missing, malformed, or holds values that cannot be used."""


class ModelFileError(EqffError):
    """A model file is corrupt, truncated, or incompatible with this version of eqff."""


class ModelCompileError(RuntimeError):
    """``torch.compile`` cannot turn a model's energy and forces into one graph."""


class OutOfDomainWarning(UserWarning):
    """A structure's composition never occurred in the model's training frames (:mod:`eqff.domain`)."""
