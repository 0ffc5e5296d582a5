"""Reproducible train/validation/test splits and their JSON record.

A split is a seeded permutation, ``numpy.random.default_rng(seed).permutation(num_frames)``:
the first ``num_train`` indices train, the next ``num_validation`` validate, the rest test.
numpy keeps this stream stable across platforms, so a seed gives the same split everywhere.
"""

import json
import os
from pathlib import Path

import numpy as np

PARTS = ("train", "validation", "test")


def random_split(num_frames: int, num_train: int, num_validation: int, seed: int) -> dict[str, list[int]]:
    """Indices (into a pool of ``num_frames`` frames) of the train, validation and test parts."""
    if num_train + num_validation > num_frames:
        raise ValueError(
            f"cannot take {num_train} training + {num_validation} validation frames from {num_frames} frames"
        )
    order = np.random.default_rng(seed).permutation(num_frames)
    return {
        "train": order[:num_train].tolist(),
        "validation": order[num_train : num_train + num_validation].tolist(),
        "test": order[num_train + num_validation :].tolist(),
    }


def write_json_atomic(path: str | os.PathLike, content: dict) -> None:
    """Write ``content`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(temporary, path)


def read_split(path: str | os.PathLike) -> list[dict]:
    """The per-source records of a split file written by :func:`eqff.train.run.train`
    (``split.json`` in a run folder: ``{"sources": [record, ...]}``, one record per data source).

    Keys of a record: ``data`` (the source's section of the config), ``pool`` (what the indices
    index), ``num_frames``, ``train``, ``validation``, ``test`` (indices, or ``None`` when the
    test set is a separate file, as for rMD17) and ``test_source``.
    """
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable split file: {error}") from None
    sources = content.get("sources") if isinstance(content, dict) else None
    if not isinstance(sources, list) or not sources:
        raise ValueError(f"{path}: a split file holds a non-empty list 'sources'")
    for number, record in enumerate(sources):
        missing = [key for key in ("data", "num_frames", *PARTS) if key not in record]
        if missing:
            raise ValueError(f"{path}: source {number} of the split file lacks {missing}")
    return sources
