"""TFN: the convolution paths and layer, the physics suite, model files, TorchScript, ASE and OpenMM.

The model is a tiny TFN (4 channels up to l = 2, two layers: the first builds l = 1, 2 features
from the edge directions, the second reads them back into scalars), built once per module in
float64, as SEGNN's tests build theirs (see :mod:`eqff.models.tfn` on precision).
"""

import copy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

from eqff import EqffCalculator
from eqff.data import keys
from eqff.data.graph import atoms_to_graph
from eqff.models import ARCHITECTURES, TFN, build_model
from eqff.models.tfn import TFNLayer, convolution_paths
from eqff.nn.steerable import scalar_gate, with_compiled_gates
from eqff.testing import FLOAT_TOLERANCE, ModelTests, evaluate
from eqff.testing.engines import EngineTests

CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]
TINY = {"cutoff": CUTOFF, "num_channels": 4, "l_max": 2, "num_layers": 2, "num_radial": 4, "radial_hidden": 8}
"""A TFN small enough for the physics suite to run in seconds."""
ENERGY_OFFSETS = [-13.6, -37.8, -54.6, -75.1]
"""eV per atom of H, C, N, O, as in conftest: non-trivial energy statistics."""
ENERGY_SCALE = 1.7
"""eV, as in conftest."""
SH = o3.Irreps.spherical_harmonics(2)
HIDDEN = o3.Irreps("3x0e+2x1o+2x2e")


@contextmanager
def float64_seeded() -> Iterator[None]:
    """Seed 0 and float64 as the default dtype (e3nn's Clebsch–Gordan coefficients in float64), both
    restored on exit."""
    default_dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(default_dtype)


def _make_tfn(**overrides) -> TFN:
    """The tiny TFN, built and kept in float64, with radial weights of order 1.

    At initialisation the radial MLPs' outputs are small (see :mod:`eqff.models.tfn`), and the
    forces on the diamond cell about 2e-3 eV/Å; radial weights of order 1, as training makes them,
    let the convolutions shape the energy, so that the checks are not vacuous.
    """
    with float64_seeded():
        model = TFN(ELEMENTS, **{**TINY, **overrides})
        for layer in model.layers:
            nn.init.normal_(layer.radial_weights[-1].bias)
    model.scale_shift.set_statistics(torch.tensor(ENERGY_OFFSETS, dtype=torch.float64), ENERGY_SCALE)
    return model.eval()


@pytest.fixture(scope="module")
def tfn_model() -> TFN:
    """The tiny TFN in float64; tests must not modify it (the physics checks work on copies)."""
    return _make_tfn()


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


def test_convolution_paths_are_the_allowed_products_sorted_by_irrep():
    irreps_paths, instructions = convolution_paths(HIDDEN, SH, HIDDEN)
    # 0e ⊗ (0e, 1o, 2e); 1o ⊗ 0e → 1o, 1o ⊗ 1o → 0e, 2e, 1o ⊗ 2e → 1o; 2e ⊗ 0e → 2e, 2e ⊗ 1o → 1o,
    # 2e ⊗ 2e → 0e, 2e (1e, 2o, 3o, 3e, 4e are not in HIDDEN).
    assert len(instructions) == 11
    assert irreps_paths.simplify() == o3.Irreps("7x0e+9x1o+9x2e")
    for index_in, index_sh, index_out, mode, weighted in instructions:
        assert mode == "uvu" and weighted
        assert irreps_paths[index_out].mul == HIDDEN[index_in].mul
        assert irreps_paths[index_out].ir in HIDDEN[index_in].ir * SH[index_sh].ir
    scalars_only, _ = convolution_paths(HIDDEN, SH, o3.Irreps("3x0e"))
    assert scalars_only == o3.Irreps("3x0e+2x0e+2x0e")


@pytest.mark.parametrize("irreps_in", [o3.Irreps("3x0e"), HIDDEN])
def test_layer_is_equivariant(irreps_in):
    """Rotating (and reflecting) the edge vectors and the input features rotates the output.

    All in float64 (e3nn builds its harmonics and Wigner matrices in the default dtype).
    """
    with float64_seeded():
        layer = TFNLayer(irreps_in, SH, HIDDEN, num_elements=2, num_radial=4, radial_hidden=8,
                         average_num_neighbours=2.0)  # fmt: skip
        edge_index = torch.tensor([[0, 0, 1, 2, 2], [1, 2, 0, 0, 1]])
        vectors = torch.randn(5, 3)
        one_hot = torch.eye(2)[[0, 1, 1]]  # (3, 2)
        radial = torch.randn(5, 4)  # invariant
        h = irreps_in.randn(3, -1)

        def output(rotation: torch.Tensor) -> torch.Tensor:
            edge_sh = o3.spherical_harmonics(SH, vectors @ rotation.T, normalize=True, normalization="component")
            return layer(h @ irreps_in.D_from_matrix(rotation).T, one_hot, edge_sh, radial, edge_index)

        rotation = -o3.rand_matrix()  # a rotation times the inversion
        expected = output(torch.eye(3)) @ HIDDEN.D_from_matrix(rotation).T
        torch.testing.assert_close(output(rotation), expected, rtol=1e-10, atol=1e-10)
    assert expected[:, 3:].abs().max() > 1e-3  # the l > 0 outputs are not trivially zero


