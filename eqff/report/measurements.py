"""The measurements ``eqff report`` makes of one model trained on rMD17.

Each function measures one thing on the model's own molecule and split (read from the model
file's metadata): test errors as ``eqff evaluate`` computes them, NVE energy drift, and NVT
stability and h(r) (protocol of Fu et al., see :mod:`eqff.md.observables`). Speed is measured by
:mod:`eqff.commands.bench`'s rows, and the peers' by :mod:`eqff.peers`.
"""

from dataclasses import dataclass

import numpy as np

from eqff.data.frames import Frame
from eqff.data.md17 import read_rmd17
from eqff.errors import ModelFileError
from eqff.integrations.ase import EqffCalculator
from eqff.model_file import load_model, read_model_file
from eqff.md.observables import (
    HR_BINS, bonds_of, distance_distribution, energy_drift, hr_mae, largest_bond_deviation, pair_distances, stability_frame,
)  # fmt: skip
from eqff.md.simulation import run_nve, run_nvt
from eqff.rotations import random_rotations
from eqff.train.metrics import evaluate

TIMESTEP = 0.5
"""fs: the time step of both MD runs (Fu et al.'s protocol for MD17)."""
NVE_TEMPERATURE = 300.0
"""K: initial velocities of the NVE run."""
NVE_INTERVAL = 10
"""steps between recorded energies of the NVE run."""
NVE_DTYPE = "float64"
"""NVE runs in float64, so the drift measures the model and integrator, not rounding."""
NVT_TEMPERATURE = 500.0
"""K: thermostat and initial velocities of the NVT run (Fu et al.)."""
NVT_FRICTION = 0.01
"""1/fs: Langevin friction of the NVT run."""
NVT_INTERVAL = 100
"""steps between recorded NVT frames (50 fs, as in Fu et al.)."""
NVT_DTYPE = "float32"
"""NVT runs in float32, the precision MD is usually run in."""


@dataclass(frozen=True)
class TrainingData:
    """The rMD17 molecule and split a model was trained on."""

    molecule: str
    split: int


def training_data(model: str) -> TrainingData:
    """The rMD17 molecule and split in ``model``'s metadata.

    Raises:
        ModelFileError: the model was not trained on one rMD17 molecule (the report compares against rMD17's
            test frames and reference distributions).
    """
    sources = read_model_file(model)["metadata"].get("dataset") or []
    if len(sources) != 1 or sources[0].get("dataset") != "rmd17":
        recorded = ", ".join(f"{s.get('dataset')} {s.get('molecule') or s.get('path')}" for s in sources) or "none"
        raise ModelFileError(
            f"{model}: eqff report needs a model trained on one rMD17 molecule (its test set and reference "
            f"frames), but the model file records training data: {recorded}"
        )
    return TrainingData(sources[0]["molecule"], int(sources[0]["split"]))


def errors_on_test_set(model: str, data: TrainingData, root: str | None) -> dict[str, float | int]:
    """The model's errors on rMD17 ``test_0N`` of its molecule and split, in the model's dtype on the CPU.

    The same numbers as ``eqff evaluate MODEL --dataset rmd17 --molecule M --split N --part test``
    (see :func:`eqff.train.metrics.error_report` for the keys).
    """
    network, _ = load_model(model)
    return evaluate(network, read_rmd17(data.molecule, data.split, "test", root))


def starting_frame(data: TrainingData, root: str | None) -> Frame:
    """The first frame of rMD17 ``train_0N``: where both MD runs start."""
    return read_rmd17(data.molecule, data.split, "train", root)[0]


@dataclass(frozen=True)
class NVEResult:
    """Energy conservation of an NVE run."""

    drift: float
    """meV/atom/ps: slope of a least-squares line through the total energy."""
    fluctuation: float
    """meV/atom: standard deviation of the total energy."""
    time_ps: np.ndarray
    """(n,) ps of the samples."""
    total_energy: np.ndarray
    """(n,) meV/atom: total energy minus its first value."""
    ms_per_step: float
    angular_momentum_drift: float
    """ħ/ps: the largest length of the angular momentum (zero at the start) over the run's length;
    round-off for a model whose forces exert no net torque."""


