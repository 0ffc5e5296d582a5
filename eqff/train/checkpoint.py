"""Crash-safe training checkpoints.

Every checkpoint is written to a temporary file in the same folder, flushed to disk, and then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows), so a run killed at any
moment leaves either the previous checkpoint or the new one, never a partial file.
"""

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes through a temporary file and ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Flush a rename to disk (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FinalCheckpoint(pl.Callback):
    """Writes ``last.ckpt`` when training ends (max epochs, early stopping or the time budget).

    List it before the EMA callback: when training ends EMA copies the averaged weights into the
    model, and this checkpoint must still hold the raw weights so that a resumed run continues
    exactly.

    Args:
        path: the checkpoint file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


def checkpoint_model_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's weights in a Lightning checkpoint of :class:`~eqff.train.lightning.LitPotential`
    (the EMA weights, when EMA is on: the checkpoint's ``state_dict`` holds the averaged ones)."""
    prefix = "model."  # LitPotential's name for the model
    return {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
