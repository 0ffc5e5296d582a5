"""Bond-length and dihedral distributions of an ``ase_nvt.py`` trajectory against rMD17, with MDAnalysis.

Reads ``--trajectory`` (default ``md_output/ase_nvt.xyz``, written by ``ase_nvt.py``) as an
MDAnalysis Universe (the XYZ file is both topology and trajectory), guesses the bonds from its
first frame (``to_guess=("bonds",)``, van der Waals radii), and builds a second Universe with the
same atoms and bonds holding the rMD17 aspirin frames of train split 1 (``--data`` or
``$EQFF_DATA``). For both it computes

- the bond lengths in every frame (``AnalysisFromFunction`` over ``bonds.values()``), grouped by
  bond type (C-C, C-H, C-O, H-O);
- four torsions of aspirin found from the bond graph, with ``MDAnalysis.analysis.dihedrals.Dihedral``:
  the carboxylic acid's rotation against the ring (C–C–C=O), its O–H (O=C–O–H), the ester's
  rotation against the ring (C–C–O–C) and the ester's own C–O bond (C–O–C–CH3);

and plots the distributions (``<output>/analysis_bonds.png``, ``<output>/analysis_dihedrals.png``;
``--output``, default ``md_output/``). The summary gives, for each, the overlap of the two
histograms, Σ min(p, p_ref) over the bins (1: identical, 0: disjoint)::

    python md_examples/ase_nvt.py --steps 2000 && python md_examples/analysis.py
"""

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import MDAnalysis as mda  # noqa: E402
import numpy as np  # noqa: E402
from ase.data import chemical_symbols  # noqa: E402
from MDAnalysis.analysis.base import AnalysisFromFunction  # noqa: E402
from MDAnalysis.analysis.dihedrals import Dihedral  # noqa: E402
from MDAnalysis.coordinates.memory import MemoryReader  # noqa: E402

from eqff.cli import reports_bad_input  # noqa: E402
from eqff.data.md17 import read_rmd17  # noqa: E402

MOLECULE = "aspirin"
DIHEDRAL_BINS = np.linspace(-180.0, 180.0, 37)
"""degrees: 10° bins."""
BOND_BINS = 60
"""bins per bond type, over the range of the reference lengths widened by 0.1 Å on each side."""


def load_trajectory(path: Path) -> mda.Universe:
    """An XYZ trajectory as a Universe with elements, types and bonds guessed from its names and first frame."""
    return mda.Universe(str(path), format="XYZ", to_guess=("elements", "types", "masses", "bonds"))


def reference_universe(universe: mda.Universe, positions: np.ndarray) -> mda.Universe:
    """A copy of ``universe``'s atoms and bonds holding the frames ``positions`` (T, A, 3) Å in memory."""
    reference = mda.Merge(universe.atoms)
    reference.load_new(positions, format=MemoryReader)
    return reference


def bond_lengths_by_type(universe: mda.Universe) -> dict[str, np.ndarray]:
    """Bond lengths in Å over all frames, by bond type ("C-H", elements sorted): each (T · B_type,)."""
    kinds = np.array(["-".join(sorted(bond.type)) for bond in universe.bonds])  # (B,)
    lengths = AnalysisFromFunction(lambda bonds: bonds.values(), universe.trajectory, universe.bonds).run()
    lengths = lengths.results.timeseries  # (T, B)
    return {kind: lengths[:, kinds == kind].reshape(-1) for kind in sorted(set(kinds))}


def _only(candidates: list[int], what: str) -> int:
    """The single element of ``candidates``; ValueError naming ``what`` otherwise."""
    if len(candidates) != 1:
        raise ValueError(
            f"expected one {what} in the bond graph, found {len(candidates)}: not aspirin, or a broken first frame"
        )
    return candidates[0]


