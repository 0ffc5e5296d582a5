"""ASE molecular dynamics as ``eqff md``, ``eqff report`` and the examples run it.

Initial velocities are Maxwell–Boltzmann without centre-of-mass motion or rotation; NVE is
``ase.md.verlet.VelocityVerlet``, NVT is ``ase.md.langevin.Langevin`` with ``fixcm=False``
(ASE's centre-of-mass fixing biases the NVT distribution of a small molecule). Every run shows a
tqdm progress bar. Times in fs (steps) and ps (records), energies in eV, temperatures in K.
"""

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from tqdm import tqdm


HBAR = units._hbar * units.J * units.s
"""ħ in ASE's units of angular momentum (eV × ASE time)."""


def set_initial_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann velocities at ``temperature`` (K), without centre-of-mass motion or rotation."""
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)


def velocity_verlet(atoms: Atoms, timestep: float) -> VelocityVerlet:
    """NVE dynamics of ``atoms`` with ``timestep`` fs."""
    return VelocityVerlet(atoms, timestep * units.fs)


def langevin(atoms: Atoms, timestep: float, temperature: float, friction: float, rng: np.random.Generator) -> Langevin:
    """Langevin NVT dynamics: ``timestep`` fs, ``temperature`` K, ``friction`` 1/fs, noise from ``rng``."""
    return Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                    fixcm=False, rng=rng)  # fmt: skip


def run_with_progress(
    dynamics: MolecularDynamics,
    steps: int,
    interval: int,
    status: Callable[[], dict[str, str]],
    description: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> float:
    """Run ``steps`` MD steps behind a tqdm progress bar and return the wall time in s.

    Observers attached to ``dynamics`` run as usual (at step 0, then at their own intervals);
    the bar's postfix is refreshed from ``status()`` every ``interval`` steps. ``stop()``, if
    given, is asked after every step, and the run ends early once it answers ``True``
    (``dynamics.nsteps`` then counts the steps run).
    """
    start = time.perf_counter()
    with tqdm(total=steps, unit="step", desc=description) as bar:
        for _ in range(steps):
            dynamics.run(1)
            bar.update(1)
            if bar.n % interval == 0:
                bar.set_postfix(status())
            if stop is not None and stop():
                break
    return time.perf_counter() - start


class NVERun(NamedTuple):
    """Energies recorded along an NVE run."""

    samples: dict[str, np.ndarray]
    """``time_ps``, ``potential_eV``, ``kinetic_eV``, ``total_eV`` and ``temperature_K``, each (n,)."""
    wall: float
    """s of wall time for the steps."""


def run_nve(
    atoms: Atoms, steps: int, timestep: float, interval: int, temperature: float, seed: int, description: str | None = None
) -> NVERun:
    """Velocity-Verlet MD of ``atoms`` (with a calculator attached) from velocities at ``temperature`` K.

    Energies and the length of the angular momentum about the centre of mass (in ħ; zero at
    the start, and conserved by the dynamics only if the forces exert no net torque) are
    recorded at step 0 and every ``interval`` steps; ``timestep`` in fs, ``seed`` seeds the
    initial velocities.
    """
    set_initial_velocities(atoms, temperature, np.random.default_rng(seed))
    dynamics = velocity_verlet(atoms, timestep)
    records: list[tuple[float, ...]] = []  # (time ps, potential eV, kinetic eV, temperature K, |L| ħ)

    def record() -> None:
        time_ps = dynamics.get_time() / (1e3 * units.fs)
        angular_momentum = float(np.linalg.norm(atoms.get_angular_momentum())) / HBAR
        records.append((time_ps, atoms.get_potential_energy(), atoms.get_kinetic_energy(), atoms.get_temperature(),
                        angular_momentum))  # fmt: skip

    dynamics.attach(record, interval=interval)
    status = lambda: {"T": f"{records[-1][3]:.0f} K", "E": f"{records[-1][1] + records[-1][2]:.4f} eV"}  # noqa: E731
    wall = run_with_progress(dynamics, steps, interval, status, description)
    times, potential, kinetic, temperatures, angular_momentum = np.array(records).T
    samples = {"time_ps": times, "potential_eV": potential, "kinetic_eV": kinetic,
               "total_eV": potential + kinetic, "temperature_K": temperatures,
               "angular_momentum_hbar": angular_momentum}  # fmt: skip
    return NVERun(samples, wall)


class NVTRun(NamedTuple):
    """Frames recorded along an NVT run."""

    positions: np.ndarray
    """(T, A, 3) Å, at step 0 and every ``interval`` steps."""
    temperatures: np.ndarray
    """(T,) K, of the same frames."""
    wall: float
    """s of wall time for the steps."""


def run_nvt(
    atoms: Atoms,
    steps: int,
    timestep: float,
    interval: int,
    temperature: float,
    friction: float,
    seed: int,
    description: str | None = None,
) -> NVTRun:
    """Langevin MD of ``atoms`` (with a calculator attached) at ``temperature`` K.

    Velocities start at ``temperature``; ``timestep`` in fs, ``friction`` in 1/fs; ``seed`` seeds
    the initial velocities and the thermostat noise.
    """
    rng = np.random.default_rng(seed)
    set_initial_velocities(atoms, temperature, rng)
    dynamics = langevin(atoms, timestep, temperature, friction, rng)
    frames, temperatures = [], []

    def record() -> None:
        frames.append(atoms.positions.copy())
        temperatures.append(atoms.get_temperature())

    dynamics.attach(record, interval=interval)
    wall = run_with_progress(dynamics, steps, interval, lambda: {"T": f"{temperatures[-1]:.0f} K"}, description)
    return NVTRun(np.array(frames), np.array(temperatures), wall)


def speed_line(steps: int, timestep: float, wall: float) -> str:
    """The summary line on speed: simulated ps, wall s, ns/day and ms/step (``timestep`` in fs)."""
    simulated_ps = steps * timestep * 1e-3
    ns_per_day = simulated_ps * 1e-3 / (wall / 86400)
    speed = f"{ns_per_day:.3f} ns/day, {1e3 * wall / steps:.2f} ms/step"
    return f"  simulated time      {simulated_ps:.3f} ps in {wall:.1f} s: {speed}"