def nve_drift(model: str, data: TrainingData, picoseconds: float, root: str | None) -> NVEResult:
    """Velocity Verlet for ``picoseconds`` at :data:`TIMESTEP` fs in float64 from 300 K velocities (seed 0)."""
    atoms = starting_frame(data, root).to_atoms()
    atoms.calc = EqffCalculator(model, dtype=NVE_DTYPE)
    steps = round(picoseconds * 1e3 / TIMESTEP)
    samples, wall = run_nve(atoms, steps, TIMESTEP, NVE_INTERVAL, NVE_TEMPERATURE, seed=0, description="NVE")
    fit = energy_drift(samples["time_ps"], samples["total_eV"], len(atoms))
    per_atom = 1e3 * (samples["total_eV"] - samples["total_eV"][0]) / len(atoms)
    angular_momentum_drift = float(samples["angular_momentum_hbar"].max() / samples["time_ps"][-1])
    return NVEResult(fit.drift, fit.fluctuation, samples["time_ps"], per_atom, 1e3 * wall / steps, angular_momentum_drift)


def rotation_error(model: str, data: TrainingData, root: str | None, frames: int = 5, rotations: int = 10) -> float:
    """meV: the largest change of the float64 energy of the first ``frames`` rMD17 test frames under
    ``rotations`` random rotations each (:func:`eqff.rotations.random_rotations`, seed 0); round-off
    for an exactly invariant model."""
    calculator = EqffCalculator(model, dtype=NVE_DTYPE)
    largest = 0.0
    for frame in read_rmd17(data.molecule, data.split, "test", root)[:frames]:
        atoms = frame.to_atoms()
        atoms.calc = calculator
        reference = atoms.get_potential_energy()
        for rotation in random_rotations(rotations, seed=0).numpy():
            turned = atoms.copy()
            turned.positions = atoms.positions @ rotation.T
            turned.calc = calculator
            largest = max(largest, abs(turned.get_potential_energy() - reference))
    return 1e3 * largest


@dataclass(frozen=True)
class NVTResult:
    """Stability and structure of an NVT run at 500 K."""

    run_ps: float
    """ps simulated."""
    stable_ps: float
    """ps until the first frame with a bond more than 0.5 Å off its first-frame length (``run_ps`` if none)."""
    hr_mae: float
    """∫|h − h_ref| dr over the stable frames against all rMD17 ``train_0N`` frames."""
    r: np.ndarray
    """(n,) Å: h(r) bin centres."""
    h: np.ndarray
    """(n,) 1/Å: h(r) of the stable frames."""
    h_reference: np.ndarray
    """(n,) 1/Å: h(r) of the reference frames."""
    time_ps: np.ndarray
    """(T,) ps of the frames."""
    bond_deviation: np.ndarray
    """(T,) Å: largest |bond length − first-frame length| per frame."""
    ms_per_step: float


def nvt_stability(model: str, data: TrainingData, picoseconds: float, root: str | None) -> NVTResult:
    """Langevin MD at 500 K for ``picoseconds`` at :data:`TIMESTEP` fs in float32 (seed 0), judged as Fu et al."""
    reference = read_rmd17(data.molecule, data.split, "train", root)
    atoms = reference[0].to_atoms()
    atoms.calc = EqffCalculator(model, dtype=NVT_DTYPE)
    steps = round(picoseconds * 1e3 / TIMESTEP)
    positions, _, wall = run_nvt(
        atoms, steps, TIMESTEP, NVT_INTERVAL, NVT_TEMPERATURE, NVT_FRICTION, seed=0, description="NVT"
    )
    bonds = bonds_of(reference[0].to_atoms())
    unstable = stability_frame(positions, bonds)
    frame_ps = NVT_INTERVAL * TIMESTEP * 1e-3
    h = distance_distribution(pair_distances(positions[:unstable]))
    h_reference = distance_distribution(pair_distances(np.array([frame.positions for frame in reference])))
    return NVTResult(
        run_ps=steps * TIMESTEP * 1e-3,
        stable_ps=steps * TIMESTEP * 1e-3 if unstable is None else unstable * frame_ps,
        hr_mae=hr_mae(h, h_reference),
        r=0.5 * (HR_BINS[1:] + HR_BINS[:-1]),
        h=h,
        h_reference=h_reference,
        time_ps=frame_ps * np.arange(len(positions)),
        bond_deviation=largest_bond_deviation(positions, bonds),
        ms_per_step=1e3 * wall / steps,
    )