def test_scalar_gate_has_one_gate_per_non_scalar_and_needs_scalars_first():
    gate = scalar_gate(HIDDEN)
    assert isinstance(gate, Gate) and gate.irreps_out == HIDDEN
    assert gate.irreps_in.simplify() == o3.Irreps("7x0e+2x1o+2x2e")  # 3 scalars and 4 gates
    assert scalar_gate(o3.Irreps("3x0e")).irreps_in == o3.Irreps("3x0e")
    with pytest.raises(ValueError, match="scalars first"):
        scalar_gate(o3.Irreps("1x1o+2x0e"))


def test_with_compiled_gates_shares_the_weights_and_leaves_the_original_alone(tfn_model):
    prepared = with_compiled_gates(tfn_model)
    assert all(type(layer.gate) is Gate for layer in tfn_model.layers)
    assert all(isinstance(layer.gate, torch.jit.ScriptModule) for layer in prepared.layers)
    assert prepared.readout[0].weight is tfn_model.readout[0].weight


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TestTFN(ModelTests, EngineTests):
    """Every check of the reusable physics suite (float32 and float64, reflections included)."""

    @pytest.fixture
    def model(self, tfn_model):
        return tfn_model

    def test_forces_are_not_trivial(self, model, molecule, periodic_atoms):
        """Guards the other tests: a model whose forces are all ~0 would pass them vacuously."""
        for atoms in (molecule, periodic_atoms):
            assert evaluate(model, atoms)[keys.FORCES].abs().max() > 1e-2
        atomic_energies = evaluate(model, molecule)[keys.ATOMIC_ENERGIES]
        assert len(set(np.round(atomic_energies.numpy(), 6))) == len(molecule)


def test_registered_and_built_from_hyperparameters():
    """``hyperparameters`` holds every constructor argument, so that model files rebuild the model."""
    assert ARCHITECTURES["tfn"] is TFN
    hyperparameters = {"elements": [1, 8], **TINY}
    model = build_model("tfn", hyperparameters)
    assert set(model.hyperparameters) == set(inspect.signature(TFN).parameters)
    assert model.hyperparameters.items() >= hyperparameters.items()
    assert model.cutoff == CUTOFF and model.elements == [1, 8]
    assert model.irreps_hidden == o3.Irreps("4x0e+4x1o+4x2e")
    assert [layer.irreps_out for layer in model.layers] == [model.irreps_hidden, o3.Irreps("4x0e")]
    for bad in ({"num_layers": 0}, {"l_max": -1}, {"average_num_neighbours": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_model("tfn", {"elements": [1], **bad})


def test_one_layer_is_an_invariant_distance_model():
    """With one layer the scalars see only scalars: 0e ⊗ 0e is the one path."""
    model = _make_tfn(num_layers=1)
    (layer,) = model.layers
    assert layer.irreps_in == layer.irreps_out == o3.Irreps("4x0e")
    assert len(layer.convolution.instructions) == 1


def test_torchscript_matches_eager_and_leaves_the_model_alone(tfn_model, periodic_atoms):
    scripted = torch.jit.script(tfn_model)
    graph = atoms_to_graph(periodic_atoms, CUTOFF)
    torch.testing.assert_close(scripted(graph)[keys.ENERGY], tfn_model(graph)[keys.ENERGY])
    assert all(type(layer.gate) is Gate for layer in tfn_model.layers)  # the eager model keeps e3nn's gates
    assert scripted.readout[0].weight.data_ptr() == tfn_model.readout[0].weight.data_ptr()  # shared weights


def test_float32_calculator_gives_the_models_float32_results(tfn_model, molecule):
    """The float64 calculator is checked by EngineTests; TFN is built in float64, so check float32 too."""
    molecule.calc = EqffCalculator(copy.deepcopy(tfn_model), dtype="float32")
    energy, forces = molecule.get_potential_energy(), molecule.get_forces()
    expected = evaluate(tfn_model, molecule, torch.float32)
    tolerance = FLOAT_TOLERANCE[torch.float32]
    assert energy == pytest.approx(float(expected[keys.ENERGY]), abs=tolerance * abs(energy))
    np.testing.assert_allclose(forces, expected[keys.FORCES].numpy(), rtol=0, atol=tolerance)


def test_openmm_torch_module(tfn_model, molecule):
    """The TorchScript module openmm-torch's TorchForce would run: the model's energy in kJ/mol."""
    pytest.importorskip("openmmml", reason="openmm-ml is not installed")
    pytest.importorskip("vesin_torch", reason="vesin-torch is not installed")
    from eqff.data.units import EV_IN_KJ_PER_MOL, NANOMETRE
    from eqff.integrations.openmm import build_torch_module

    module = build_torch_module(tfn_model, molecule.numbers, list(range(len(molecule))))
    energy = module(torch.tensor(molecule.positions / NANOMETRE))
    expected = float(evaluate(tfn_model, molecule)[keys.ENERGY]) * EV_IN_KJ_PER_MOL
    assert float(energy.detach()) == pytest.approx(expected, rel=1e-12)
