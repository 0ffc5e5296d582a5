"""Frames for training and evaluation: reading a data source, graphs with labels, and loaders.

Graphs follow :mod:`eqff.data.keys`; neighbour lists are computed once here, at the model
cutoff, and labels are stored under ``keys.ENERGY`` ((1,) eV) and ``keys.FORCES`` ((n, 3) eV/Å)
in float64 (only positions and cell take the model dtype).
"""

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from eqff.data import keys
from eqff.data.extxyz import read_extxyz
from eqff.data.frames import Frame
from eqff.data.graph import collate, structure_to_graph
from eqff.data.md17 import data_root, read_md17, read_rmd17
from eqff.errors import DataFileError
from eqff.neighbours import neighbour_list
from eqff.train.config import DataConfig

LABEL_DTYPE = torch.float64


def resolve_data_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``path`` itself if absolute, else ``path`` under the data root (``root`` or ``$EQFF_DATA``)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(data_root(root)) / path


def read_frames(data: DataConfig, part: str = "train", root: str | os.PathLike | None = None) -> list[Frame]:
    """All frames of a data source, in eV and Å.

    Args:
        data: the source (``root`` argument, if given, overrides ``data.root``).
        part: for rMD17, ``train`` reads ``train_0N`` and ``test`` reads ``test_0N``; MD17 and
            extxyz sources have one pool of frames and ignore it.
    """
    root = root or data.root
    if data.dataset == "rmd17":
        if part not in ("train", "test"):
            raise ValueError(f"rMD17 parts are 'train' and 'test', got {part!r}")
        return read_rmd17(data.molecule, data.split, part, root)
    if data.dataset == "md17":
        return read_md17(data.molecule, root)
    return read_extxyz(
        resolve_data_path(data.path, root),
        energy_key=data.energy_key,
        forces_key=data.forces_key,
        energy_unit=data.energy_unit,
        length_unit=data.length_unit,
    )


def describe_source(data: DataConfig, part: str = "train") -> str:
    """A one-line description of the frames :func:`read_frames` returns, e.g. ``rMD17 aspirin train_01``."""
    if data.dataset == "rmd17":
        return f"rMD17 {data.molecule} {part}_{data.split:02d}"
    if data.dataset == "md17":
        return f"MD17 {data.molecule}"
    return (
        f"extxyz {data.path} (energy {data.energy_key!r}, forces {data.forces_key!r}, "
        f"{data.energy_unit}, {data.length_unit})"
    )


def require_labels(frames: list[Frame], what: str) -> None:
    """Raise :class:`DataFileError` if any frame lacks an energy or forces."""
    for index, frame in enumerate(frames):
        if frame.energy is None or frame.forces is None:
            missing = "energy" if frame.energy is None else "forces"
            raise DataFileError(f"{what}: frame {index} has no {missing}; training and evaluation need both")


def frame_to_graph(frame: Frame, cutoff: float, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A one-frame graph with neighbours within ``cutoff`` (Å) and the frame's labels, if any."""
    edge_index, cell_shifts = neighbour_list(frame.positions, frame.cell, frame.pbc, cutoff)
    graph = structure_to_graph(
        frame.atomic_numbers, frame.positions, frame.cell, frame.pbc, edge_index, cell_shifts, dtype
    )
    if frame.energy is not None:
        graph[keys.ENERGY] = torch.tensor([frame.energy], dtype=LABEL_DTYPE)  # (1,)
    if frame.forces is not None:
        graph[keys.FORCES] = torch.as_tensor(frame.forces, dtype=LABEL_DTYPE)  # (n, 3)
    return graph


class GraphDataset(Dataset):
    """Precomputed one-frame graphs (see :func:`frame_to_graph`)."""

    def __init__(self, frames: list[Frame], cutoff: float, dtype: torch.dtype) -> None:
        self.graphs = [frame_to_graph(frame, cutoff, dtype) for frame in frames]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.graphs[index]


class EpochSampler(Sampler[int]):
    """Frame order of one epoch: a permutation seeded by (seed, epoch), or the identity.

    The order depends only on the seed and the epoch (set by Lightning through
    :meth:`set_epoch`), so a resumed run sees the same batches as an uninterrupted one. Under
    ``torch.distributed`` each process takes every ``world_size``-th index of the order. With
    ``pad`` (training: every process must take the same number of steps) the order is padded
    by wrapping around so that all processes get the same number; without it (validation, whose
    error sums add up across processes) every frame is seen exactly once.
    """

    def __init__(self, num_items: int, seed: int, shuffle: bool, pad: bool = True) -> None:
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        rank, world = self._rank_and_world()
        if self.pad:
            return math.ceil(self.num_items / world)
        return len(range(rank, self.num_items, world))

    def __iter__(self) -> Iterator[int]:
        rank, world = self._rank_and_world()
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        else:
            order = np.arange(self.num_items)
        if self.pad:
            order = np.resize(order, math.ceil(self.num_items / world) * world)  # wraps around to pad
        return iter(order[rank::world].tolist())


def make_loader(
    dataset: GraphDataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """A loader of batched graphs (:func:`eqff.data.graph.collate`) in :class:`EpochSampler` order:
    shuffled and padded for training, in order and unpadded for validation."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed, shuffle, pad=shuffle),
        collate_fn=collate,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
