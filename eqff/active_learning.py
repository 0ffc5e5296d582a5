"""Frames chosen for labelling by a committee's uncertainty, and the learning curve that tests the choice.

Active learning by query by committee: of a pool of unlabelled structures, label next those on
which the members of a committee (:mod:`eqff.models.committee`) disagree most. A frame's score
is its force uncertainty, the root mean square over its atoms of the per-atom force uncertainty
(:data:`eqff.data.keys.FORCES_UNCERTAINTY`),

    u = sqrt( mean_i mean_k ‖F_k,i − F̄_i‖² )   (eV/Å),

on the same footing as the frame's force error e = sqrt( mean_i ‖F̄_i − F_i^ref‖² ), which it is
meant to predict. :func:`committee_predictions` scores frames in batches and
:func:`most_uncertain` picks the highest; ``eqff select`` does both for a pool of structures.
There is no diversity rule: the frames chosen in one round are simply the most uncertain ones.

:func:`learning_curve` tests the choice as Schran et al. (J. Chem. Phys. 153, 104105, 2020) do:
rounds of training a committee on the labelled frames, testing it, and adding the next frames,
chosen by uncertainty or at random, from a pool whose labels are read only for the frames chosen.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter
from scipy.stats import spearmanr
from torch import nn

from eqff.data import keys
from eqff.data.frames import Frame
from eqff.data.graph import collate
from eqff.errors import EqffInputError
from eqff.model_file import MODEL_FILE_SUFFIX, load_model
from eqff.nn.forces import energy_forces_stress
from eqff.train.checkpoint import LAST_CHECKPOINT
from eqff.train.config import ConfigError, RunConfig
from eqff.train.dataset import describe_source, frame_to_graph, read_frames, require_labels
from eqff.train.metrics import MEV, check_elements
from eqff.train.run import SourceFrames, train
from eqff.train.run_folder import CHECKPOINT_DIR, SPLIT_FILE
from eqff.train.splits import random_split, read_split, write_json_atomic

STRATEGIES = ("uncertainty", "random")
"""How a learning curve's rounds choose their frames: the committee's most uncertain ones, or
the next ones of a seeded random order (the frames ``eqff train`` would take with as many)."""

CURVE_FILE = "active-learning.json"
PLOT_FILE = "active-learning.png"


@dataclass(frozen=True)
class CommitteePredictions:
    """A committee's predictions for frames, in frame order.

    Attributes:
        energies: (F,) eV, the members' mean.
        forces: per frame (n, 3) eV/Å, the members' mean.
        forces_uncertainty: (F,) eV/Å, each frame's score (see the module docstring).
    """

    energies: np.ndarray
    forces: list[np.ndarray]
    forces_uncertainty: np.ndarray


def committee_predictions(model: nn.Module, frames: Sequence[Frame], batch_size: int = 32) -> CommitteePredictions:
    """The mean energies and forces of a committee (in eval mode, in its dtype, on the CPU) and each
    frame's force uncertainty; labels in ``frames`` are not read."""
    if not hasattr(model, "num_members"):
        raise EqffInputError("uncertainties need a committee model (trained with model.committee_size)")
    check_elements(model, list(frames))
    dtype = next(model.parameters()).dtype
    energies, forces, uncertainties = [], [], []
    for start in range(0, len(frames), batch_size):
        batch = list(frames[start : start + batch_size])
        graph = collate([frame_to_graph(frame, model.cutoff, dtype) for frame in batch])
        out = energy_forces_stress(model, graph)
        energies.append(out[keys.ENERGY].detach().double().numpy())
        ends = np.cumsum([frame.num_atoms for frame in batch])
        forces += np.split(out[keys.FORCES].detach().double().numpy(), ends[:-1])
        squared = out[keys.FORCES_UNCERTAINTY].detach().double().square()  # (n,)
        summed = torch.zeros(len(batch), dtype=squared.dtype).index_add_(0, graph[keys.BATCH], squared)  # (B,)
        uncertainties.append(np.sqrt(summed.numpy() / np.array([frame.num_atoms for frame in batch])))
    return CommitteePredictions(np.concatenate(energies), forces, np.concatenate(uncertainties))


def most_uncertain(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest ``scores`` (F,), highest first (of equal ones, the first)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:count]


