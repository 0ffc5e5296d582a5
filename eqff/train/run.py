"""A training run built from a :class:`~eqff.train.config.RunConfig`, on Lightning.

Run folder ``output_dir/name/``::

    config.yaml            the config of the (latest) run
    split.json             the frames used (see :func:`eqff.train.splits.read_split`)
    metrics.csv            per-step and per-epoch metrics (and tensorboard/ if installed)
    metrics.1.csv, ...     the metrics of earlier segments of a resumed run, oldest first
    checkpoints/last.ckpt  written every N epochs and at the end; ``resume=True`` continues from it
    checkpoints/best.ckpt  the epoch with the lowest validation force MAE (EMA weights)
    <name>.eqff            the best model, for EqffCalculator, ``eqff md`` and ``eqff evaluate``
"""

import importlib.util
import logging
import os
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning
import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from eqff.data.frames import Frame
from eqff.data.graph import collate
from eqff.errors import EqffError, element_names
from eqff.model_file import MODEL_FILE_SUFFIX, read_model_file, save_model
from eqff.models import architecture_name, build_model
from eqff.potential import DTYPES
from eqff.train.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    AtomicCheckpointIO,
    FinalCheckpoint,
    checkpoint_model_weights,
)
from eqff.train.config import ConfigError, DataConfig, RunConfig, parse_config
from eqff.train.dataset import (
    GraphDataset,
    describe_source,
    frame_to_graph,
    make_loader,
    read_frames,
    require_labels,
)
from eqff.train.lightning import ELEMENTS_KEY, EMA, MONITOR, ConfiguredEarlyStopping, LitPotential, StageTwo
from eqff.train.loss import EnergyForceLoss
from eqff.train.metrics import check_elements
from eqff.train.splits import random_split, write_json_atomic
from eqff.train.snapshots import SNAPSHOT_DIR, Snapshots
from eqff.train.stats import energy_statistics, refit_energy_offsets

SPLIT_FILE = "split.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
SCALE_FIT_FRAMES = 32
"""Training frames in the one batch on which a model with ``fit_scales`` (GemNet-T) fits its
internal scale factors before training."""


@dataclass
class TrainingResult:
    """What a finished run produced.

    Attributes:
        model_path: the exported best model.
        epochs: epochs completed in total (over resumed runs).
        epoch_seconds: wall seconds of each epoch run by this call (training + validation).
        training_seconds: training wall time in total (over resumed runs).
        best_forces_mae: best validation force MAE, meV/Å.
    """

    run_dir: Path
    model_path: Path
    epochs: int
    epoch_seconds: list[float]
    training_seconds: float
    best_forces_mae: float

    @property
    def epochs_per_hour(self) -> float:
        return 3600 * len(self.epoch_seconds) / sum(self.epoch_seconds) if self.epoch_seconds else 0.0


class EpochStopwatch(pl.Callback):
    """Records the wall seconds of every training epoch (its validation included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class SourceFrames:
    """The training and validation frames of one data source (see :attr:`DataConfig.label`)."""

    label: str
    train: list[Frame]
    validation: list[Frame]


def split_source(data: DataConfig, root: str | None) -> tuple[SourceFrames, dict]:
    """One source's training and validation frames and its record in ``split.json``."""
    pool = read_frames(data, "train", root)
    indices = random_split(len(pool), data.num_train, data.num_validation, data.seed)
    separate_test = data.dataset == "rmd17"
    record = {
        "data": data.model_dump(),
        "pool": describe_source(data, "train"),
        "num_frames": len(pool),
        "train": indices["train"],
        "validation": indices["validation"],
        "test": None if separate_test else indices["test"],
        "test_source": describe_source(data, "test") if separate_test else "the pool frames not in train or validation",
    }
    frames = SourceFrames(data.label, [pool[i] for i in indices["train"]], [pool[i] for i in indices["validation"]])
    require_labels(frames.train + frames.validation, record["pool"])
    return frames, record


def split_frames(config: RunConfig, root: str | None) -> tuple[list[SourceFrames], dict]:
    """Each source's training and validation frames, and the content of ``split.json``."""
    sources, records = zip(*(split_source(data, root) for data in config.data))
    return list(sources), {"sources": list(records)}