def aspirin_torsions(elements: Sequence[str], bonds: np.ndarray) -> dict[str, tuple[int, int, int, int]]:
    """Four torsions of aspirin (atom indices) from its bond graph.

    Args:
        elements: (A,) element symbols.
        bonds: (B, 2) atom indices.

    Returns:
        "ring–COOH" (C–C–C=O), "COOH O–H" (O=C–O–H), "ring–ester" (C–C–O–C) and
        "ester C–O" (C–O–C–CH3); each ring C–C pair is the two ortho carbons carrying the groups.

    Raises:
        ValueError: when a group is missing or ambiguous.
    """
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(elements))}
    for i, j in bonds:
        neighbours[int(i)].append(int(j))
        neighbours[int(j)].append(int(i))

    def bonded(atom: int, element: str) -> list[int]:
        return [j for j in neighbours[atom] if elements[j] == element]

    acid_oh = _only([i for i in neighbours if elements[i] == "O" and bonded(i, "H")], "hydroxyl O")
    acid_h = _only(bonded(acid_oh, "H"), "hydroxyl H")
    acid_c = _only(bonded(acid_oh, "C"), "carboxyl C")
    acid_carbonyl = _only([o for o in bonded(acid_c, "O") if o != acid_oh], "carboxyl C=O")
    ring_acid = _only(bonded(acid_c, "C"), "ring C carrying the carboxyl group")
    ester_o = _only([i for i in neighbours if elements[i] == "O" and len(bonded(i, "C")) == 2], "ester O")
    acyl_c = _only([c for c in bonded(ester_o, "C") if len(bonded(c, "O")) == 2], "acyl C")
    ring_ester = _only([c for c in bonded(ester_o, "C") if c != acyl_c], "ring C carrying the ester")
    methyl_c = _only(bonded(acyl_c, "C"), "methyl C")
    if ring_ester not in neighbours[ring_acid]:
        raise ValueError("the carboxyl and ester groups are not on neighbouring ring carbons")
    return {
        "ring–COOH": (ring_ester, ring_acid, acid_c, acid_carbonyl),
        "COOH O–H": (acid_carbonyl, acid_c, acid_oh, acid_h),
        "ring–ester": (ring_acid, ring_ester, ester_o, acyl_c),
        "ester C–O": (ring_ester, ester_o, acyl_c, methyl_c),
    }


