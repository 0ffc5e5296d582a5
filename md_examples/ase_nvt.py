"""Langevin NVT MD of aspirin at 500 K in ASE with an eqff potential: stability and h(r) against rMD17.

The protocol follows Fu et al., "Forces are not Enough: Benchmark and Critical Evaluation for
Machine Learning Force Fields with Molecular Simulations" (TMLR 2023) for MD17: 500 K, 0.5 fs
steps, a frame every 100 steps (50 fs), and two observables:

- stability: the first frame at which any bond deviates by more than 0.5 Å from its length in
  the first frame (bonds: ``ase.neighborlist.natural_cutoffs`` on the first frame);
- h(r), the distribution of all interatomic distances (500 bins over 0–10 Å, normalised), over
  the frames before the instability, against the rMD17 reference frames, and its error
  ∫|h(r) − h_ref(r)| dr (their "h(r) MAE": the mean absolute difference over the bins times 10 Å).

Fu et al. ran 300 ps (``--steps 600000``) with a Nosé–Hoover thermostat; here ASE's Langevin
thermostat (``fixcm=False``, friction ``--friction``, default 0.01/fs) holds the temperature,
and the default is 20000 steps (10 ps). The run starts from the first rMD17 aspirin frame
(train split 1, read from ``--data`` or ``$EQFF_DATA``) with Maxwell–Boltzmann velocities at the
target temperature; the reference h(r) comes from all 1000 frames of that split file. Writes
``<output>/ase_nvt.xyz`` (the frames, readable by ASE and MDAnalysis; see ``analysis.py``) and
``<output>/ase_nvt.png`` (h(r) and the largest bond deviation against time)::

    EQFF_DATA=/path/to/data python md_examples/ase_nvt.py --steps 2000

A float32 step takes about 10 ms on a 2-core CPU; on a busy one set ``OMP_NUM_THREADS=1`` (see
``ase_nve.py``).
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import add_md_arguments, check_md_arguments  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import write  # noqa: E402

from eqff.cli import reports_bad_input  # noqa: E402
from eqff.data.md17 import read_rmd17  # noqa: E402
from eqff.integrations.ase import EqffCalculator  # noqa: E402
from eqff.md.observables import (  # noqa: E402
    HR_BINS, STABILITY_THRESHOLD, bonds_of, distance_distribution, hr_mae, largest_bond_deviation, pair_distances,
    stability_frame,
)  # fmt: skip
from eqff.md.simulation import run_nvt, speed_line  # noqa: E402

MOLECULE = "aspirin"


def plot_observables(
    path: Path, h: np.ndarray, h_reference: np.ndarray, times: np.ndarray, deviation: np.ndarray
) -> None:
    """h(r) of the simulation and the reference (left), largest bond deviation against time (right).

    Args:
        h, h_reference: (n,) 1/Å over :data:`HR_BINS`.
        times: (T,) ps of the frames; deviation: (T,) Å, the largest |bond length − first-frame length|.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    centres = 0.5 * (HR_BINS[1:] + HR_BINS[:-1])
    left.plot(centres, h_reference, label="rMD17 reference")
    left.plot(centres, h, "--", label="simulation")
    left.set_xlabel("r / Å")
    left.set_ylabel("h(r) / Å⁻¹")
    left.legend()
    right.plot(times, deviation)
    right.axhline(STABILITY_THRESHOLD, color="k", linestyle=":", label=f"{STABILITY_THRESHOLD} Å")
    right.set_xlabel("time / ps")
    right.set_ylabel("largest bond deviation / Å")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_summary(args: argparse.Namespace, temperatures: np.ndarray, frame_ps: float, unstable: int | None,
                  num_frames: int, mae: float, num_reference: int, wall: float) -> None:  # fmt: skip
    """Speed, temperature, stability time, h(r) error and the files written (``frame_ps``: ps between frames)."""
    print("summary")
    print(speed_line(args.steps, args.timestep, wall))
    print(f"  temperature         mean {temperatures.mean():.1f} K, std {temperatures.std():.1f} K "
          f"(target {args.temperature:g} K; {len(temperatures)} frames)")
    if unstable is None:
        print(f"  stability           stable for the whole run ({(num_frames - 1) * frame_ps:.3f} ps, "
              f"{num_frames} frames: no bond deviated by more than {STABILITY_THRESHOLD} Å)")
    else:
        print(f"  stability           unstable at {unstable * frame_ps:.3f} ps (frame {unstable} of {num_frames}): "
              f"a bond deviated by more than {STABILITY_THRESHOLD} Å")
    used = num_frames if unstable is None else unstable
    print(f"  h(r) MAE            {mae:.4f} (∫|h − h_ref| dr, 0–10 Å; {used} simulation frames against "
          f"{num_reference} rMD17 {MOLECULE} frames)")
    print(f"  files               {args.output / 'ase_nvt.xyz'}, {args.output / 'ase_nvt.png'}")


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_md_arguments(parser, default_steps=20000, default_dtype="float32", default_interval=100)
    parser.add_argument(
        "--temperature", type=float, default=500.0, help="K, thermostat and initial velocities (default: %(default)s)"
    )
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default: %(default)s)")
    parser.add_argument("--data", default=None, help="data folder holding rmd17/ (default: $EQFF_DATA)")
    args = parser.parse_args(argv)
    check_md_arguments(parser, args)
    reference = read_rmd17(MOLECULE, 1, "train", args.data)
    atoms = reference[0].to_atoms()
    atoms.calc = EqffCalculator(args.model, device=args.device, dtype=args.dtype, threads=args.threads)
    print(f"NVT {MOLECULE} ({len(atoms)} atoms), model {args.model}, {args.steps} steps of {args.timestep:g} fs, "
          f"Langevin at {args.temperature:g} K (friction {args.friction:g}/fs), {args.dtype}")
    positions, temperatures, wall = run_nvt(
        atoms, args.steps, args.timestep, args.interval, args.temperature, args.friction, args.seed
    )
    args.output.mkdir(parents=True, exist_ok=True)
    write(args.output / "ase_nvt.xyz", [Atoms(numbers=atoms.numbers, positions=frame) for frame in positions],
          format="xyz")  # fmt: skip
    bonds = bonds_of(Atoms(numbers=atoms.numbers, positions=positions[0]))
    unstable = stability_frame(positions, bonds)
    h = distance_distribution(pair_distances(positions[:unstable]))
    h_reference = distance_distribution(pair_distances(np.array([frame.positions for frame in reference])))
    mae = hr_mae(h, h_reference)
    frame_ps = args.interval * args.timestep * 1e-3
    deviation = largest_bond_deviation(positions, bonds)
    plot_observables(args.output / "ase_nvt.png", h, h_reference, frame_ps * np.arange(len(positions)), deviation)
    print_summary(args, temperatures, frame_ps, unstable, len(positions), mae, len(reference), wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
