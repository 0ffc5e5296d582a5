"""ML/MM MD of aspirin in TIP3P water: aspirin with an eqff potential (ML), the water with Amber14's TIP3P (MM).

The first rMD17 aspirin frame is solvated by ``openmm.app.Modeller`` in a cubic TIP3P box
(aspirin at least ``--padding``, default 1 nm, from its periodic images), and
``MLPotential("eqff").createMixedSystem`` turns the MM System into an ML/MM one (openmm-ml's
mechanical embedding): aspirin–aspirin interactions by eqff, water–water by TIP3P with PME,
aspirin–water by the MM nonbonded terms. After a short minimisation it runs Langevin NVT at
300 K with 0.5 fs steps, writes CSV and DCD files to ``--output`` (default ``md_output/``) and
prints a summary::

    EQFF_DATA=/path/to/data python md_examples/openmm_mlmm.py --steps 1000

How aspirin enters the MM System. ``amber14/tip3p.xml`` has no parameters for aspirin, and the
ML potential replaces all of aspirin's internal ones. Two things still need per-atom MM
parameters for it: ``Modeller.addSolvent`` (to keep water off the solute) and the mechanical
embedding (for the aspirin–water interaction). The simplest correct way to give them is one more
force-field file, written here by :func:`ligand_forcefield_xml`: a residue template for the
bond-less ``LIG`` residue with one atom type per element, each with its element's mass, zero
charge and a generic Lennard-Jones sigma and epsilon (GAFF's hc, ca and o types), and no bonded
terms. ``ForceField.createSystem`` then builds one System for the whole topology with the
particles in topology order; ``createMixedSystem`` zeroes the MM nonbonded terms within aspirin
and adds the eqff force on its atoms. With zero charges the aspirin–water coupling is
Lennard-Jones only: enough to demonstrate ML/MM, not for production, where aspirin would get
partial charges (e.g. AM1-BCC through openmmforcefields' template generators) so that the
embedding includes electrostatics.

The data folder is ``--data`` or ``$EQFF_DATA``.
"""

import argparse
import io
import sys

import openmm
from openmm import app, unit
from openmm_gas_phase import (
    FRICTION,
    LIGAND_RESIDUE,
    TEMPERATURE,
    TIMESTEP,
    add_common_arguments,
    aspirin,
    print_summary,
    run_md,
)
from openmmml import MLPotential

from eqff.cli import reports_bad_input
from eqff.integrations.openmm import molecule_topology

LIGAND_LENNARD_JONES = {1: (0.26495, 0.06569), 6: (0.33997, 0.35982), 8: (0.29599, 0.87864)}
"""Atomic number → (sigma nm, epsilon kJ/mol): GAFF's hc, ca and o atom types."""

CUTOFF = 0.9 * unit.nanometer
"""Real-space cutoff of the MM nonbonded terms (PME)."""

AMBER_14_SCALES = 'coulomb14scale="0.8333333333333334" lj14scale="0.5"'
"""The 1-4 scale factors of amber14/tip3p.xml's NonbondedForce, which a second file must repeat."""


def ligand_forcefield_xml(topology: app.Topology) -> str:
    """OpenMM force-field XML for the single residue of ``topology``: masses and Lennard-Jones only.

    One atom type per element (``eqff-ligand-<symbol>``), the residue template with zero
    charges and no bonds, and NonbondedForce sigma/epsilon from :data:`LIGAND_LENNARD_JONES`.
    """
    [residue] = topology.residues()
    elements = {atom.element.atomic_number: atom.element for atom in residue.atoms()}
    types = "".join(
        f'<Type name="eqff-ligand-{e.symbol}" class="eqff-ligand-{e.symbol}" element="{e.symbol}" '
        f'mass="{e.mass.value_in_unit(unit.dalton)}"/>'
        for e in elements.values()
    )
    atoms = "".join(
        f'<Atom name="{atom.name}" type="eqff-ligand-{atom.element.symbol}" charge="0"/>' for atom in residue.atoms()
    )
    lennard_jones = "".join(
        f'<Atom type="eqff-ligand-{e.symbol}" sigma="{LIGAND_LENNARD_JONES[z][0]}" '
        f'epsilon="{LIGAND_LENNARD_JONES[z][1]}"/>'
        for z, e in elements.items()
    )
    return (
        f'<ForceField><AtomTypes>{types}</AtomTypes>'
        f'<Residues><Residue name="{residue.name}">{atoms}</Residue></Residues>'
        f'<NonbondedForce {AMBER_14_SCALES}><UseAttributeFromResidue name="charge"/>{lennard_jones}</NonbondedForce>'
        "</ForceField>"
    )


def solvated_aspirin(args: argparse.Namespace) -> tuple[app.Modeller, app.ForceField, list[int]]:
    """Aspirin in a TIP3P box, the force field covering both, and the indices of aspirin's atoms."""
    numbers, positions = aspirin(args.data)
    topology = molecule_topology(numbers, LIGAND_RESIDUE)
    forcefield = app.ForceField("amber14/tip3p.xml", io.StringIO(ligand_forcefield_xml(topology)))
    modeller = app.Modeller(topology, positions * unit.angstrom)
    modeller.addSolvent(forcefield, model="tip3p", padding=args.padding * unit.nanometer)
    ligand = [atom.index for atom in modeller.topology.atoms() if atom.residue.name == LIGAND_RESIDUE]
    return modeller, forcefield, ligand


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, default_steps=1000)
    parser.add_argument(
        "--padding", type=float, default=1.0,
        help="nm: least distance from aspirin to its periodic images (Modeller's padding; >= 0.9 for the cutoff)",
    )  # fmt: skip
    parser.add_argument("--minimise", type=int, default=200, help="maximum energy-minimisation iterations before MD")
    args = parser.parse_args(argv)
    modeller, forcefield, ligand = solvated_aspirin(args)
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=CUTOFF)
    potential = MLPotential("eqff", modelPath=args.model)
    system = potential.createMixedSystem(
        modeller.topology, mm_system, ligand, precision=args.precision, device=args.device, threads=args.threads
    )
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, FRICTION, TIMESTEP)
    integrator.setRandomNumberSeed(args.seed)
    simulation = app.Simulation(modeller.topology, system, integrator)
    simulation.context.setPositions(modeller.positions)
    box = modeller.topology.getPeriodicBoxVectors()[0][0].value_in_unit(unit.nanometer)
    waters = modeller.topology.getNumResidues() - 1
    print(f"aspirin ({len(ligand)} atoms, ML: {args.model}) in {waters} TIP3P waters (MM), {system.getNumParticles()} "
          f"particles, {box:.2f} nm box, platform {simulation.context.getPlatform().getName()}")
    simulation.minimizeEnergy(maxIterations=args.minimise)
    wall = run_md(simulation, "openmm_mlmm", args)
    print_summary("openmm_mlmm", args, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