def frame_forces_errors(predicted: Sequence[np.ndarray], frames: Sequence[Frame]) -> np.ndarray:
    """(F,) eV/Å: per frame, sqrt(mean_i ‖F_i − F_i^ref‖²) of predicted forces against the labels."""
    return np.array([np.sqrt(np.mean(np.sum((f - frame.forces) ** 2, axis=1))) for f, frame in zip(predicted, frames)])


@dataclass(frozen=True)
class RoundResult:
    """One round of one strategy of a learning curve.

    Attributes:
        strategy: one of :data:`STRATEGIES`.
        num_labelled: the training frames of the round.
        forces_mae: test force MAE per component, meV/Å; energy_mae: test energy MAE, meV.
        spearman: Spearman's rank correlation of the test frames' force uncertainty and force
            error (:func:`frame_forces_errors`).
        mean_forces_uncertainty: the test frames' mean force uncertainty, meV/Å.
        training_seconds: the round's training time.
        model: the round's model file.
    """

    strategy: str
    num_labelled: int
    forces_mae: float
    energy_mae: float
    spearman: float
    mean_forces_uncertainty: float
    training_seconds: float
    model: str


def learning_curve(
    config: RunConfig,
    output: str | Path,
    initial: int,
    step: int,
    rounds: int,
    strategies: Sequence[str] = STRATEGIES,
    data_root: str | None = None,
    max_test_frames: int | None = None,
) -> list[RoundResult]:
    """Test error against labelled frames, the frames chosen by the committee's uncertainty or at random.

    The pool is the frames of ``config``'s one data source that :func:`~eqff.train.splits.random_split`
    would make its ``data.num_train`` training frames, in that seeded order; its
    ``data.num_validation`` validation frames are labelled from the start, the same for every
    round and strategy (they choose the best epoch) and not counted. The test frames are those
    ``eqff evaluate --split-file`` takes (rMD17: ``test_0N``; otherwise the source's frames in
    neither part). Every strategy starts from the first ``initial`` frames of the pool; each round
    trains a committee of ``model.committee_size`` as ``config`` says, in its own run folder
    ``output/<name>-<strategy>-<frames>``, tests it, and adds ``step`` frames. Uncertainty
    chooses among the unlabelled frames by their scores, computed from positions alone; the
    labels of a frame are read only once it is chosen. A round whose model file exists is not
    trained again (nor one whose checkpoint exists: it is resumed), so an interrupted curve goes
    on where it stopped. After every round, ``output/active-learning.json`` and
    ``active-learning.png`` are rewritten.

    Returns:
        the rounds, in the order they were run (round by round, each strategy in turn).
    """
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown or not strategies:
        raise ConfigError(f"strategies must be among {list(STRATEGIES)}, got {list(strategies)}")
    if len(config.data) != 1:
        raise ConfigError(f"a learning curve draws its frames from one data source, the config has {len(config.data)}")
    if config.model.committee_size < 2:
        raise ConfigError("a learning curve trains committees: set model.committee_size to 2 or more")
    data = config.data[0]
    final = initial + step * (rounds - 1)
    if initial < 1 or step < 1 or rounds < 1 or final > data.num_train:
        raise ConfigError(f"{rounds} rounds from {initial} frames in steps of {step} need {final} pool frames "
                          f"(data.num_train is {data.num_train})")  # fmt: skip
    pool = read_frames(data, "train", data_root)
    parts = random_split(len(pool), data.num_train, data.num_validation, data.seed)
    candidates, validation = parts["train"], parts["validation"]
    separate_test = data.dataset == "rmd17"
    test = read_frames(data, "test", data_root) if separate_test else [pool[i] for i in parts["test"]]
    test = test[:max_test_frames]
    require_labels(test, "the test frames")
    unlabelled = [Frame(frame.atomic_numbers, frame.positions, cell=frame.cell, pbc=frame.pbc) for frame in pool]
    record = {
        "data": data.model_dump(),
        "pool": describe_source(data, "train"),
        "num_frames": len(pool),
        "validation": validation,
        "test": None if separate_test else parts["test"],
        "test_source": describe_source(data, "test") if separate_test else "the source's frames in neither the pool nor validation",
    }

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    labelled = {strategy: list(candidates[:initial]) for strategy in strategies}
    results: list[RoundResult] = []
    for number in range(rounds):
        trained: dict[tuple[int, ...], tuple[nn.Module, Path, float]] = {}  # strategies that chose alike share a run
        for strategy in strategies:
            chosen = labelled[strategy]
            if tuple(chosen) not in trained:
                name = f"{config.name}-{strategy}-{len(chosen):04d}"
                split = (
                    [SourceFrames(data.label, [pool[i] for i in chosen], [pool[i] for i in validation])],
                    {"sources": [{**record, "train": chosen}]},
                )
                round_config = config.model_copy(update={"name": name, "output_dir": str(output)})
                trained[tuple(chosen)] = _trained_committee(round_config, split, data_root)
            model, path, seconds = trained[tuple(chosen)]
            results.append(_tested(model, test, strategy, len(chosen), seconds, path))
            _write_curve(output, results)
            if number < rounds - 1:
                labelled[strategy] = chosen + _next_frames(strategy, model, chosen, candidates, unlabelled, step)
    return results


