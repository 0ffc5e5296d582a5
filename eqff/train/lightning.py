"""Lightning wrapper of an eqff energy model: loss, logged metrics and optimiser, no physics.

Energies and forces come from :func:`eqff.nn.forces.energy_forces_stress` (forces by autograd;
the graph is kept while training so that force errors back-propagate), or in training steps
from its compiled counterpart :func:`eqff.nn.forces.compiled_energy_forces`. Validation also
needs autograd, so the Trainer must run with ``inference_mode=False``.

The learning-rate schedule is stepped here, right after each validation, and saved in the
checkpoint by this module: Lightning would step it after the epoch's checkpoint is written and
does not replay that step on resume, so a resumed run would lag one step behind.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from eqff.data import keys
from eqff.nn.forces import compiled_energy_forces, energy_forces_stress
from eqff.rotations import random_rotations
from eqff.train.augment import rotate_frames
from eqff.train.config import OptimiserConfig, ScheduleConfig
from eqff.train.loss import EnergyForceLoss
from eqff.train.metrics import MEV, ErrorAccumulator
from eqff.train.stats import fitted_values

MONITOR = "val/forces_mae"
"""Validation force MAE per component, meV/Å (with the EMA weights when EMA is on), over the
validation frames of all sources: drives the plateau schedule, early stopping and the choice of
the best model."""

ELEMENTS_KEY = "eqff_elements"
"""Checkpoint entry holding the model's elements (atomic numbers), which a resumed run rebuilds
the model with."""

FITTED_KEY = "eqff_fitted_hyperparameters"
"""Checkpoint entry holding the model's hyperparameters computed from the training frames
(:data:`eqff.train.stats.FITTED_HYPERPARAMETERS`), which a resumed run rebuilds the model with."""


class LitPotential(pl.LightningModule):
    """Trains ``model`` (graph → energy) on energies and forces.

    Args:
        model: an eqff energy model.
        loss: the loss on predicted vs labelled energies and forces.
        optimiser, schedule: optimiser and learning-rate schedule settings.
        max_epochs: length of the cosine schedule (unused by the other schedules).
        compile: compute the training steps' energies and forces with
            :func:`~eqff.nn.forces.compiled_energy_forces` (validation stays eager).
        rotation_seed: rotate every training frame at random (:mod:`eqff.train.augment`), with
            the rotations of step s drawn from seed ``rotation_seed + s``, so that a resumed run
            draws the same ones; ``None``: no rotations. Validation frames are never rotated.
        source_labels: the name of each validation loader's data source, in loader order.

    Logged: ``train/loss_step`` (this process's, every step; progress bar) and ``train/loss_epoch``, its unweighted terms ``train/energy_loss`` and
    ``train/forces_loss`` (and ``train/torque_loss`` with a torque weight; in the units of the loss's kind), ``val/loss``, ``val/energy_mae``
    and ``val/energy_rmse`` (meV per frame), ``val/forces_mae`` and ``val/forces_rmse`` (meV/Å
    per component), all over every source's validation frames; with several sources also
    ``val/<label>/energy_mae`` and ``val/<label>/forces_mae`` for each.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: EnergyForceLoss,
        optimiser: OptimiserConfig,
        schedule: ScheduleConfig,
        max_epochs: int | None,
        compile: bool = False,
        rotation_seed: int | None = None,
        source_labels: Sequence[str] = ("data",),
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimiser = optimiser
        self.schedule = schedule
        self.max_epochs = max_epochs
        self.training_energy_forces = compiled_energy_forces(model) if compile else self.forward
        for parameter in model.parameters():
            parameter.register_hook(functools.partial(in_parameter_layout, parameter))
        self.rotation_seed = rotation_seed
        self.source_labels = list(source_labels)
        self.val_energy = [ErrorAccumulator() for _ in self.source_labels]  # one per source
        self.val_forces = [ErrorAccumulator() for _ in self.source_labels]
        self.val_loss_sums = torch.zeros(2, dtype=torch.float64)  # Σ loss × frames, frames
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._scheduler_state: dict | None = None  # from a checkpoint, applied once the scheduler exists
        self.learning_rate_frozen = False  # set by StageTwo

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return energy_forces_stress(self.model, batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        size = batch[keys.ENERGY].shape[0]
        if self.rotation_seed is not None:
            batch = rotate_frames(batch, random_rotations(size, self.rotation_seed + self.trainer.global_step))
        losses = self.loss(self.training_energy_forces(batch), batch)
        # the step's loss is this process's own (no collective at every step, only for a log line);
        # the epoch means are reduced over all processes once, at the epoch's end
        self.log("train/loss_step", losses["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        epoch = dict(on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train/loss_epoch", losses["loss"], **epoch)
        self.log("train/energy_loss", losses["energy"], **epoch)
        self.log("train/forces_loss", losses["forces"], **epoch)
        if "torque" in losses:
            self.log("train/torque_loss", losses["torque"], **epoch)
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self.val_energy = [ErrorAccumulator() for _ in self.source_labels]
        self.val_forces = [ErrorAccumulator() for _ in self.source_labels]
        self.val_loss_sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # Σ loss × frames, frames

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        predicted = self(batch)
        losses = self.loss(predicted, batch)
        size = batch[keys.ENERGY].shape[0]
        self.val_loss_sums += torch.stack([losses["loss"].detach().double() * size, self.val_loss_sums.new_tensor(size)])
        self.val_energy[dataloader_idx].update(predicted[keys.ENERGY], batch[keys.ENERGY])
        self.val_forces[dataloader_idx].update(predicted[keys.FORCES], batch[keys.FORCES])

    def on_validation_epoch_end(self) -> None:
        for errors in self.val_energy + self.val_forces:  # sums over all processes (some may have no frames)
            sums = errors.sums if errors.sums is not None else torch.zeros(3, dtype=torch.float64, device=self.device)
            errors.sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        loss_sum, frames = self.trainer.strategy.reduce(self.val_loss_sums, reduce_op="sum")
        energy, forces = ErrorAccumulator.total(self.val_energy), ErrorAccumulator.total(self.val_forces)
        log = dict(sync_dist=True)  # every process holds the same values: averaging keeps them
        self.log("val/loss", loss_sum / frames, **log)
        self.log("val/energy_mae", energy.mae / MEV, **log)
        self.log("val/energy_rmse", energy.rmse / MEV, **log)
        self.log(MONITOR, forces.mae / MEV, prog_bar=True, **log)
        self.log("val/forces_rmse", forces.rmse / MEV, **log)
        if len(self.source_labels) > 1:
            for label, source_energy, source_forces in zip(self.source_labels, self.val_energy, self.val_forces):
                self.log(f"val/{label}/energy_mae", source_energy.mae / MEV, **log)
                self.log(f"val/{label}/forces_mae", source_forces.mae / MEV, **log)
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            self._step_scheduler(forces.mae / MEV)

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer | LightningOptimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        """One optimiser step at the scheduled lr times the warm-up factor (see :meth:`warmup_factor`).

        The factor is applied to this step only, so the schedule itself never sees it.
        """
        factor = self.warmup_factor(self.trainer.global_step)
        scheduled = [group["lr"] for group in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr * factor
        optimizer.step(closure=optimizer_closure)
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr

    def warmup_factor(self, step: int) -> float:
        """(step + 1) / warmup_steps for the first ``schedule.warmup_steps`` steps (counted from 0), then 1."""
        return min(1.0, (step + 1) / self.schedule.warmup_steps) if self.schedule.warmup_steps else 1.0

    def freeze_learning_rate(self, lr: float) -> None:
        """Set every parameter group's learning rate to ``lr`` (the warm-up still scales steps)
        and stop the schedule."""
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = lr
        self.learning_rate_frozen = True

    def _step_scheduler(self, monitored: float) -> None:
        if self.learning_rate_frozen:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        elif self.scheduler is not None:
            self.scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[ELEMENTS_KEY] = list(self.model.elements)
        checkpoint[FITTED_KEY] = fitted_values(self.model.hyperparameters)
        if self.scheduler is not None:
            checkpoint["eqff_lr_scheduler"] = self.scheduler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._scheduler_state = checkpoint.get("eqff_lr_scheduler")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        settings = self.optimiser
        optimiser_class = torch.optim.AdamW if settings.name == "adamw" else torch.optim.Adam
        optimiser = optimiser_class(
            self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, amsgrad=settings.amsgrad
        )
        schedule = self.schedule
        if schedule.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimiser, mode="min", factor=schedule.factor, patience=schedule.patience, min_lr=schedule.min_lr
            )
        elif schedule.name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimiser, self.max_epochs, eta_min=schedule.min_lr
            )
        if self.scheduler is not None and self._scheduler_state is not None:
            self.scheduler.load_state_dict(self._scheduler_state)
        return optimiser


def in_parameter_layout(parameter: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """``gradient`` with the strides of ``parameter``.

    A weight with a dimension of size one (a readout's (1, F) last layer) gets, from the sum of
    the energy's and the forces' contributions, a gradient whose strides are those of a
    transposed view ((1, 1) for (F, 1)): equal values, but DDP, which copies gradients into
    buckets laid out like the parameters, would copy it at every step (and warn). The copy here
    happens only for such gradients.
    """
    if gradient.stride() == parameter.stride():
        return gradient
    return gradient.clone(memory_format=torch.contiguous_format)


class EMA(EMAWeightAveraging):
    """Lightning's EMA of the weights, kept on the model's device.

    Lightning builds the averaged copy before it moves the model to its device; this moves the
    copy along once fitting starts. Only parameters are averaged (buffers such as the energy
    offsets and the element lookup table are fixed during training).

    Args:
        decay: weight of the old average per optimiser step.
    """

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay, use_buffers=False)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._average_model.to(pl_module.device)


class ConfiguredEarlyStopping(EarlyStopping):
    """Lightning's early stopping on :data:`MONITOR`, except that a resumed run keeps the patience
    of its config.

    Lightning restores the patience saved in the checkpoint, which would silently ignore a
    ``training.early_stopping_patience`` raised on resume. The state key is that of Lightning's
    ``EarlyStopping``, so checkpoints written with it restore into this callback.

    Args:
        patience: epochs without a better validation force MAE before training stops.
    """

    def __init__(self, patience: int) -> None:
        super().__init__(MONITOR, patience=patience, mode="min")

    @property
    def state_key(self) -> str:
        return f"{EarlyStopping.__qualname__}{dict(monitor=self.monitor, mode=self.mode)!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience


class StageTwo(pl.Callback):
    """The second stage of a run (:class:`~eqff.train.config.StageTwoConfig`), set at the start
    of every epoch from ``start_epoch`` on, so that a resumed run is in the same stage.

    At the first epoch of the stage, the best-model checkpoints and early stopping forget the
    first stage's scores: the exported model is the best of the second stage.

    Args:
        start_epoch: the first epoch of the stage, counted from 0.
        loss: the loss from then on.
        lr: the learning rate from then on, held fixed (``None``: the schedule goes on).
    """

    def __init__(self, start_epoch: int, loss: EnergyForceLoss, lr: float | None) -> None:
        self.start_epoch = start_epoch
        self.loss = loss
        self.lr = lr

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: "LitPotential") -> None:
        if trainer.current_epoch < self.start_epoch:
            return
        pl_module.loss = self.loss
        if self.lr is not None:
            pl_module.freeze_learning_rate(self.lr)
        if trainer.current_epoch == self.start_epoch:
            for checkpoint in trainer.checkpoint_callbacks:
                if checkpoint.monitor is not None:
                    checkpoint.best_k_models, checkpoint.kth_best_model_path = {}, ""
                    checkpoint.best_model_score, checkpoint.best_model_path = None, ""
            if trainer.early_stopping_callback is not None:
                stopping = trainer.early_stopping_callback
                stopping.wait_count, stopping.best_score = 0, torch.tensor(torch.inf)
