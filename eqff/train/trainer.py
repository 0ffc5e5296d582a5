"""The Lightning Trainer of a run: callbacks (EMA, checkpoints, schedules, early stopping,
second stage, snapshots, timers) and loggers."""

import importlib.util
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from eqff.train.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, AtomicCheckpointIO, FinalCheckpoint
from eqff.train.config import RunConfig
from eqff.train.lightning import EMA, MONITOR, ConfiguredEarlyStopping, StageTwo
from eqff.train.loss import EnergyForceLoss
from eqff.train.run_folder import CHECKPOINT_DIR
from eqff.train.snapshots import SNAPSHOT_DIR, Snapshots


class EpochStopwatch(pl.Callback):
    """Records the wall seconds of every training epoch (its validation included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class _WithoutTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ...") from its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def build_trainer(
    config: RunConfig, run_dir: Path, num_batches: int, progress_bar: bool, metadata: dict[str, Any]
) -> pl.Trainer:
    """A Lightning Trainer with EMA, schedules, early stopping, atomic checkpoints and loggers;
    ``metadata`` (:func:`~eqff.train.metadata.run_metadata`) goes into its snapshots."""
    settings = config.training
    checkpoints = run_dir / CHECKPOINT_DIR
    budget = timedelta(minutes=settings.max_time_minutes) if settings.max_time_minutes else None
    callbacks: list[pl.Callback] = [FinalCheckpoint(checkpoints / LAST_CHECKPOINT)]  # before EMA: see FinalCheckpoint
    if settings.ema_decay is not None:
        callbacks.append(EMA(settings.ema_decay))
    if settings.stage_two is not None:  # before the lr is logged
        stage = settings.stage_two
        forces_weight = config.loss.forces_weight if stage.forces_weight is None else stage.forces_weight
        loss = EnergyForceLoss(stage.energy_weight, forces_weight, config.loss.kind, config.loss.torque_weight)
        callbacks.append(StageTwo(stage.start_epoch, loss, stage.lr))
    callbacks += [Timer(duration=budget, interval="epoch"), EpochStopwatch(), LearningRateMonitor("epoch")]
    if settings.snapshot_minutes:
        callbacks.append(Snapshots(settings.snapshot_minutes, run_dir / SNAPSHOT_DIR, config.name, metadata))
    if settings.early_stopping_patience is not None:
        callbacks.append(ConfiguredEarlyStopping(settings.early_stopping_patience))
    callbacks += [  # saved when validation ends; Lightning runs ModelCheckpoints after the other callbacks
        ModelCheckpoint(  # at validation's end, so that epoch-end callbacks (Snapshots) see this epoch's best
            checkpoints,
            Path(BEST_CHECKPOINT).stem,
            monitor=MONITOR,
            mode="min",
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        ),
        ModelCheckpoint(
            checkpoints,
            Path(LAST_CHECKPOINT).stem,
            every_n_epochs=settings.checkpoint_every_n_epochs,
            enable_version_counter=False,
        ),
    ]
    loggers = [CSVLogger(run_dir, name="", version="")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    without_tips = _WithoutTips()
    lightning_log.addFilter(without_tips)  # Lightning advertises while it builds a Trainer
    try:
        return pl.Trainer(
            accelerator=config.device,
            devices=config.num_devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision="64-true" if config.dtype == "float64" else "32-true",
            max_epochs=settings.max_epochs or -1,
            callbacks=callbacks,
            logger=loggers,
            plugins=[AtomicCheckpointIO()],
            gradient_clip_val=settings.gradient_clip,
            inference_mode=False,  # validation computes forces by autograd
            num_sanity_val_steps=0,
            log_every_n_steps=min(settings.log_every_n_steps, num_batches),
            use_distributed_sampler=False,  # EpochSampler shards the data itself
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            default_root_dir=run_dir,
        )
    finally:
        lightning_log.removeFilter(without_tips)


def find_callback(trainer: pl.Trainer, kind: type, **attributes) -> pl.Callback:
    """The trainer's first callback of type ``kind`` whose attributes have the given values."""
    return next(
        c for c in trainer.callbacks if isinstance(c, kind) and all(getattr(c, k) == v for k, v in attributes.items())
    )
