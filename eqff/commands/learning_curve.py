"""``eqff learning-curve``: test errors of runs' snapshots against training minutes.

Runs trained with ``training.snapshot_minutes`` keep the best model after each of those minutes
(:mod:`eqff.train.snapshots`). This command evaluates every snapshot of every run given on the
test frames of the run's data source (rMD17 ``test_0N``, or the pool frames left out of training
for MD17 and extxyz) and prints, writes as JSON, and plots force and energy MAE against minutes.
A peer's run folder made by ``eqff train-peer`` may be given too: its records, tested by the peer's
own evaluation on the same test frames, are read from it (:func:`run_errors`).
"""

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eqff.commands.evaluate import split_file_frames  # noqa: E402
from eqff.errors import DataFileError  # noqa: E402
from eqff.model_file import load_model, read_model_file  # noqa: E402
from eqff.peers.learning_curve import read_peer_records  # noqa: E402
from eqff.train.metrics import evaluate  # noqa: E402
from eqff.train.run_folder import SPLIT_FILE  # noqa: E402
from eqff.train.snapshots import SNAPSHOT_DIR  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders trained with training.snapshot_minutes, or made by eqff train-peer")
    parser.add_argument("--output", default="learning-curve", help="folder for the JSON and the plot (default: learning-curve)")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument("--max-frames", type=int, help="evaluate on the first N test frames only (default: all)")


@dataclass(frozen=True)
class SnapshotErrors:
    """Test errors of one snapshot.

    Attributes:
        run: the run's name.
        num_train: training frames of the run.
        minutes: the snapshot's mark; training_minutes: the training time it was taken at.
        forces_mae: meV/Å per component; energy_mae: meV per frame.
    """

    run: str
    num_train: int
    minutes: float
    training_minutes: float
    num_test_frames: int
    forces_mae: float
    energy_mae: float


def run_snapshots(run_dir: Path) -> list[Path]:
    """The snapshot files of a run folder, in order of their training time."""
    files = list((run_dir / SNAPSHOT_DIR).glob("*.eqff"))
    if not files:
        raise DataFileError(f"{run_dir} holds no snapshots: train it with training.snapshot_minutes")
    minutes = {path: read_model_file(path)["metadata"].get("snapshot_minutes") for path in files}
    stray = [str(path) for path, value in minutes.items() if value is None]
    if stray:
        raise DataFileError(f"{', '.join(stray)}: not snapshots of a run (no snapshot_minutes in the metadata)")
    return sorted(files, key=minutes.get)


def evaluate_run(run_dir: Path, data_root: str | None, max_frames: int | None) -> list[SnapshotErrors]:
    """The test errors of every snapshot of one single-source run."""
    snapshots = run_snapshots(run_dir)
    sources = split_file_frames(str(run_dir / SPLIT_FILE), "test", data_root)
    if len(sources) != 1:
        raise DataFileError(f"{run_dir}: learning curves are for runs on one data source, this one has {len(sources)}")
    [(_, frames, _)] = sources
    frames = frames[:max_frames]
    errors = []
    for path in snapshots:
        model, content = load_model(path)
        metadata = content["metadata"]
        report = evaluate(model, frames)
        errors.append(SnapshotErrors(
            run=metadata["config"]["name"],
            num_train=sum(data["num_train"] for data in metadata["dataset"]),
            minutes=metadata["snapshot_minutes"],
            training_minutes=metadata["training_time_s"] / 60,
            num_test_frames=report["num_frames"],
            forces_mae=report["forces_mae_meV_per_A"],
            energy_mae=report["energy_mae_meV"],
        ))
    return errors


def run_errors(run_dir: Path, data_root: str | None, max_frames: int | None) -> list[SnapshotErrors]:
    """The test errors of a run folder: a peer's records as they are (``max_frames`` was its own
    ``--max-test-frames``), an eqff run's snapshots evaluated here (:func:`evaluate_run`)."""
    records = read_peer_records(run_dir)
    if records is None:
        return evaluate_run(run_dir, data_root, max_frames)
    return [SnapshotErrors(**record) for record in records]


def plot_learning_curves(path: Path, errors: list[SnapshotErrors]) -> None:
    """Test force MAE (left) and energy MAE (right) against training minutes, one line per run."""
    figure, (forces_axes, energy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for run in dict.fromkeys(e.run for e in errors):
        points = [e for e in errors if e.run == run]
        minutes = [e.training_minutes for e in points]
        forces_axes.plot(minutes, [e.forces_mae for e in points], marker="o", label=run)
        energy_axes.plot(minutes, [e.energy_mae for e in points], marker="o", label=run)
    for axes, label in ((forces_axes, "test force MAE / meV/Å"), (energy_axes, "test energy MAE / meV")):
        axes.set_xlabel("training time / min (one CPU thread)")
        axes.set_ylabel(label)
        axes.set_xscale("log")
        axes.set_yscale("log")
    forces_axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    errors = [e for folder in args.runs for e in run_errors(Path(folder), args.data, args.max_frames)]
    print(f"{'run':<32} {'train frames':>12} {'minutes':>8} {'trained min':>11} {'test frames':>11} "
          f"{'F MAE meV/Å':>12} {'E MAE meV':>10}")
    for e in errors:
        print(f"{e.run:<32} {e.num_train:>12} {e.minutes:>8g} {e.training_minutes:>11.1f} {e.num_test_frames:>11} "
              f"{e.forces_mae:>12.3f} {e.energy_mae:>10.3f}")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "learning-curve.json").write_text(json.dumps([asdict(e) for e in errors], indent=1) + "\n")
    plot_learning_curves(output / "learning-curve.png", errors)
    print(f"wrote {output / 'learning-curve.json'} and {output / 'learning-curve.png'}")
    return 0
