"""Checks that need a CUDA GPU (marker ``cuda``; skipped where there is none): every architecture's
CUDA results against CPU float64, a training run on CUDA, the OpenMM force on CUDA and the CUDA
rows of ``eqff bench``. ``.ci/gpu-check`` runs them on a GPU machine.
"""

import copy

import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule

import eqff
from eqff.cli import main
from eqff.md.systems import water_box
from eqff.models import ARCHITECTURES, build_model

DEVICE = "cuda"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def structures() -> list:
    """A rattled molecule and a periodic water box (192 atoms)."""
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    return [ethanol, water_box(64)]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_cuda_float64_equals_cpu_float64(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, {"elements": [1, 6, 8]})
    on_cpu = eqff.predict(copy.deepcopy(model), structures(), dtype="float64", device="cpu")
    on_gpu = eqff.predict(copy.deepcopy(model), structures(), dtype="float64", device=DEVICE)
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert abs(gpu.energy - cpu.energy) <= 1e-10 * max(1.0, abs(cpu.energy))
        np.testing.assert_allclose(gpu.forces, cpu.forces, rtol=0, atol=1e-10 * max(1.0, np.abs(cpu.forces).max()))
        if cpu.stress is not None:
            np.testing.assert_allclose(gpu.stress, cpu.stress, rtol=0, atol=1e-10 * max(1.0, np.abs(cpu.stress).max()))


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("architecture", ["painn", "gemnet-t"])
def test_cuda_md_keeps_static_shapes_and_equals_cpu(architecture, compile):
    """Velocity Verlet on a hot periodic water box on the GPU (static shapes: the Verlet list's
    pairs beyond the cutoff stay in the graph; compiled, a CUDA graph replayed between rebuilds):
    every step's forces equal a fresh CPU float64 calculation at the same positions."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    torch.manual_seed(0)
    model = build_model(architecture, {"elements": [1, 8], "cutoff": 4.0})
    atoms = water_box(64)
    MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
    on_gpu = eqff.EqffCalculator(copy.deepcopy(model), device=DEVICE, dtype="float64", compile=compile)
    on_cpu = eqff.EqffCalculator(copy.deepcopy(model), dtype="float64", skin=0.0)
    assert on_gpu.potential.energy_forces.static_shapes
    atoms.calc = on_gpu

    def compare():
        probe = atoms.copy()
        probe.calc = on_cpu
        np.testing.assert_allclose(atoms.get_forces(), probe.get_forces(), rtol=0, atol=1e-9)

    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dynamics.attach(compare, interval=1)
    dynamics.run(30)
    assert 2 <= on_gpu.potential.neighbours.num_builds < 30


def test_training_runs_on_cuda(tmp_path):
    """A two-epoch run of a small PaiNN on hand-labelled water frames, on the GPU."""
    from test_training import write_own_data

    write_own_data(tmp_path / "water.xyz", [8, 1, 1], 12)
    config = {
        "name": "on-gpu", "output_dir": str(tmp_path), "device": DEVICE,
        "data": {"dataset": "extxyz", "path": str(tmp_path / "water.xyz"), "energy_key": "E_total",
                 "forces_key": "F_total", "energy_unit": "kcal/mol", "num_train": 8, "num_validation": 2},
        "model": {"architecture": "painn", "hyperparameters": {"cutoff": 3.0, "num_features": 16, "num_interactions": 1}},
        "training": {"batch_size": 4, "validation_batch_size": 2, "max_epochs": 2},
    }  # fmt: skip
    path = tmp_path / "on-gpu.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    assert main(["train", str(path), "--no-progress"]) == 0
    model, content = eqff.load_model(tmp_path / "on-gpu" / "on-gpu.eqff")
    assert content["metadata"]["hardware"]["device"] != "cpu"
    assert np.isfinite(content["metadata"]["validation_forces_mae_meV_per_A"])


def test_the_openmm_force_on_cuda_equals_the_cpu_one():
    pytest.importorskip("openmmml")
    import openmm
    from openmm import unit
    from openmmml import MLPotential

    from eqff.integrations.openmm import molecule_topology

    ethanol = structures()[0]
    energies = []
    for device in ("cpu", DEVICE):
        system = MLPotential("eqff", modelPath="painn-aspirin").createSystem(
            molecule_topology(ethanol.numbers), precision="double", device=device
        )
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(ethanol.positions * 0.1)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert energies[1] == pytest.approx(energies[0], rel=1e-10)


def test_bench_prints_cuda_rows(capsys):
    assert main(["bench", "--devices", DEVICE, "--systems", "water-192", "--dtypes", "float32", "--repeats", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if " water-192 " in line]
    assert rows and all(row[4] == DEVICE for row in rows)