def dihedral_angles(universe: mda.Universe, torsions: dict[str, tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
    """The torsion angles in degrees, (−180, 180], over all frames: each (T,)."""
    angles = Dihedral([universe.atoms[list(atoms)] for atoms in torsions.values()]).run().results.angles  # (T, D)
    return dict(zip(torsions, angles.T))


def histogram_overlap(values: np.ndarray, reference: np.ndarray, bins: np.ndarray) -> float:
    """Σ min(p, p_ref) over ``bins`` (edges), p the fraction of all values in each bin; 1 identical, 0 disjoint.

    Values outside the bins count in the totals but in no bin, so they lower the overlap.
    """
    p = np.histogram(values, bins)[0] / len(values)
    p_reference = np.histogram(reference, bins)[0] / len(reference)
    return float(np.minimum(p, p_reference).sum())


def bond_bins(reference: np.ndarray) -> np.ndarray:
    """:data:`BOND_BINS` + 1 edges (Å) over the range of the reference lengths, 0.1 Å wider on each side."""
    return np.linspace(reference.min() - 0.1, reference.max() + 0.1, BOND_BINS + 1)


def plot_distributions(path: Path, simulated: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                       bins: dict[str, np.ndarray], unit: str) -> None:  # fmt: skip
    """One panel per key: normalised histograms of the simulated and the reference values over ``bins[key]``."""
    figure, axes = plt.subplots(1, len(simulated), figsize=(3.6 * len(simulated), 3.4), squeeze=False)
    for axis, key in zip(axes[0], simulated):
        axis.hist(reference[key], bins[key], density=True, histtype="stepfilled", alpha=0.4, label="rMD17 reference")
        axis.hist(simulated[key], bins[key], density=True, histtype="step", linewidth=1.5, label="simulation")
        axis.set_title(key)
        axis.set_xlabel(unit)
    axes[0][0].set_ylabel("probability density")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_summary(args: argparse.Namespace, universe: mda.Universe, num_reference: int, bonds: dict[str, tuple],
                  torsions: dict[str, tuple], dihedral_overlaps: dict[str, float]) -> None:  # fmt: skip
    """Frames, bonds and the overlaps; ``bonds``: per type (count, mean, std, mean_ref, std_ref, overlap) in Å."""
    print("summary")
    print(f"  trajectory          {args.trajectory}: {len(universe.trajectory)} frames of {len(universe.atoms)} atoms; "
          f"reference: {num_reference} rMD17 {MOLECULE} frames (train split 1)")
    print(f"  bonds               {len(universe.bonds)}, guessed from the first frame")
    for kind, (count, mean, std, mean_ref, std_ref, overlap) in bonds.items():
        print(f"  {'bond ' + kind:<20}{count} bond{'s' if count > 1 else ''}: simulation {mean:.3f} ± {std:.3f} Å, "
              f"reference {mean_ref:.3f} ± {std_ref:.3f} Å, overlap {overlap:.2f}")
    for name, atoms in torsions.items():
        print(f"  {'dihedral ' + name:<20}atoms {'-'.join(map(str, atoms))}: overlap {dihedral_overlaps[name]:.2f}")
    print(f"  files               {args.output / 'analysis_bonds.png'}, {args.output / 'analysis_dihedrals.png'}")


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trajectory", type=Path, default=Path("md_output/ase_nvt.xyz"), help="XYZ file (default: %(default)s)"
    )
    parser.add_argument("--data", default=None, help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument("--output", type=Path, default=Path("md_output"), help="folder for the plots")
    args = parser.parse_args(argv)
    if not args.trajectory.is_file():
        parser.error(f"no trajectory {args.trajectory}; write one with md_examples/ase_nvt.py")
    frames = read_rmd17(MOLECULE, 1, "train", args.data)
    universe = load_trajectory(args.trajectory)
    if list(universe.atoms.elements) != [chemical_symbols[z] for z in frames[0].atomic_numbers]:
        parser.error(f"the atoms of {args.trajectory} are not those of rMD17 {MOLECULE}, in the same order")
    reference = reference_universe(universe, np.array([frame.positions for frame in frames]))
    torsions = aspirin_torsions(universe.atoms.elements, universe.bonds.indices)
    with warnings.catch_warnings():  # XYZ files carry no time step; only frames are used here
        warnings.filterwarnings("ignore", message="Reader has no dt information")
        lengths, lengths_ref = bond_lengths_by_type(universe), bond_lengths_by_type(reference)
        angles, angles_ref = dihedral_angles(universe, torsions), dihedral_angles(reference, torsions)
    length_bins = {kind: bond_bins(values) for kind, values in lengths_ref.items()}
    angle_bins = dict.fromkeys(angles, DIHEDRAL_BINS)
    args.output.mkdir(parents=True, exist_ok=True)
    plot_distributions(args.output / "analysis_bonds.png", lengths, lengths_ref, length_bins, "bond length / Å")
    plot_distributions(args.output / "analysis_dihedrals.png", angles, angles_ref, angle_bins, "dihedral / °")
    bonds = {
        kind: (
            len(values) // len(universe.trajectory), values.mean(), values.std(), lengths_ref[kind].mean(),
            lengths_ref[kind].std(), histogram_overlap(values, lengths_ref[kind], length_bins[kind]),
        )
        for kind, values in lengths.items()
    }  # fmt: skip
    overlaps = {name: histogram_overlap(angles[name], angles_ref[name], DIHEDRAL_BINS) for name in angles}
    print_summary(args, universe, len(frames), bonds, torsions, overlaps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
