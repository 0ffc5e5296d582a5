"""eqff: equivariant graph neural network force fields for molecular dynamics."""

from importlib.metadata import version

__version__ = version("eqff")

from eqff.integrations.ase import EqffCalculator  # noqa: E402
from eqff.model_file import load_model, save_model  # noqa: E402

__all__ = ["EqffCalculator", "load_model", "save_model", "__version__"]
