"""The model file a finished run exports: the best checkpoint's weights with the run's record."""

import os
import platform
from pathlib import Path

import lightning
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from eqff.data.frames import Frame
from eqff.domain import training_domain
from eqff.model_file import MODEL_FILE_SUFFIX, save_model
from eqff.train.checkpoint import BEST_CHECKPOINT, checkpoint_model_weights
from eqff.train.config import RunConfig
from eqff.train.dataset import describe_source
from eqff.train.lightning import MONITOR, LitPotential
from eqff.train.run_folder import CHECKPOINT_DIR, SPLIT_FILE
from eqff.train.trainer import find_callback


def hardware_description(trainer: pl.Trainer) -> dict:
    """What a run trained on (device, CPU, threads, torch and Lightning versions), for the model's metadata."""
    device = trainer.strategy.root_device
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "num_devices": trainer.num_devices * trainer.num_nodes,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),  # a TorchVersion would not load with weights_only
        "lightning": lightning.__version__,
    }


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
    example = train[0]
    metadata = {
        "training_data": "; ".join(describe_source(data, "train") for data in config.data),
        "dataset": [data.model_dump() for data in config.data],
        "split_file": SPLIT_FILE,
        "config": config.model_dump(mode="json"),
        "training_time_s": training_seconds,
        "hardware": hardware_description(trainer),
        "epochs": trainer.current_epoch,
        "best_epoch": int(checkpoint["epoch"]) + 1,  # counted from 1
        "validation_forces_mae_meV_per_A": best_mae,
        "training_domain": training_domain(frame.atomic_numbers for frame in train),
        "example_structure": {
            "atomic_numbers": example.atomic_numbers.tolist(),
            "positions": example.positions.tolist(),
        },
    }
    path = save_model(config.run_dir / f"{config.name}{MODEL_FILE_SUFFIX}", lit.model, metadata)
    return path, best_mae
