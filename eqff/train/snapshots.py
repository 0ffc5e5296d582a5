"""Snapshots of a run's best model at fixed training times, for time-to-accuracy curves."""

import copy
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint, Timer

from eqff.model_file import MODEL_FILE_SUFFIX, save_model
from eqff.train.checkpoint import checkpoint_model_weights
from eqff.train.metadata import hardware_description

SNAPSHOT_DIR = "snapshots"


def snapshot_name(run_name: str, minutes: float) -> str:
    """The file name of a run's snapshot after ``minutes`` of training, e.g. ``painn-50-10min.eqff``."""
    return f"{run_name}-{minutes:g}min{MODEL_FILE_SUFFIX}"


class Snapshots(pl.Callback):
    """At the end of the first epoch at which the training time (validation included, summed
    over resumed runs) reaches each of ``minutes``, saves the best model so far (the best
    checkpoint's EMA weights: what the run would export if it stopped there) as a model file.

    List it after the ``Timer``; Lightning validates before ``on_train_epoch_end``, so the best
    checkpoint is that of this epoch's validation when it is the best.

    Args:
        minutes: training times of the snapshots.
        folder: where the files go (:func:`snapshot_name`).
        run_name: the run's name, the files' prefix.
        metadata: stored in every snapshot (:func:`~eqff.train.metadata.run_metadata`), besides
            the hardware and its own time, epoch and validation error.
    """

    def __init__(self, minutes: list[float], folder: Path, run_name: str, metadata: dict[str, Any]) -> None:
        self.minutes = sorted(minutes)
        self.folder = folder
        self.run_name = run_name
        self.metadata = metadata
        self.taken: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = next(c for c in trainer.callbacks if isinstance(c, Timer)).time_elapsed("train")
        due = [m for m in self.minutes if m * 60 <= seconds and m not in self.taken]
        if not due:
            return
        self.taken += due
        if not trainer.is_global_zero:
            return
        best = next(c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor)
        checkpoint = trainer.strategy.checkpoint_io.load_checkpoint(best.best_model_path, weights_only=True)
        model = copy.deepcopy(pl_module.model)
        model.load_state_dict(checkpoint_model_weights(checkpoint))
        self.folder.mkdir(parents=True, exist_ok=True)
        for minutes in due:
            metadata = {
                **self.metadata,
                "hardware": hardware_description(trainer),
                "snapshot_minutes": minutes,
                "training_time_s": seconds,
                "epochs": trainer.current_epoch + 1,
                "best_epoch": int(checkpoint["epoch"]) + 1,
                "validation_forces_mae_meV_per_A": float(best.best_model_score),
            }
            save_model(self.folder / snapshot_name(self.run_name, minutes), model, metadata)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": self.taken}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.taken = list(state_dict["taken"])
