"""Training configuration: a typed, validated tree read from YAML (the only place YAML is parsed).

Every section forbids unknown keys, so a misspelt key is an error naming it (with a suggestion).
Units: energies eV, lengths Å, times minutes; loss weights multiply mean squared errors in
(eV/atom)² and (eV/Å)².
"""

import copy
import difflib
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eqff.data.md17 import MOLECULES
from eqff.data.units import ENERGY_UNITS, LENGTH_UNITS
from eqff.errors import EqffError
from eqff.models import ARCHITECTURES
from eqff.train.loss import LossKind


class ConfigError(EqffError):
    """A training configuration file is unreadable or invalid; the message names the file and keys."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Where the frames come from and how they are split.

    Attributes:
        dataset: ``rmd17`` (official splits: train and validation frames are drawn from
            ``train_0N``, the test set is ``test_0N``), ``md17`` or ``extxyz`` (seeded random split
            of all frames, the rest is the test set).
        molecule: rMD17/MD17 molecule name, e.g. ``aspirin``.
        split: rMD17 split number N (1-5).
        path: extxyz file; relative paths are taken relative to the data root.
        energy_key, forces_key: extxyz info/array keys of the labels.
        energy_unit, length_unit: units of the extxyz file (converted to eV and Å on reading).
        num_train, num_validation: numbers of training and validation frames.
        seed: seed of the split permutation (``numpy.random.default_rng(seed).permutation``).
        root: data root; default ``$EQFF_DATA`` (the ``--data`` option of ``eqff train`` overrides both).

    A run may train on several sources at once (``data`` a list of them): see :attr:`label`.
    """

    dataset: Literal["rmd17", "md17", "extxyz"]
    molecule: str | None = None
    split: int = Field(1, ge=1, le=5)
    path: str | None = None
    energy_key: str = "energy"
    forces_key: str = "forces"
    energy_unit: str = "eV"
    length_unit: str = "Å"
    num_train: int = Field(950, gt=0)
    num_validation: int = Field(50, gt=0)
    seed: int = 0
    root: str | None = None

    @field_validator("molecule")
    @classmethod
    def _known_molecule(cls, molecule: str | None) -> str | None:
        if molecule is not None and molecule not in MOLECULES:
            hint = _suggestion(molecule, set(MOLECULES))
            raise ValueError(f"unknown molecule {molecule!r}{hint}; known: {', '.join(MOLECULES)}")
        return molecule

    @field_validator("energy_unit")
    @classmethod
    def _known_energy_unit(cls, unit: str) -> str:
        if unit not in ENERGY_UNITS:
            raise ValueError(f"unknown energy unit {unit!r}; known: {sorted(ENERGY_UNITS)}")
        return unit

    @field_validator("length_unit")
    @classmethod
    def _known_length_unit(cls, unit: str) -> str:
        if unit not in LENGTH_UNITS:
            raise ValueError(f"unknown length unit {unit!r}; known: {sorted(LENGTH_UNITS)}")
        return unit

    @model_validator(mode="after")
    def _source_is_complete(self) -> "DataConfig":
        if self.dataset == "extxyz":
            if self.path is None:
                raise ValueError("dataset 'extxyz' needs 'path'")
            if self.molecule is not None:
                raise ValueError("'molecule' is only for the rmd17 and md17 datasets")
        else:
            if self.molecule is None:
                raise ValueError(f"dataset {self.dataset!r} needs 'molecule'")
            if self.path is not None:
                raise ValueError("'path' is only for the extxyz dataset")
        if self.dataset == "rmd17" and self.num_train + self.num_validation > 1000:
            raise ValueError("rMD17 train files hold 1000 frames: num_train + num_validation must be <= 1000")
        return self

    @property
    def label(self) -> str:
        """The source's short name in logs and per-source errors: the molecule for rMD17
        (``aspirin``), ``md17-<molecule>`` for MD17, the file name without suffix for extxyz."""
        if self.dataset == "rmd17":
            return self.molecule
        if self.dataset == "md17":
            return f"md17-{self.molecule}"
        return Path(self.path).stem


class ModelConfig(_Section):
    """The model to train.

    Attributes:
        architecture, hyperparameters: the architecture's name and constructor arguments.
        elements: atomic numbers the model knows; default: those of the training frames.
        initial_weights: a model file (path, or the name of a shipped potential) whose weights,
            buffers included (energy offsets and scale, fitted scale factors), start the run
            instead of a fresh initialisation: to go on training a finished run with a new
            schedule, or to fine-tune a potential on new frames. Its architecture and
            hyperparameters must be those of this section; the model keeps the file's elements,
            and the training frames may hold only those. The energy offsets are refitted on the
            training frames before the first step (:func:`eqff.train.stats.refit_energy_offsets`).
        committee_size: train this many models of ``architecture`` and ``hyperparameters``
            together, from different random initial weights, as one committee
            (:class:`eqff.models.committee.Committee`): its calculator gives their mean and, as
            uncertainties, their spread. 1: one model.
    """

    architecture: str = "painn"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    elements: list[int] | None = None
    initial_weights: str | None = None
    committee_size: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _known_architecture_and_arguments(self) -> "ModelConfig":
        if self.architecture == "committee":
            raise ValueError("train a committee with 'model.committee_size: K' and its members' architecture "
                             "and hyperparameters, not with architecture 'committee'")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; known: {sorted(ARCHITECTURES)}")
        allowed = set(inspect.signature(ARCHITECTURES[self.architecture]).parameters) - {"elements"}
        for key in self.hyperparameters:
            if key not in allowed:
                raise ValueError(
                    f"unknown key 'hyperparameters.{key}' for {self.architecture!r}{_suggestion(key, allowed)}; "
                    f"allowed: {sorted(allowed)} (elements go in 'model.elements')"
                )
        return self