def _trained_committee(config: RunConfig, split: tuple[list[SourceFrames], dict], data_root: str | None) -> tuple[nn.Module, Path, float]:
    """The committee of one round, its model file and its training seconds: trained, resumed, or
    read back from an earlier call."""
    path = config.run_dir / f"{config.name}{MODEL_FILE_SUFFIX}"
    if not path.is_file():
        resume = (config.run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()
        train(config, resume=resume, data_root=data_root, progress_bar=False, split=split)
    [stored] = read_split(config.run_dir / SPLIT_FILE)
    if stored["train"] != split[1]["sources"][0]["train"]:
        raise ConfigError(f"{config.run_dir} holds a run on other frames; give another output folder")
    model, content = load_model(path)
    return model, path, float(content["metadata"]["training_time_s"])


def uncertainty_against_error(predictions: CommitteePredictions, frames: Sequence[Frame]) -> tuple[float, float]:
    """How well a committee's force uncertainty ranks its errors on labelled ``frames``: Spearman's
    rank correlation of each frame's force uncertainty and force error (:func:`frame_forces_errors`),
    and the frames' mean force uncertainty in meV/Å."""
    frame_errors = frame_forces_errors(predictions.forces, frames)
    spearman = float(spearmanr(predictions.forces_uncertainty, frame_errors).statistic)
    return spearman, float(predictions.forces_uncertainty.mean() / MEV)


def _tested(model: nn.Module, test: list[Frame], strategy: str, num_labelled: int, seconds: float, path: Path) -> RoundResult:
    predictions = committee_predictions(model, test)
    forces_errors = np.concatenate(predictions.forces) - np.concatenate([frame.forces for frame in test])
    energy_errors = predictions.energies - np.array([frame.energy for frame in test])
    spearman, mean_forces_uncertainty = uncertainty_against_error(predictions, test)
    return RoundResult(
        strategy=strategy,
        num_labelled=num_labelled,
        forces_mae=float(np.abs(forces_errors).mean() / MEV),
        energy_mae=float(np.abs(energy_errors).mean() / MEV),
        spearman=spearman,
        mean_forces_uncertainty=mean_forces_uncertainty,
        training_seconds=seconds,
        model=str(path),
    )


def _next_frames(
    strategy: str, model: nn.Module, chosen: list[int], candidates: list[int], unlabelled: list[Frame], count: int
) -> list[int]:
    """The pool indices of the next ``count`` frames to label: the committee's most uncertain
    unlabelled ones, or the next ones in the pool's order."""
    taken = set(chosen)
    remaining = [index for index in candidates if index not in taken]
    if strategy == "random":
        return remaining[:count]
    scores = committee_predictions(model, [unlabelled[index] for index in remaining]).forces_uncertainty
    return [remaining[position] for position in most_uncertain(scores, count)]


def _write_curve(output: Path, results: list[RoundResult]) -> None:
    """``active-learning.json`` (every round) and ``active-learning.png`` (test force MAE against
    labelled frames, one line per strategy)."""
    write_json_atomic(output / CURVE_FILE, {"rounds": [asdict(result) for result in results]})
    figure = Figure(figsize=(5, 4))  # no pyplot: no global backend or figure state
    axes = figure.subplots()
    for strategy in dict.fromkeys(result.strategy for result in results):
        points = [result for result in results if result.strategy == strategy]
        label = {"uncertainty": "chosen by uncertainty", "random": "chosen at random"}[strategy]
        axes.plot([p.num_labelled for p in points], [p.forces_mae for p in points], marker="o", label=label)
    axes.set_xlabel("labelled training frames")
    axes.set_ylabel("test force MAE / meV/Å")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sorted({result.num_labelled for result in results}))
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes.legend()
    figure.tight_layout()
    figure.savefig(output / PLOT_FILE, dpi=120)
