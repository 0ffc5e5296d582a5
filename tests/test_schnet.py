"""SchNet: the Gaussian basis and its blocks, the physics suite, model files, TorchScript, ASE and OpenMM.

The model is a tiny SchNet (16 features, 2 interactions, 8 Gaussians) with random weights and
non-trivial energy statistics.
"""

import inspect
import math

import numpy as np
import pytest
import torch

from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.models import ARCHITECTURES, SchNet, build_model
from eqff.models.schnet import FilterNetworks, ShiftedSoftplus
from eqff.nn.mlp import mlp
from eqff.nn.radial import GAUSSIAN_MIN_EXPONENT, GaussianBasis
from eqff.testing import ModelTests, evaluate
from eqff.testing.engines import EngineTests


CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = {"cutoff": CUTOFF, "num_features": 16, "num_interactions": 2, "num_radial": 8}
"""A SchNet small enough for the physics suite to run in seconds."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O, as in conftest: non-trivial energy statistics."""
ENERGY_SCALE = 10.0
"""eV. At unit scale the tiny random SchNet's forces on the rattled diamond cell are about 1.5e-3
eV/Å; this scale brings them to the order of the PaiNN fixture's, so that the float32 checks
(tolerance 1e-4 eV/Å) are not vacuous."""


def _make_schnet(seed: int = 0) -> SchNet:
    """The tiny SchNet (float32), seeded without touching the global RNG, energy statistics set."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SchNet(ELEMENTS, **TINY)
    model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS), ENERGY_SCALE)
    return model.eval()


@pytest.fixture
def schnet_model() -> SchNet:
    return _make_schnet()


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


def test_gaussian_basis_matches_its_definition():
    basis = GaussianBasis(5.0, 11, start=0.5).double()
    torch.testing.assert_close(basis.centres, torch.linspace(0.5, 5.0, 11, dtype=torch.float64))
    distances = torch.tensor([0.0, 0.7, 2.5, 4.99], dtype=torch.float64)
    width = 4.5 / 10
    expected = torch.exp(-((distances[:, None] - basis.centres) ** 2) / (2 * width**2))  # (4, 11)
    torch.testing.assert_close(basis(distances), expected)
    # Neighbouring Gaussians cross at half the spacing, at e^(−1/8) of their peak.
    midpoint = basis(torch.tensor([0.5 + width / 2], dtype=torch.float64))[0]
    torch.testing.assert_close(midpoint[:2], torch.full((2,), math.exp(-1 / 8), dtype=torch.float64))


def test_gaussian_basis_clamps_far_tails_and_refuses_bad_arguments():
    basis = GaussianBasis(5.0, 20)
    far = basis(torch.tensor([5.0]))[0, 0]  # 5 Å from the first centre: e^(−187) without the clamp
    assert float(far) == pytest.approx(math.exp(GAUSSIAN_MIN_EXPONENT), rel=1e-5)
    for arguments in [(5.0, 1), (1.0, 4, 2.0)]:
        with pytest.raises(ValueError, match="num_radial"):
            GaussianBasis(*arguments)


def test_shifted_softplus():
    x = torch.linspace(-20.0, 20.0, 101, dtype=torch.float64)
    torch.testing.assert_close(ShiftedSoftplus()(x), torch.log1p(torch.exp(x)) - math.log(2.0))
    assert float(ShiftedSoftplus()(torch.zeros(()))) == 0.0


def test_stacked_filter_networks_are_separate_dense_networks():
    """Each of the L stacked networks is a dense layer, a shifted softplus and a dense layer, times u."""
    torch.manual_seed(0)
    networks = FilterNetworks(num_interactions=3, num_radial=5, num_features=4).double()
    basis, envelope = torch.rand(7, 5, dtype=torch.float64), torch.rand(7, 1, dtype=torch.float64)
    filters = networks(basis, envelope)  # (3, 7, 4)
    assert filters.shape == (3, 7, 4)
    for k in range(3):
        separate = mlp([5, 4, 4], activation=ShiftedSoftplus).double()
        with torch.no_grad():
            separate[0].weight.copy_(networks.input_weight[k].T)
            separate[0].bias.copy_(networks.input_bias[k, 0])
            separate[2].weight.copy_(networks.output_weight[k].T)
            separate[2].bias.copy_(networks.output_bias[k, 0])
        torch.testing.assert_close(filters[k], separate(basis) * envelope)
    # Initialised as nn.Linear initialises: U(−1/√fan_in, 1/√fan_in).
    with torch.no_grad():
        assert float(networks.input_weight.abs().max()) <= 1 / math.sqrt(5)
        assert float(networks.output_weight.abs().max()) <= 1 / math.sqrt(4)
        assert len({float(w.std()) for w in networks.output_weight}) == 3  # not copies of one network


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestSchNet(ModelTests, EngineTests):
    """Every check of the reusable physics suite (float32 and float64, reflections included)."""

    @pytest.fixture
    def model(self, schnet_model):
        return schnet_model

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2
        atomic_energies = evaluate(model, molecule)[keys.ATOMIC_ENERGIES]
        assert len(set(np.round(atomic_energies.numpy(), 6))) == len(molecule)


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["schnet"] is SchNet
    hyperparameters = {"elements": [1, 8], **TINY}
    model = build_model("schnet", hyperparameters)
    assert set(model.hyperparameters) == set(inspect.signature(SchNet).parameters)
    assert model.hyperparameters.items() >= hyperparameters.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8] and len(model.interactions) == 2
    with pytest.raises(ValueError, match="num_interactions"):
        build_model("schnet", {"elements": [1], "num_interactions": 0})
    with pytest.raises(ValueError, match="bad hyperparameters"):
        build_model("schnet", {"elements": [1], "num_filters": 8})


def test_defaults_are_schnetpacks_rmd17_size():
    model = SchNet([1, 6, 8])
    assert model.hyperparameters == {"elements": [1, 6, 8], "cutoff": 5.0, "num_features": 128,
                                     "num_interactions": 6, "num_radial": 20, "envelope_exponent": 6}  # fmt: skip
    assert model.filter_networks.output_weight.shape == (6, 128, 128)


def test_torchscript_matches_eager(schnet_model, periodic_atoms):
    scripted = torch.jit.script(schnet_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF, torch.float32)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], schnet_model(graph)[keys.ENERGY])