class LossConfig(_Section):
    """The loss (:class:`~eqff.train.loss.EnergyForceLoss`): its kind and the weights of its terms.

    ``mse``: squared errors of the energy per atom ((eV/atom)²) and of the force components
    ((eV/Å)²). ``l2mae``: absolute error of the energy per atom (eV/atom) and length of the force
    error vector of each atom (eV/Å). ``torque_weight``: the weight of the net torque of each
    isolated frame's force error (eV² or eV), which pushes a model that is only approximately
    invariant under rotations (PONITA) towards invariance.
    """

    kind: LossKind = "mse"
    energy_weight: float = Field(1.0, ge=0)
    forces_weight: float = Field(1000.0, ge=0)
    torque_weight: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> "LossConfig":
        if self.energy_weight == 0 and self.forces_weight == 0:
            raise ValueError("at least one of energy_weight and forces_weight must be positive")
        return self


class OptimiserConfig(_Section):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    amsgrad: bool = False


class ScheduleConfig(_Section):
    """``plateau``: multiply lr by ``factor`` after ``patience`` epochs without a better validation
    force MAE; ``cosine``: cosine decay to ``min_lr`` over ``training.max_epochs``; ``none``.

    ``warmup_steps``: over the first N optimiser steps the scheduled lr is scaled by
    (step + 1) / N, so that a fresh optimiser state (Adam's moment estimates) builds up before
    full-size steps; needed when a run starts from trained weights (``model.initial_weights``).
    """

    name: Literal["plateau", "cosine", "none"] = "plateau"
    factor: float = Field(0.8, gt=0, lt=1)
    patience: int = Field(25, ge=0)
    min_lr: float = Field(1e-6, ge=0)
    warmup_steps: int = Field(0, ge=0)


class StageTwoConfig(_Section):
    """A second stage for the last epochs of a run, as MACE's: a larger energy weight and,
    optionally, a fixed lower learning rate, to lower the energy error once forces are learnt.

    Attributes:
        start_epoch: the first epoch of the second stage, counted from 0.
        energy_weight: the loss's energy weight from then on.
        forces_weight: the loss's forces weight from then on (``None``: that of ``loss``).
        lr: the learning rate from then on, held fixed (the schedule stops); ``None``: the
            schedule goes on.

    The best model (the exported one) and early stopping count only the second stage's epochs.
    """

    start_epoch: int = Field(ge=0)
    energy_weight: float = Field(ge=0)
    forces_weight: float | None = Field(None, ge=0)
    lr: float | None = Field(None, gt=0)


class TrainingConfig(_Section):
    """Loop settings.

    Attributes:
        max_epochs: stop after this many epochs (``None``: only the time budget stops the run).
        max_time_minutes: wall-clock budget of training, summed over resumed runs; checked at the
            end of each epoch, so a run may exceed it by up to one epoch.
        ema_decay: decay of the exponential moving average of the weights per step (``None``: off);
            validation and the exported model use the averaged weights.
        gradient_clip: clip the gradient norm to this value (``None``: off).
        early_stopping_patience: stop after this many epochs without a better validation force MAE.
        checkpoint_every_n_epochs: write ``checkpoints/last.ckpt`` every N epochs (and at the end).
        compile: compute the training steps' energies and forces with ``torch.compile``
            (:func:`eqff.nn.forces.compiled_energy_forces`): the first step compiles for
            minutes, then steps of models of many small operations (SEGNN) run several times
            faster; validation stays eager. For long runs, not for short ones.
        random_rotations: turn every training frame by a fresh random rotation at every step
            (:mod:`eqff.train.augment`), reproducibly from ``seed``, as PONITA's reference
            training does: its invariance is only approximate. Exactly invariant models gain
            nothing from it.
        stage_two: a second stage with other loss weights for the last epochs (``None``: none).
        snapshot_minutes: at the end of the first epoch at which the training time reaches each
            of these minutes, save the best model so far as
            ``snapshots/<name>-<minutes>min.eqff`` in the run folder (for time-to-accuracy curves,
            see ``eqff learning-curve``).
    """

    batch_size: int = Field(5, gt=0)
    validation_batch_size: int = Field(10, gt=0)
    max_epochs: int | None = Field(1000, gt=0)
    max_time_minutes: float | None = Field(None, gt=0)
    ema_decay: float | None = Field(0.99, ge=0, lt=1)
    gradient_clip: float | None = Field(10.0, gt=0)
    early_stopping_patience: int | None = Field(100, gt=0)
    checkpoint_every_n_epochs: int = Field(1, gt=0)
    log_every_n_steps: int = Field(20, gt=0)
    num_workers: int = Field(0, ge=0)
    compile: bool = False
    random_rotations: bool = False
    stage_two: StageTwoConfig | None = None
    snapshot_minutes: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_stop(self) -> "TrainingConfig":
        if self.max_epochs is None and self.max_time_minutes is None:
            raise ValueError("give max_epochs, max_time_minutes or both")
        if self.stage_two is not None and self.max_epochs is not None and self.stage_two.start_epoch >= self.max_epochs:
            raise ValueError(f"stage_two.start_epoch {self.stage_two.start_epoch} is not before max_epochs {self.max_epochs}")
        if any(minutes <= 0 for minutes in self.snapshot_minutes):
            raise ValueError(f"snapshot_minutes must be positive, got {self.snapshot_minutes}")
        return self


