"""Model files: one ``torch.save`` dict of plain types and tensors, loaded with ``weights_only=True``.

Layout (``FORMAT_VERSION`` 1)::

    format: "eqff-model"          format_version: 1
    architecture: "painn"         hyperparameters: {...}  (constructor arguments, incl. elements, cutoff)
    dtype: "float32"|"float64"    units: {"energy": "eV", "length": "Å"}
    state_dict: {name: tensor}    weights_sha256: hex digest of the state_dict (see weights_digest)
    metadata: {eqff_version, created, training_data, ...}

No classes are pickled; an unreadable, altered or inconsistent file raises :class:`ModelFileError`.
"""

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from eqff.errors import ModelFileError
from eqff.models import ARCHITECTURES, architecture_name, build_model

FORMAT = "eqff-model"
FORMAT_VERSION = 1
MODEL_FILE_SUFFIX = ".eqff"
SHIPPED_POTENTIALS_DIR = Path(__file__).resolve().parent.parent / "potentials"
"""Trained models shipped with the package (the repository's ``potentials/`` folder)."""
DEFAULT_POTENTIAL = "painn-aspirin"
"""The shipped potential used when a command is given none."""

_REQUIRED_KEYS = (
    "format", "format_version", "architecture", "hyperparameters", "dtype", "units", "state_dict", "weights_sha256"
)  # fmt: skip
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of all tensors, in name order.

    torch does not check the CRCs of its zip records, so a byte changed inside a weight
    would otherwise load silently as a different model.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(path: str | os.PathLike, model: nn.Module, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, then rename) and return the path.

    Args:
        model: an eqff model (has ``hyperparameters``); saved in its current dtype.
        metadata: extra plain information (training data, split, metrics); ``eqff_version``
            and ``created`` are added.
    """
    from eqff import __version__

    architecture = architecture_name(model)
    dtype = next(model.parameters()).dtype
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    content = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "hyperparameters": model.hyperparameters,
        "dtype": str(dtype).removeprefix("torch."),
        "units": {"energy": "eV", "length": "Å"},
        "state_dict": state_dict,
        "weights_sha256": weights_digest(state_dict),
        "metadata": {
            "eqff_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(metadata or {}),
        },
    }
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(content, temporary)
    try:
        torch.load(temporary, map_location="cpu", weights_only=True)
    except Exception as error:
        temporary.unlink()
        raise ValueError(f"metadata must hold only plain types (str, int, float, bool, lists, dicts, tensors): {error}") from None
    os.replace(temporary, path)
    return path


def shipped_potentials() -> list[str]:
    """Names of the potentials shipped in ``potentials/``, sorted (e.g. ``"painn-aspirin"``)."""
    return sorted(path.stem for path in SHIPPED_POTENTIALS_DIR.glob(f"*{MODEL_FILE_SUFFIX}"))


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A model file path from a path or the name of a shipped potential (e.g. ``"painn-aspirin"``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_POTENTIALS_DIR / f"{name_or_path}{MODEL_FILE_SUFFIX}"
    if shipped.is_file():
        return shipped
    raise ModelFileError(
        f"no model file {str(name_or_path)!r} and no shipped potential of that name; shipped: {shipped_potentials()}"
    )


def read_model_file(path: str | os.PathLike) -> dict:
    """The checked content of a model file (see the module docstring)."""
    path = resolve_model_path(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types on corrupt input; none may escape unexplained
        raise ModelFileError(
            f"{path}: not a readable eqff model file (corrupt or truncated, or not saved weights-only): "
            f"{type(error).__name__}"
        ) from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an eqff model file (no 'format: {FORMAT}' entry)")
    missing = [k for k in _REQUIRED_KEYS if k not in content]
    if missing:
        raise ModelFileError(f"{path}: model file lacks {missing}")
    if content["format_version"] != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {content['format_version']} is not supported "
            f"by this eqff (reads version {FORMAT_VERSION}); upgrade eqff"
        )
    if content["architecture"] not in ARCHITECTURES:
        raise ModelFileError(f"{path}: unknown architecture {content['architecture']!r}; known: {sorted(ARCHITECTURES)}")
    if content["dtype"] not in _DTYPES:
        raise ModelFileError(f"{path}: unsupported dtype {content['dtype']!r}; expected one of {sorted(_DTYPES)}")
    state_dict = content["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelFileError(f"{path}: the state_dict entry is not a dict of tensors")
    if weights_digest(state_dict) != content["weights_sha256"]:
        raise ModelFileError(f"{path}: the weights do not match their stored checksum; the file was altered or damaged")
    return content


def load_model(path: str | os.PathLike, dtype: torch.dtype | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a model file; return it (in eval mode) and the file's content.

    Args:
        path: a model file or the name of a shipped potential.
        dtype: cast the model to this dtype; default: the dtype it was saved in.
    """
    content = read_model_file(path)
    try:
        # Cast before loading, so that float64 weights are not rounded through a float32 model
        # (and e3nn's Clebsch–Gordan coefficients are exact: eqff.nn.steerable.exact_wigner_3j).
        model = build_model(content["architecture"], content["hyperparameters"])
        model = model.to(dtype or _DTYPES[content["dtype"]])
        model.load_state_dict(content["state_dict"])
    except (ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path}: weights do not fit the stored architecture: {error}") from None
    return model.eval(), content
