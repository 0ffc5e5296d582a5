"""A training run built from a :class:`~eqff.train.config.RunConfig`, on Lightning: the frames
of each data source, the model it starts from, and :func:`train`, which joins them with the run
folder (:mod:`eqff.train.run_folder`), the Trainer (:mod:`eqff.train.trainer`) and the exported
model (:mod:`eqff.train.export`).
"""

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from eqff.data.frames import Frame
from eqff.data.graph import collate
from eqff.errors import element_names
from eqff.model_file import read_model_file
from eqff.models import ARCHITECTURES, Committee, architecture_name, build_model
from eqff.potential import DTYPES
from eqff.train.checkpoint import LAST_CHECKPOINT
from eqff.train.config import ConfigError, DataConfig, RunConfig
from eqff.train.dataset import GraphDataset, describe_source, frame_to_graph, make_loader, read_frames, require_labels
from eqff.train.export import export_best_model
from eqff.train.lightning import ELEMENTS_KEY, FITTED_KEY, LitPotential
from eqff.train.loss import EnergyForceLoss
from eqff.train.metadata import run_metadata
from eqff.train.metrics import check_elements
from eqff.train.run_folder import (
    CHECKPOINT_DIR,
    SPLIT_FILE,
    check_run_folder,
    prepare_run_dir,
    restore_metrics_if_nothing_was_logged,
)
from eqff.train.splits import random_split, write_json_atomic
from eqff.train.stats import energy_statistics, fitted_hyperparameters, fitted_values, refit_energy_offsets
from eqff.train.trainer import EpochStopwatch, build_trainer, find_callback

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

    When resuming, the bare model with the elements and fitted hyperparameters saved in the
    checkpoint: the checkpoint holds every weight and fitted buffer, so nothing is fitted and no
    ``model.initial_weights`` file is read (it need not exist any more). With ``model.initial_weights``, the model of
    that file (see :func:`load_initial_weights`) with its energy offsets refitted to ``train``
    (:func:`~eqff.train.stats.refit_energy_offsets`). Otherwise a fresh model with energy
    offsets and scale fitted to ``train`` and the hyperparameters that describe the data
    (:func:`~eqff.train.stats.fitted_hyperparameters`); a model with a ``fit_scales(graph)`` method
    (GemNet-T) also fits its internal scale factors on a batch of the first
    :data:`SCALE_FIT_FRAMES` training frames (each member of a committee its own).
    """
    dtype = DTYPES[config.dtype]
    if resume:
        elements, fitted = checkpoint_model_description(config.run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
        return _new_model(config, elements, dtype, fitted)
    if config.model.initial_weights is not None:
        model = load_initial_weights(config, train)
        refit_energy_offsets(model, [frame_to_graph(frame, model.cutoff, dtype) for frame in train], train)
        return model
    elements = config.model.elements or sorted({int(z) for frame in train for z in frame.atomic_numbers})
    fitted = fitted_hyperparameters(config.model.architecture, config.model.hyperparameters, train)
    model = _new_model(config, elements, dtype, fitted)
    offsets, scale = energy_statistics(train, elements)
    model.scale_shift.set_statistics(offsets, scale)
    for member in model.members if isinstance(model, Committee) else [model]:
        if hasattr(member, "fit_scales"):
            member.fit_scales(collate([frame_to_graph(frame, model.cutoff, dtype) for frame in train[:SCALE_FIT_FRAMES]]))
    return model


def _new_model(config: RunConfig, elements: list[int], dtype: torch.dtype, fitted: dict | None = None) -> nn.Module:
    """A fresh model of the config's architecture, or a committee of ``model.committee_size`` of them."""
    architecture = config.model.architecture
    hyperparameters = {**(fitted or {}), **config.model.hyperparameters, "elements": elements}
    if config.model.committee_size > 1:
        default_cutoff = inspect.signature(ARCHITECTURES[architecture]).parameters["cutoff"].default
        hyperparameters = {
            "elements": hyperparameters.pop("elements"),
            "cutoff": hyperparameters.pop("cutoff", default_cutoff),
            "member_architecture": architecture,
            "member_hyperparameters": hyperparameters,
            "size": config.model.committee_size,
        }
        architecture = "committee"
    return build_model(architecture, hyperparameters).to(dtype)