class RunConfig(_Section):
    """A whole training run. Its folder is ``output_dir/name``.

    Attributes:
        seed: seeds model initialisation and the (per-epoch) order of training frames.
        device: ``cpu``, ``cuda`` or ``auto``; num_devices > 1 with strategy ``ddp`` trains on
            several devices (one process each), on each of ``num_nodes`` machines.
        dtype: floating dtype of model and positions (labels stay float64).
        data: the training data: one source (a mapping) or several (a list of mappings, each
            split on its own; their training frames are trained on together).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output_dir: str = "runs"
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    num_devices: int = Field(1, gt=0)
    num_nodes: int = Field(1, gt=0)
    strategy: Literal["auto", "ddp"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    data: list[DataConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimiser: OptimiserConfig = Field(default_factory=OptimiserConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @field_validator("data", mode="before")
    @classmethod
    def _one_source_or_several(cls, data: Any) -> Any:
        return [data] if isinstance(data, dict) else data

    @field_validator("data")
    @classmethod
    def _distinct_labels(cls, sources: list[DataConfig]) -> list[DataConfig]:
        labels = [source.label for source in sources]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"each data source must be named once; repeated: {', '.join(repeated)}")
        return sources

    @model_validator(mode="after")
    def _cosine_needs_epochs(self) -> "RunConfig":
        if self.schedule.name == "cosine" and self.training.max_epochs is None:
            raise ValueError("schedule 'cosine' needs training.max_epochs")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def _suggestion(key: str, allowed: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section_fields(loc: tuple) -> set[str]:
    """Names allowed at the parent of ``loc`` (for suggestions on unknown keys)."""
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of sections
            continue
        annotation = model.model_fields[part].annotation  # a section, a list of them, or one or None
        sections = [a for a in get_args(annotation) or (annotation,) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sections:
            return set()
        model = sections[0]
    return set(model.model_fields)


def _describe(error: dict, one_source: bool) -> str:
    """One line naming the key of a validation error; ``one_source``: ``data`` was a mapping,
    so the index pydantic reports for its (implicit) list is left out."""
    loc = tuple(error["loc"])
    if one_source and loc[:2] == ("data", 0):
        loc = ("data", *loc[2:])
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{where}'{_suggestion(str(loc[-1]), _section_fields(loc))}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_config(content: Any, source: str = "<config>") -> RunConfig:
    """Validate a config mapping; raise :class:`ConfigError` listing every problem with its key."""
    if not isinstance(content, dict):
        raise ConfigError(f"{source}: a training config must be a YAML mapping, got {type(content).__name__}")
    try:
        return RunConfig.model_validate(content)
    except ValidationError as error:
        one_source = isinstance(content.get("data"), dict)
        problems = "\n".join(f"  {_describe(e, one_source)}" for e in error.errors())
        raise ConfigError(f"{source}: invalid training config:\n{problems}") from None


def apply_overrides(content: dict, overrides: Sequence[str], source: str = "<config>") -> dict:
    """A copy of the config mapping ``content`` with ``KEY=VALUE`` overrides applied in order.

    ``KEY`` is a dotted path (``model.hyperparameters.cutoff``, ``name``); ``VALUE`` is read as
    YAML, so ``4.0`` is a float, ``null`` is None and ``[1, 2]`` a list. Keys the config does not
    have are added and then rejected by validation like a misspelt key in the file.
    """
    content = copy.deepcopy(content)
    for override in overrides:
        key, equals, text = override.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"{source}: override {override!r} is not KEY=VALUE (e.g. model.hyperparameters.cutoff=4.0)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{source}: override {override!r}: the value is not valid YAML: {error}") from None
        *parents, leaf = key.strip().split(".")
        section = content
        for depth, part in enumerate(parents):
            section = section.setdefault(part, {})
            if not isinstance(section, dict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(f"{source}: override {override!r}: '{where}' is not a section of the config")
        section[leaf] = value
    return content


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a YAML training config, with optional ``KEY=VALUE`` overrides
    (:func:`apply_overrides`); errors name the file and the offending keys."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read training config: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if overrides and isinstance(content, dict):
        content = apply_overrides(content, overrides, str(path))
    return parse_config(content, str(path))