def build_initial_model(config: RunConfig, train: list[Frame], resume: bool = False) -> nn.Module:
    """The model a run starts from, in the config's dtype.

    When resuming, the bare model with the elements saved in the checkpoint: the checkpoint
    holds every weight and fitted buffer, so nothing is fitted and no ``model.initial_weights``
    file is read (it need not exist any more). With ``model.initial_weights``, the model of
    that file (see :func:`load_initial_weights`) with its energy offsets refitted to ``train``
    (:func:`~eqff.train.stats.refit_energy_offsets`). Otherwise a fresh model with energy
    offsets and scale fitted to ``train``; a model with a ``fit_scales(graph)`` method
    (GemNet-T) also fits its internal scale factors on a batch of the first
    :data:`SCALE_FIT_FRAMES` training frames.
    """
    dtype = DTYPES[config.dtype]
    if resume:
        return _new_model(config, checkpoint_elements(config.run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT), dtype)
    if config.model.initial_weights is not None:
        model = load_initial_weights(config, train)
        refit_energy_offsets(model, [frame_to_graph(frame, model.cutoff, dtype) for frame in train], train)
        return model
    elements = config.model.elements or sorted({int(z) for frame in train for z in frame.atomic_numbers})
    model = _new_model(config, elements, dtype)
    offsets, scale = energy_statistics(train, elements)
    model.scale_shift.set_statistics(offsets, scale)
    if hasattr(model, "fit_scales"):
        model.fit_scales(collate([frame_to_graph(frame, model.cutoff, dtype) for frame in train[:SCALE_FIT_FRAMES]]))
    return model


def _new_model(config: RunConfig, elements: list[int], dtype: torch.dtype) -> nn.Module:
    hyperparameters = {**config.model.hyperparameters, "elements": elements}
    return build_model(config.model.architecture, hyperparameters).to(dtype)


def checkpoint_elements(path: Path) -> list[int]:
    """The model's elements saved in a training checkpoint (see :meth:`LitPotential.on_save_checkpoint`)."""
    return list(torch.load(path, map_location="cpu", weights_only=True)[ELEMENTS_KEY])


def load_initial_weights(config: RunConfig, train: list[Frame]) -> nn.Module:
    """The model of the file ``model.initial_weights``, in the config's dtype.

    Raises:
        ConfigError: the file's architecture or hyperparameters differ from the config's (the
            message names the differing keys), or the training frames hold an element the
            file's model does not know.
    """
    path = config.model.initial_weights
    content = read_model_file(path)
    elements = content["hyperparameters"]["elements"]
    present = {int(z) for frame in train for z in frame.atomic_numbers}
    unknown = sorted(present - set(elements))
    if unknown:
        raise ConfigError(
            f"model.initial_weights {path}: the training frames hold {element_names(unknown)}, which the "
            f"pretrained model never saw (it knows {element_names(elements)}); train a new model instead"
        )
    model = _new_model(config, config.model.elements or elements, DTYPES[config.dtype])
    expected = {"architecture": architecture_name(model), **model.hyperparameters}
    found = {"architecture": content["architecture"], **content["hyperparameters"]}
    differing = sorted(key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key))
    if differing:
        details = ", ".join(f"{key}: {found.get(key)!r} in the file, {expected.get(key)!r} in the config" for key in differing)
        raise ConfigError(f"model.initial_weights {path}: the model file does not match the config's model ({details})")
    model.load_state_dict(content["state_dict"])  # copied into the model's dtype
    return model


class RunFolderError(EqffError):
    """A new run's folder already holds a run, or a resumed run's folder holds no checkpoint."""


def check_devices(config: RunConfig) -> None:
    """Raise :class:`ConfigError` if this machine lacks the devices the config asks for."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but CUDA is not available on this machine (use cpu or auto)")
    if config.device == "cuda" and config.num_devices > torch.cuda.device_count():
        raise ConfigError(f"num_devices: {config.num_devices} GPUs asked for, {torch.cuda.device_count()} found")


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


class _WithoutTips(logging.Filter):
    """Drops Lightning's advertisements ("💡 Tip: ...") from its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def build_trainer(config: RunConfig, run_dir: Path, num_batches: int, progress_bar: bool) -> pl.Trainer:
    """A Lightning Trainer with EMA, schedules, early stopping, atomic checkpoints and loggers."""
    settings = config.training
    checkpoints = run_dir / CHECKPOINT_DIR
    budget = timedelta(minutes=settings.max_time_minutes) if settings.max_time_minutes else None
    callbacks: list[pl.Callback] = [FinalCheckpoint(checkpoints / LAST_CHECKPOINT)]  # before EMA: see FinalCheckpoint
    if settings.ema_decay is not None:
        callbacks.append(EMA(settings.ema_decay))
    if settings.stage_two is not None:  # before the lr is logged
        stage = settings.stage_two
        forces_weight = config.loss.forces_weight if stage.forces_weight is None else stage.forces_weight
        loss = EnergyForceLoss(stage.energy_weight, forces_weight, config.loss.kind)
        callbacks.append(StageTwo(stage.start_epoch, loss, stage.lr))
    callbacks += [Timer(duration=budget, interval="epoch"), EpochStopwatch(), LearningRateMonitor("epoch")]
    if settings.snapshot_minutes:
        metadata = {"dataset": [data.model_dump() for data in config.data], "config": config.model_dump(mode="json")}
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


