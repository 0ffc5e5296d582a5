"""The measurements an ``eqff report`` has finished, kept so that an interrupted report continues.

A report of eight architectures with 10 ps of NVE and 50 ps of NVT per model takes hours on a
CPU. Each measurement of one model (its speeds, test errors, NVE run, NVT run) is written, as soon
as it is finished, to ``<output>/measured/<model>.<kind>.json``. Running the same report again
with the same ``--output`` reuses a saved measurement only when it was made of the same weights
(the model file's ``weights_sha256``) under the same settings, and says so; anything else is
measured again and overwrites it. Deleting the folder starts the report afresh.
"""

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eqff.model_file import read_model_file
from eqff.train.splits import write_json_atomic

MEASURED_FOLDER = "measured"
"""Subfolder of the report's ``--output`` that holds the finished measurements."""


class MeasuredStore:
    """Finished measurements of a report, one JSON file per model and kind, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._digests: dict[str, str] = {}

    def _path(self, model: str, kind: str) -> Path:
        safe_name = re.sub(r"[^\w.-]", "_", model)
        return self.folder / f"{safe_name}.{kind}.json"

    def load(self, model: str, kind: str, settings: dict[str, Any]) -> dict | None:
        """The saved ``kind`` measurement of ``model`` if it was made of the same weights under ``settings``;
        else None. ``settings`` must be JSON values (compared after a JSON round trip)."""
        path = self._path(model, kind)
        if not path.is_file():
            return None
        saved = _read_json(path)
        if saved is None or saved.get("key") != self._key(model, settings):
            return None
        print(f"  {model}: reusing its {kind} measurement from {path}", flush=True)
        return saved["value"]

    def save(self, model: str, kind: str, settings: dict[str, Any], value: dict) -> None:
        """Write the ``kind`` measurement ``value`` (JSON values) of ``model`` made under ``settings``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(model, kind), {"key": self._key(model, settings), "value": value})

    def value(self, model: str, kind: str, settings: dict[str, Any], measure: Callable[[], dict]) -> dict:
        """The saved ``kind`` measurement (JSON values) of ``model`` under ``settings``; else ``measure()``,
        saved at once."""
        saved = self.load(model, kind, settings)
        if saved is not None:
            return saved
        measured = measure()
        self.save(model, kind, settings, measured)
        return measured

    def result(self, model: str, kind: str, settings: dict[str, Any], result_type: type, measure: Callable[[], Any]) -> Any:
        """As :meth:`value` for a dataclass of ``result_type`` (see :func:`result_to_json`): a fresh result is
        returned as it is saved, so that a continued report reads the same numbers as an uninterrupted one."""
        return result_from_json(result_type, self.value(model, kind, settings, lambda: result_to_json(measure())))

    def _key(self, model: str, settings: dict[str, Any]) -> dict:
        """What a saved measurement must match to be reused: the weights' digest and the settings."""
        if model not in self._digests:
            self._digests[model] = read_model_file(model)["weights_sha256"]
        return json.loads(json.dumps({"weights_sha256": self._digests[model], **settings}))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def result_to_json(result: Any) -> dict:
    """A dataclass of floats and numpy arrays (:class:`eqff.report.measurements.NVEResult`, ``NVTResult``) as JSON values."""
    return {field.name: _to_json(getattr(result, field.name)) for field in dataclasses.fields(result)}


def result_from_json(result_type: type, value: dict) -> Any:
    """The inverse of :func:`result_to_json`: lists become float64 numpy arrays again."""
    return result_type(**{name: np.asarray(item, dtype=np.float64) if isinstance(item, list) else item
                          for name, item in value.items()})  # fmt: skip


def _to_json(item: Any) -> Any:
    if isinstance(item, np.ndarray):
        return item.tolist()
    return float(item)
