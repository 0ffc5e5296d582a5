"""A run folder's bookkeeping: checks before a run writes anything, its config, and the metrics
files of a resumed run.

Layout of ``output_dir/name/``::

    config.yaml            the config of the (latest) run
    split.json             the frames used (see :func:`eqff.train.splits.read_split`)
    metrics.csv            per-step and per-epoch metrics (and tensorboard/ if installed)
    metrics.1.csv, ...     the metrics of earlier segments of a resumed run, oldest first
    checkpoints/last.ckpt  written every N epochs and at the end; a resumed run continues from it
    checkpoints/best.ckpt  the epoch with the lowest validation force MAE (EMA weights)
    snapshots/             the best model after fixed training times (training.snapshot_minutes)
    <name>.eqff            the best model, for EqffCalculator, ``eqff md`` and ``eqff evaluate``
"""

import os
from pathlib import Path

import yaml
from lightning.pytorch.utilities import rank_zero_only

from eqff.errors import EqffError
from eqff.train.checkpoint import LAST_CHECKPOINT
from eqff.train.config import ConfigError, RunConfig, parse_config

SPLIT_FILE = "split.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"


class RunFolderError(EqffError):
    """A new run's folder already holds a run, or a resumed run's folder holds no checkpoint."""


def check_run_folder(config: RunConfig, resume: bool) -> None:
    """Check the run folder against ``resume`` without writing anything.

    Raises:
        RunFolderError: ``resume`` is False and the folder holds a run, or True and it holds none.
        ConfigError: a resumed run's config changed a setting that must stay fixed.
    """
    run_dir = config.run_dir
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise RunFolderError(f"cannot resume: {last} does not exist")
    if not resume and rank_zero_only.rank == 0 and (run_dir / CHECKPOINT_DIR).exists():
        raise RunFolderError(
            f"{run_dir} already holds a run; continue it with --resume, or change 'name' or 'output_dir'"
        )
    saved = run_dir / CONFIG_FILE
    if resume and saved.is_file():
        previous = parse_config(yaml.safe_load(saved.read_text()), str(saved))
        fixed = ("seed", "dtype", "data", "model", "loss")
        changed = [name for name in fixed if getattr(previous, name) != getattr(config, name)]
        if changed:
            raise ConfigError(f"cannot resume {run_dir}: the config changed {changed} since the run started")


def prepare_run_dir(config: RunConfig, resume: bool) -> Path:
    """Create the run folder (checked by :func:`check_run_folder`), keep a resumed run's earlier
    metrics and write ``config.yaml``; return the folder."""
    run_dir = config.run_dir
    saved = run_dir / CONFIG_FILE
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            keep_earlier_metrics(run_dir)
        temporary = saved.with_name(f".{saved.name}.tmp")
        temporary.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        os.replace(temporary, saved)
    return run_dir


def segment_number(path: Path) -> int | None:
    """``k`` of a ``metrics.<k>.csv`` file; ``None`` for any other name."""
    middle = path.suffixes[0][1:] if len(path.suffixes) == 2 else ""
    return int(middle) if middle.isdigit() else None


def metrics_segments(run_dir: Path) -> list[Path]:
    """The ``metrics.<k>.csv`` files kept by earlier calls of a resumed run, in order of ``k``."""
    metrics = run_dir / METRICS_FILE
    numbered = [path for path in run_dir.glob(f"{metrics.stem}.*{metrics.suffix}") if segment_number(path) is not None]
    return sorted(numbered, key=segment_number)


def keep_earlier_metrics(run_dir: Path) -> None:
    """Rename ``metrics.csv`` to ``metrics.<k>.csv``, k after the highest kept: Lightning's CSV logger empties it."""
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        segments = metrics_segments(run_dir)
        next_number = segment_number(segments[-1]) + 1 if segments else 1
        os.replace(metrics, run_dir / f"{metrics.stem}.{next_number}{metrics.suffix}")


def restore_metrics_if_nothing_was_logged(run_dir: Path) -> None:
    """Undo :func:`keep_earlier_metrics` when the resumed call logged nothing (its run had finished)."""
    segments = metrics_segments(run_dir)
    if segments and not (run_dir / METRICS_FILE).exists():
        os.replace(segments[-1], run_dir / METRICS_FILE)
