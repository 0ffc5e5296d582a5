"""eqff: equivariant graph neural network force fields for molecular dynamics.

``EqffCalculator``, ``predict``, ``load_model`` and ``save_model`` are imported on first use, so that importing
a light submodule (openmm-ml imports :mod:`eqff.integrations.openmm` whenever it is imported
itself) does not import torch.
"""

import importlib
from importlib.metadata import version

__version__ = version("eqff")

_PUBLIC = {
    "EqffCalculator": "eqff.integrations.ase",
    "predict": "eqff.prediction",
    "load_model": "eqff.model_file",
    "save_model": "eqff.model_file",
}
"""Public name → the module that defines it."""

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'eqff' has no attribute {name!r}")
