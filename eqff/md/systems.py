"""Structures built on the fly for benchmarks and examples."""

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from scipy.spatial.transform import Rotation

from eqff.data.md17 import MOLECULES, read_rmd17
from eqff.errors import DataFileError

WATER_MOLAR_MASS = 18.015  # g/mol

WATER_BOXES = {"water-192": 64, "water-1029": 343, "water-10125": 3375}
"""Benchmark water boxes: name → number of molecules (1.0 g/cm³)."""

WATER_TRAJECTORY_TIMESTEP_FS = 0.5
"""fs between the frames of :func:`water_trajectory`: a step of flexible-water MD."""

WATER_TRAJECTORY_EQUILIBRATION_PS = 1.0
"""ps of 300 K dynamics after the energy minimisation, before the first frame is kept."""


def water_box(num_molecules: int, density: float = 1.0, seed: int = 0) -> Atoms:
    """A periodic cube of randomly oriented water molecules on a cubic lattice.

    Args:
        num_molecules: number of H2O molecules; the lattice is the smallest cube that holds them.
        density: g/cm³; sets the cube edge.
        seed: for the molecular orientations.

    Returns:
        ``Atoms`` with 3 × num_molecules atoms, pbc and a cubic cell, positions in Å.
    """
    volume = num_molecules * WATER_MOLAR_MASS / units.mol / density * 1e24  # Å³ (1 cm³ = 1e24 Å³)
    edge = volume ** (1 / 3)
    per_side = int(np.ceil(num_molecules ** (1 / 3)))
    spacing = edge / per_side
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:num_molecules]
    centres = (grid + 0.5) * spacing  # (M, 3)
    water = molecule("H2O")
    local = water.positions - water.get_center_of_mass()  # (3, 3)
    rotations = Rotation.random(num_molecules, random_state=seed).as_matrix()  # (M, 3, 3)
    positions = centres[:, None, :] + np.einsum("mij,aj->mai", rotations, local)  # (M, 3, 3)
    numbers = np.tile(water.numbers, num_molecules)
    return Atoms(numbers=numbers, positions=positions.reshape(-1, 3), cell=np.eye(3) * edge, pbc=True)


def water_trajectory(box: Atoms, num_frames: int, seed: int = 0) -> np.ndarray:
    """Frames of a 300 K molecular-dynamics trajectory of a water box, by OpenMM's flexible TIP3P-FB water.

    A classical water model, so that any eqff model can be timed along real liquid motion
    (neighbour pairs crossing the cutoff at the rate MD produces them) whatever it was trained on.
    The box is minimised, equilibrated for :data:`WATER_TRAJECTORY_EQUILIBRATION_PS` with a
    Langevin thermostat (1/ps), and then one frame is kept every
    :data:`WATER_TRAJECTORY_TIMESTEP_FS` step, on one CPU thread.

    Args:
        box: a water box of :func:`water_box` (atoms in O, H, H order per molecule, cubic cell).
        num_frames: frames to return.
        seed: of the velocities and the thermostat.

    Returns:
        (num_frames, n, 3) positions in Å, not wrapped into the cell.
    """
    import openmm
    from openmm import app, unit

    num_molecules = len(box) // 3
    edge = box.cell[0, 0] / 10  # nm
    topology = app.Topology()
    chain = topology.addChain()
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(num_molecules):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", oxygen, residue)
        topology.addBond(o, topology.addAtom("H1", hydrogen, residue))
        topology.addBond(o, topology.addAtom("H2", hydrogen, residue))
    topology.setPeriodicBoxVectors(np.eye(3) * edge)
    cutoff = min(0.9, edge / 2 - 0.01)  # nm: PME's real-space cutoff, below half the box
    system = app.ForceField("amber14/tip3pfb.xml").createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer, rigidWater=False, constraints=None
    )
    timestep = WATER_TRAJECTORY_TIMESTEP_FS * unit.femtosecond
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, timestep)
    integrator.setRandomNumberSeed(seed + 1)  # OpenMM draws a random seed for 0
    platform = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(topology, system, integrator, platform, {"Threads": "1"})
    simulation.context.setPositions(box.positions * unit.angstrom)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, seed + 1)
    simulation.step(round(1000 * WATER_TRAJECTORY_EQUILIBRATION_PS / WATER_TRAJECTORY_TIMESTEP_FS))
    frames = np.empty((num_frames, len(box), 3))
    for frame in frames:
        simulation.step(1)
        frame[:] = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return frames


def benchmark_system(name: str, data_root: str | None) -> Atoms:
    """The structure called ``name``: an rMD17 molecule (its first train_01 frame, read from the
    data folder) or a water box of :data:`WATER_BOXES` (built, no data needed)."""
    if name in WATER_BOXES:
        return water_box(WATER_BOXES[name])
    if name in MOLECULES:
        return read_rmd17(name, 1, "train", data_root)[0].to_atoms()
    raise DataFileError(
        f"unknown system {name!r}; known: the rMD17 molecules ({', '.join(MOLECULES)}), {', '.join(WATER_BOXES)}"
    )
