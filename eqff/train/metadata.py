"""What every model file a run writes records of that run: its data, config and hardware.

The exported model (:mod:`eqff.train.export`) and the timed snapshots (:mod:`eqff.train.snapshots`)
store the same record, so that a snapshot can be shipped as a potential: its training domain
warns on other compositions, and its example structure pins its golden values.
"""

import os
import platform

import lightning
import lightning.pytorch as pl
import torch

from eqff.data.frames import Frame
from eqff.domain import training_domain
from eqff.train.config import RunConfig
from eqff.train.dataset import describe_source
from eqff.train.run_folder import SPLIT_FILE


def run_metadata(config: RunConfig, train: list[Frame]) -> dict:
    """The data and config a run trained on: the training sources, the split file's name, the
    config, the training domain (:func:`~eqff.domain.training_domain`) and the first training
    frame as an example structure (atomic numbers and positions in Å)."""
    example = train[0]
    return {
        "training_data": "; ".join(describe_source(data, "train") for data in config.data),
        "dataset": [data.model_dump() for data in config.data],
        "split_file": SPLIT_FILE,
        "config": config.model_dump(mode="json"),
        "training_domain": training_domain(frame.atomic_numbers for frame in train),
        "example_structure": {
            "atomic_numbers": example.atomic_numbers.tolist(),
            "positions": example.positions.tolist(),
        },
    }


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
