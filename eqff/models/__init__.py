"""Energy models. Each maps an eqff graph to per-frame and per-atom energies (eV)."""

from torch import nn

from eqff.models.committee import Committee
from eqff.models.dimenet import DimeNetPlusPlus
from eqff.models.egnn import EGNN
from eqff.models.gemnet import GemNetT
from eqff.models.painn import PaiNN
from eqff.models.ponita import Ponita
from eqff.models.schnet import SchNet
from eqff.models.segnn import SEGNN
from eqff.models.tfn import TFN

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "painn": PaiNN,
    "gemnet-t": GemNetT,
    "ponita": Ponita,
    "segnn": SEGNN,
    "tfn": TFN,
    "schnet": SchNet,
    "egnn": EGNN,
    "dimenet++": DimeNetPlusPlus,
    "committee": Committee,
}
"""Architecture name (as stored in model files and configs) → model class."""


def build_model(architecture: str, hyperparameters: dict) -> nn.Module:
    """A freshly initialised model; raise ``ValueError`` for an unknown architecture or argument."""
    try:
        model_class = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}") from None
    try:
        return model_class(**hyperparameters)
    except TypeError as error:
        raise ValueError(f"bad hyperparameters for {architecture!r}: {error}") from None


def architecture_name(model: nn.Module) -> str:
    """The registered name of ``model``'s class; raise ``ValueError`` for any other class."""
    name = next((name for name, cls in ARCHITECTURES.items() if type(model) is cls), None)
    if name is None:
        raise ValueError(f"{type(model).__name__} is not a registered eqff architecture")
    return name
