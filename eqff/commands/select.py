"""``eqff select``: the frames of a pool of structures that a committee model is least sure of, to label next.

Each frame is scored by its force uncertainty (:mod:`eqff.active_learning`); labels in the pool
are never read. The command prints the pool's uncertainties and the chosen frames, and writes
the chosen structures (``--output``, extended XYZ, with their pool index and score in the info)
and every score (``--json``).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read, write
from pydantic import ValidationError

from eqff.active_learning import committee_predictions, most_uncertain
from eqff.data.frames import Frame
from eqff.data.md17 import MOLECULES
from eqff.domain import DomainCheck
from eqff.errors import DataFileError
from eqff.model_file import load_model
from eqff.train.config import DataConfig
from eqff.train.dataset import describe_source, read_frames
from eqff.train.metrics import MEV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a committee model file (trained with model.committee_size)")
    pool = parser.add_argument_group("pool (one of --structures, --dataset)")
    pool.add_argument("--structures", help="a file of structures ASE reads (extended XYZ, .traj, ...); labels are ignored")
    pool.add_argument("--dataset", choices=["rmd17", "md17"], help="rMD17 split files or MD17 (all frames)")
    pool.add_argument("--molecule", choices=MOLECULES, help="with --dataset")
    pool.add_argument("--split", type=int, default=1, help="rMD17 split number")
    pool.add_argument("--part", choices=["train", "test"], default="train", help="rMD17 file")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/ and md17/ (default: $EQFF_DATA)")
    parser.add_argument("--count", type=int, default=10, help="frames to choose")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per model call")
    parser.add_argument("--output", help="write the chosen structures to this extended-XYZ file")
    parser.add_argument("--json", help="write the pool's scores and the chosen indices to this JSON file")


def pool_frames(args: argparse.Namespace) -> tuple[list[Frame], str]:
    """The pool's frames (without labels) and its description."""
    if bool(args.structures) == bool(args.dataset):
        raise DataFileError("give the pool with exactly one of --structures and --dataset")
    if args.structures:
        try:
            structures = read(args.structures, index=":")
        except (OSError, ValueError, StopIteration) as error:
            raise DataFileError(f"cannot read the structures {args.structures}: {error}") from None
        return [Frame.from_atoms(atoms) for atoms in structures], args.structures
    try:
        data = DataConfig(dataset=args.dataset, molecule=args.molecule, split=args.split)
    except ValidationError as error:
        raise DataFileError("; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())) from None
    frames = read_frames(data, args.part, args.data)
    unlabelled = [Frame(frame.atomic_numbers, frame.positions, cell=frame.cell, pbc=frame.pbc) for frame in frames]
    return unlabelled, describe_source(data, args.part)


def run(args: argparse.Namespace) -> int:
    if args.count < 0:
        raise DataFileError(f"--count must be 0 or more, got {args.count}")
    model, content = load_model(args.model)
    frames, description = pool_frames(args)
    check_domain = DomainCheck(content["metadata"].get("training_domain"))
    for frame in frames:
        check_domain(frame.atomic_numbers)
    print(f"eqff select: model {args.model} on {description}, {len(frames)} frames", flush=True)
    scores = committee_predictions(model, frames, args.batch_size).forces_uncertainty  # (F,) eV/Å
    chosen = most_uncertain(scores, args.count)
    print(f"force uncertainty   mean {scores.mean() / MEV:.2f}, median {np.median(scores) / MEV:.2f}, "
          f"largest {scores.max() / MEV:.2f} meV/Å (per frame: the RMS over its atoms)")
    if len(chosen):
        print(f"{'rank':>4} {'frame':>7} {'uncertainty meV/Å':>18}")
        for rank, index in enumerate(chosen, start=1):
            print(f"{rank:>4} {index:>7} {scores[index] / MEV:>18.2f}")
    if args.output:
        structures = []
        for index in chosen:
            atoms = frames[index].to_atoms()
            atoms.info.update(pool_index=int(index), forces_uncertainty_eV_per_A=float(scores[index]))
            structures.append(atoms)
        write(args.output, structures, format="extxyz")
        print(f"wrote {len(structures)} structures to {args.output}")
    if args.json:
        content = {"model": str(args.model), "pool": description, "chosen": chosen.tolist(),
                   "forces_uncertainty_eV_per_A": scores.tolist()}  # fmt: skip
        Path(args.json).write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
