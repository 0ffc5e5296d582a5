"""``eqff evaluate``: energy and force errors of a model on labelled frames."""

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from eqff.active_learning import committee_predictions, uncertainty_against_error
from eqff.data.frames import Frame
from eqff.data.md17 import MOLECULES
from eqff.data.units import CODATA_RELEASE, KCAL_PER_MOL
from eqff.domain import DomainCheck
from eqff.errors import DataFileError
from eqff.model_file import load_model
from eqff.potential import DTYPES, resolve_device
from eqff.prediction import FRAMES_PER_CALL
from eqff.train.config import DataConfig
from eqff.train.dataset import describe_source, read_frames, require_labels
from eqff.train.metrics import ErrorAccumulator, error_report, evaluate_errors
from eqff.train.splits import PARTS, read_split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.eqff) or shipped potential")
    frames = parser.add_argument_group("frames (one of --dataset, --extxyz, --split-file)")
    frames.add_argument("--dataset", choices=["rmd17", "md17"], help="rMD17 split files or MD17 (all frames)")
    frames.add_argument("--molecule", choices=MOLECULES, help="with --dataset")
    frames.add_argument("--split", type=int, default=1, help="rMD17 split number")
    frames.add_argument("--extxyz", help="extended-XYZ file with energies and forces")
    frames.add_argument("--energy-key", default="energy", help="extxyz energy key (default: energy)")
    frames.add_argument("--forces-key", default="forces", help="extxyz forces key (default: forces)")
    frames.add_argument("--energy-unit", default="eV", help="extxyz energy unit, e.g. eV, kcal/mol ")
    frames.add_argument("--length-unit", default="Å", help="extxyz length unit ")
    frames.add_argument("--split-file", help="a run's split.json: evaluate on its frames of --part")
    frames.add_argument("--part", choices=PARTS, help="rMD17: train or test file (default test); "
                        "with --split-file: train, validation or test (default test)")
    frames.add_argument("--max-frames", type=int, help="use only the first N selected frames")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/ and md17/ (default: $EQFF_DATA)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: the dtype the model was saved in")
    parser.add_argument("--batch-size", type=int, default=FRAMES_PER_CALL, help=f"at most this many frames per model call (default {FRAMES_PER_CALL}; fewer where they would not fit in half the free memory)")
    parser.add_argument("--json", help="also write the results to this JSON file")


def _data_config(content: dict) -> DataConfig:
    try:
        return DataConfig.model_validate(content)
    except ValidationError as error:
        raise DataFileError("; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())) from None


def split_file_frames(path: str, part: str, root: str | None) -> list[tuple[str, list[Frame], str]]:
    """``part`` of each source of a run's split file: (label, frames, description) per source."""
    groups = []
    for record in read_split(path):
        data = _data_config(record["data"])
        if part == "test" and record["test"] is None:
            groups.append((data.label, read_frames(data, "test", root), describe_source(data, "test")))
        else:
            pool = read_frames(data, "train", root)
            groups.append((data.label, [pool[i] for i in record[part]], f"{record['pool']}, {part} frames of {path}"))
    return groups


def select_frames(args: argparse.Namespace) -> list[tuple[str, list[Frame], str]]:
    """The frames the arguments choose: (label, frames, description) per data source."""
    sources = [flag for flag, value in (("--dataset", args.dataset), ("--extxyz", args.extxyz),
                                        ("--split-file", args.split_file)) if value]
    if len(sources) != 1:
        raise DataFileError("choose the frames with exactly one of --dataset, --extxyz and --split-file"
                            + (f" (got {', '.join(sources)})" if sources else ""))
    part = args.part or "test"
    if args.split_file:
        return split_file_frames(args.split_file, part, args.data)
    if args.extxyz:
        data = _data_config(dict(
            dataset="extxyz", path=str(Path(args.extxyz).resolve()), energy_key=args.energy_key,
            forces_key=args.forces_key, energy_unit=args.energy_unit, length_unit=args.length_unit,
        ))
        return [(data.label, read_frames(data, root=args.data), describe_source(data))]
    data = _data_config(dict(dataset=args.dataset, molecule=args.molecule, split=args.split))
    if data.dataset == "rmd17" and part == "validation":
        raise DataFileError("rMD17 validation frames are chosen at training time: "
                            "use --split-file with --part validation")
    return [(data.label, read_frames(data, part, args.data), describe_source(data, part))]


def print_sources_table(reports: dict[str, dict], overall: dict) -> None:
    """One row of MAEs per data source and one for all frames together."""
    print(f"{'source':<16} {'frames':>7} {'E MAE meV':>10} {'E RMSE meV':>11} {'F MAE meV/Å':>12} {'F RMSE meV/Å':>13}")
    for label, report in [*reports.items(), ("all", overall)]:
        print(f"{label:<16} {report['num_frames']:>7} {report['energy_mae_meV']:>10.3f} "
              f"{report['energy_rmse_meV']:>11.3f} {report['forces_mae_meV_per_A']:>12.3f} "
              f"{report['forces_rmse_meV_per_A']:>13.3f}")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, content = load_model(args.model, DTYPES[args.dtype] if args.dtype else None)
    groups = [(label, frames[: args.max_frames], description) for label, frames, description in select_frames(args)]
    check_domain = DomainCheck(content["metadata"].get("training_domain"))
    for _, frames, description in groups:
        require_labels(frames, description)
        for frame in frames:
            check_domain(frame.atomic_numbers)
    print(f"eqff evaluate: model {args.model} on {'; '.join(description for _, _, description in groups)}, "
          f"{sum(len(frames) for _, frames, _ in groups)} frames, "
          f"{content['dtype'] if args.dtype is None else args.dtype} on {device}", flush=True)
    errors = {label: evaluate_errors(model, frames, args.batch_size, device) for label, frames, _ in groups}
    report = error_report(ErrorAccumulator.total([e for e, _ in errors.values()]),
                          ErrorAccumulator.total([f for _, f in errors.values()]))
    per_source = {label: error_report(*accumulators) for label, accumulators in errors.items()}
    if len(groups) > 1:
        print_sources_table(per_source, report)
        print("over all frames:")
    print(f"{'':<8} {'unit':<12} {'MAE':>10} {'RMSE':>10}")
    for quantity, units in (("energy", (("meV", "meV"), ("kcal/mol", "kcal_per_mol"))),
                            ("forces", (("meV/Å", "meV_per_A"), ("kcal/mol/Å", "kcal_per_mol_per_A")))):
        for label, suffix in units:
            print(f"{quantity:<8} {label:<12} {report[f'{quantity}_mae_{suffix}']:>10.3f} "
                  f"{report[f'{quantity}_rmse_{suffix}']:>10.3f}")
    print(f"frames   {report['num_frames']} (energy errors per molecule, force errors per component; "
          f"1 kcal/mol = {KCAL_PER_MOL:.7f} eV, {CODATA_RELEASE})")
    if hasattr(model, "num_members"):
        frames = [frame for _, group, _ in groups for frame in group]
        spearman, mean_uncertainty = uncertainty_against_error(committee_predictions(model, frames, args.batch_size), frames)
        report.update(forces_uncertainty_mean_meV_per_A=mean_uncertainty, uncertainty_error_spearman=spearman)
        print(f"committee of {model.num_members}: mean force uncertainty {mean_uncertainty:.3f} meV/Å; Spearman "
              f"rank correlation of each frame's force uncertainty and force error {spearman:.3f}")
    if args.json:
        content = {"model": str(args.model), "data": "; ".join(d for _, _, d in groups), **report}
        if len(groups) > 1:
            content["sources"] = per_source
        Path(args.json).write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