def hardware_description(trainer: pl.Trainer) -> dict:
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


def _callback(trainer: pl.Trainer, kind: type, **attributes) -> pl.Callback:
    return next(
        c for c in trainer.callbacks if isinstance(c, kind) and all(getattr(c, k) == v for k, v in attributes.items())
    )


def export_best_model(
    trainer: pl.Trainer, lit: LitPotential, config: RunConfig, train: list[Frame], training_seconds: float
) -> tuple[Path, float]:
    """Save the best checkpoint's (EMA) weights as ``<name>.eqff``; return its path and force MAE (meV/Å)."""
    best = _callback(trainer, ModelCheckpoint, monitor=MONITOR)
    checkpoint = trainer.strategy.checkpoint_io.load_checkpoint(best.best_model_path, weights_only=True)
    lit.model.load_state_dict(checkpoint_model_weights(checkpoint))
    best_mae = float(best.best_model_score)
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
        "example_structure": {
            "atomic_numbers": example.atomic_numbers.tolist(),
            "positions": example.positions.tolist(),
        },
    }
    path = save_model(config.run_dir / f"{config.name}{MODEL_FILE_SUFFIX}", lit.model, metadata)
    return path, best_mae


def train(
    config: RunConfig, resume: bool = False, data_root: str | None = None, progress_bar: bool = True
) -> TrainingResult | None:
    """Train as ``config`` says; return what was produced (``None`` on the non-zero ranks of DDP).

    Args:
        resume: continue from ``checkpoints/last.ckpt`` (optimiser, schedule, EMA, early-stopping
            and timer state included); only ``training``, ``optimiser`` and ``schedule`` may differ.
        data_root: overrides ``data.root`` and ``$EQFF_DATA``.
    """
    # Everything that can refuse the run (no data folder, a run folder in the way, initial
    # weights that do not fit) comes before the first write to the run folder.
    check_devices(config)
    sources, record = split_frames(config, data_root)
    train_frames = [frame for source in sources for frame in source.train]
    check_run_folder(config, resume)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    model = build_initial_model(config, train_frames, resume)
    check_elements(model, train_frames + [frame for source in sources for frame in source.validation])
    run_dir = prepare_run_dir(config, resume)
    if rank_zero_only.rank == 0:
        write_json_atomic(run_dir / SPLIT_FILE, record)
    dtype = DTYPES[config.dtype]
    settings = config.training
    train_loader = make_loader(
        GraphDataset(train_frames, model.cutoff, dtype), settings.batch_size, True, config.seed, settings.num_workers
    )
    validation_loaders = [
        make_loader(
            GraphDataset(source.validation, model.cutoff, dtype),
            settings.validation_batch_size,
            False,
            num_workers=settings.num_workers,
        )
        for source in sources
    ]
    loss = EnergyForceLoss(config.loss.energy_weight, config.loss.forces_weight, config.loss.kind)
    rotation_seed = config.seed if settings.random_rotations else None
    lit = LitPotential(
        model,
        loss,
        config.optimiser,
        config.schedule,
        settings.max_epochs,
        settings.compile,
        rotation_seed,
        [source.label for source in sources],
    )
    trainer = build_trainer(config, run_dir, len(train_loader), progress_bar)
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    with warnings.catch_warnings():
        # The run folder holds more than logs (and, on resume, checkpoints); graphs are precomputed,
        # so loader workers are optional.
        warnings.filterwarnings("ignore", message=".*(Experiment logs|Checkpoint) directory .* exists and is not empty")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # inside Lightning
        trainer.fit(lit, train_loader, validation_loaders, ckpt_path=last if resume else None)
    if not trainer.is_global_zero:
        return None
    restore_metrics_if_nothing_was_logged(run_dir)
    training_seconds = _callback(trainer, Timer).time_elapsed("train")
    model_path, best_mae = export_best_model(trainer, lit, config, train_frames, training_seconds)
    return TrainingResult(
        run_dir=run_dir,
        model_path=model_path,
        epochs=trainer.current_epoch,
        epoch_seconds=_callback(trainer, EpochStopwatch).seconds,
        training_seconds=training_seconds,
        best_forces_mae=best_mae,
    )