def checkpoint_model_description(path: Path) -> tuple[list[int], dict]:
    """The model's elements and fitted hyperparameters saved in a training checkpoint (see
    :meth:`LitPotential.on_save_checkpoint`)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return list(checkpoint[ELEMENTS_KEY]), dict(checkpoint.get(FITTED_KEY, {}))


def load_initial_weights(config: RunConfig, train: list[Frame]) -> nn.Module:
    """The model of the file ``model.initial_weights``, in the config's dtype. Hyperparameters that
    set a discretisation alone (a model's ``GRID_HYPERPARAMETERS``, PONITA's sphere grid) may differ:
    the weights then run on the config's grid.

    Raises:
        ConfigError: the file's architecture or other hyperparameters differ from the config's (the
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
    fitted = fitted_values(content["hyperparameters"])
    model = _new_model(config, config.model.elements or elements, DTYPES[config.dtype], fitted)
    expected = {"architecture": architecture_name(model), **model.hyperparameters}
    found = {"architecture": content["architecture"], **content["hyperparameters"]}
    differing = sorted(key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key))
    grid_only = getattr(model, "GRID_HYPERPARAMETERS", ())
    regridded = [key for key in differing if key in grid_only]
    differing = [key for key in differing if key not in grid_only]
    if differing:
        details = ", ".join(f"{key}: {found.get(key)!r} in the file, {expected.get(key)!r} in the config" for key in differing)
        raise ConfigError(f"model.initial_weights {path}: the model file does not match the config's model ({details})")
    state_dict = content["state_dict"]
    if regridded:  # e.g. PONITA's weights on a finer sphere grid
        try:
            state_dict = model.state_dict_for_grid(state_dict)
        except ValueError as error:
            raise ConfigError(f"model.initial_weights {path}: {error}") from None
    model.load_state_dict(state_dict)  # copied into the model's dtype
    return model


def check_devices(config: RunConfig) -> None:
    """Raise :class:`ConfigError` if this machine lacks the devices the config asks for."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but CUDA is not available on this machine (use cpu or auto)")
    if config.device == "cuda" and config.num_devices > torch.cuda.device_count():
        raise ConfigError(f"num_devices: {config.num_devices} GPUs asked for, {torch.cuda.device_count()} found")


def train(
    config: RunConfig,
    resume: bool = False,
    data_root: str | None = None,
    progress_bar: bool = True,
    split: tuple[list[SourceFrames], dict] | None = None,
) -> TrainingResult | None:
    """Train as ``config`` says; return what was produced (``None`` on the non-zero ranks of DDP).

    Args:
        resume: continue from ``checkpoints/last.ckpt`` (optimiser, schedule, EMA, early-stopping
            and timer state included); only ``training``, ``optimiser`` and ``schedule`` may differ.
        data_root: overrides ``data.root`` and ``$EQFF_DATA``.
        split: the frames to train and validate on and their record for ``split.json``, instead
            of the seeded split of ``config.data`` (:func:`split_frames`); the record's indices
            must be those of the frames in the pools of ``config.data``. For frames chosen
            otherwise (:mod:`eqff.active_learning`).
    """
    # Everything that can refuse the run (no data folder, a run folder in the way, initial
    # weights that do not fit) comes before the first write to the run folder.
    check_devices(config)
    sources, record = split or split_frames(config, data_root)
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
    loss = EnergyForceLoss(config.loss.energy_weight, config.loss.forces_weight, config.loss.kind,
                          config.loss.torque_weight)
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
    trainer = build_trainer(config, run_dir, len(train_loader), progress_bar, run_metadata(config, train_frames))
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
    training_seconds = find_callback(trainer, Timer).time_elapsed("train")
    model_path, best_mae = export_best_model(trainer, lit, config, train_frames, training_seconds)
    return TrainingResult(
        run_dir=run_dir,
        model_path=model_path,
        epochs=trainer.current_epoch,
        epoch_seconds=find_callback(trainer, EpochStopwatch).seconds,
        training_seconds=training_seconds,
        best_forces_mae=best_mae,
    )
