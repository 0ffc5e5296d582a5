"""The model file a finished run exports: the best checkpoint's weights with the run's record."""

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from eqff.data.frames import Frame
from eqff.model_file import MODEL_FILE_SUFFIX, save_model
from eqff.train.checkpoint import BEST_CHECKPOINT, checkpoint_model_weights
from eqff.train.config import RunConfig
from eqff.train.lightning import MONITOR, LitPotential
from eqff.train.metadata import hardware_description, run_metadata
from eqff.train.run_folder import CHECKPOINT_DIR
from eqff.train.trainer import find_callback


def best_checkpoint(trainer: pl.Trainer, run_dir: Path) -> tuple[dict, float]:
    """The best checkpoint of a run and its validation force MAE (meV/Å).

    Lightning forgets the best checkpoint of a run resumed from another folder than the one its
    checkpoints were written in (a run folder moved or copied); then the run folder's
    ``best.ckpt`` and the score stored in it are taken.
    """
    best = find_callback(trainer, ModelCheckpoint, monitor=MONITOR)
    path = best.best_model_path or run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT
    checkpoint = trainer.strategy.checkpoint_io.load_checkpoint(path, weights_only=True)
    if best.best_model_score is not None:
        return checkpoint, float(best.best_model_score)
    [stored] = [state for key, state in checkpoint["callbacks"].items()
                if key.startswith(ModelCheckpoint.__name__) and state.get("monitor") == MONITOR]
    return checkpoint, float(stored["best_model_score"])


def export_best_model(
    trainer: pl.Trainer, lit: LitPotential, config: RunConfig, train: list[Frame], training_seconds: float
) -> tuple[Path, float]:
    """Save the best checkpoint's (EMA) weights as ``<name>.eqff``; return its path and force MAE (meV/Å)."""
    checkpoint, best_mae = best_checkpoint(trainer, config.run_dir)
    lit.model.load_state_dict(checkpoint_model_weights(checkpoint))
    metadata = {
        **run_metadata(config, train),
        "training_time_s": training_seconds,
        "hardware": hardware_description(trainer),
        "epochs": trainer.current_epoch,
        "best_epoch": int(checkpoint["epoch"]) + 1,  # counted from 1
        "validation_forces_mae_meV_per_A": best_mae,
    }
    path = save_model(config.run_dir / f"{config.name}{MODEL_FILE_SUFFIX}", lit.model, metadata)
    return path, best_mae
