"""Exceptions raised by eqff. All are ``ValueError`` subclasses so callers can catch either."""


class EqffInputError(ValueError):
    """A structure given to a model or calculator is unusable (NaN positions, bad cell, shapes)."""


class UnknownElementError(EqffInputError):
    """A structure contains an element the model was not trained on."""


class DataFileError(ValueError):
    """A data file is missing, malformed, or holds values that cannot be used."""


class ModelFileError(ValueError):
    """A model file is corrupt, truncated, or incompatible with this version of eqff."""


class ModelCompileError(RuntimeError):
    """``torch.compile`` cannot turn a model's energy and forces into one graph."""
