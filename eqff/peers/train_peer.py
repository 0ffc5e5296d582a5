"""Train a peer force field through its own command line for a fixed wall-clock time, then test
the models it had kept after given minutes. Runs in the peer's virtual environment (MACE in the
one made by create_venv.sh, NequIP in the one made by create_nequip_venv.sh) and never imports
eqff.

Usage::

    python train_peer.py --peer {mace,nequip} --run NAME --train FILE --validation FILE \\
        --test FILE --output DIR --minutes M --marks M1 [M2 ...] [--hyperparameters JSON] \\
        [--max-test-frames N] [--cross-check-frames K]

The frame files are extended XYZ in eV and Å with labels ``REF_energy`` (eV per frame) and
``REF_forces`` (eV/Å per atom). ``--hyperparameters`` overrides entries of the peer's recipe
(:data:`MACE_RMD17` flags for MACE, keys of :data:`NEQUIP_RMD17_MODEL` for NequIP), e.g.
``'{"num_features": 8}'``. Run it with ``OMP_NUM_THREADS=1`` to train on one core.

What it does:

1. Trains the peer with its own command line (``mace_run_train``, ``nequip-train``) under
   ``timeout`` for ``--minutes``, in ``DIR/train``, keeping a checkpoint at each validation:
   MACE (``--keep_checkpoints``, validation every epoch) writes one when its validation loss
   improves, NequIP (Lightning's ``ModelCheckpoint``) every epoch, with its validation score.
2. For each mark, takes the checkpoint with the lowest validation loss among those written at
   most that many minutes after the training command started (:func:`select_checkpoint`):
   the model the run would have handed over had it stopped then. The clock includes the
   peer's data preparation (seconds).
3. Tests it with the peer's own evaluation (``mace_eval_configs``; ``nequip-train`` with
   ``run: [test]``, ``ModelFromCheckpoint`` and ``TestTimeXYZFileWriter``), which writes the
   predictions for the test frames, and cross-checks the first ``--cross-check-frames``
   predictions against a direct call of the peer's ASE calculator on the same model.
4. Prints a JSON list of records, one per mark with a checkpoint, on its last line of output:
   ``run``, ``num_train``, ``minutes`` (the mark), ``training_minutes`` (when the checkpoint was
   written), ``num_test_frames``, ``forces_mae`` (meV/Å per component) and ``energy_mae`` (meV
   per frame), the layout of eqff learning-curve's records.
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import torch

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"
CROSS_CHECK_ENERGY_EV = 1e-3  # per frame; the peers' models are float32
CROSS_CHECK_FORCES_EV_PER_A = 1e-4

MACE_RMD17: dict[str, Any] = {
    "model": "ScaleShiftMACE",
    "interaction": "RealAgnosticResidualInteractionBlock",
    "interaction_first": "RealAgnosticResidualInteractionBlock",
    "max_ell": 3,
    "hidden_irreps": "256x0e + 256x1o + 256x2e",
    "r_max": 5.0,
    "num_cutoff_basis": 5,
    "correlation": 3,
    "num_interactions": 2,
    "batch_size": 5,
    "valid_batch_size": 10,
    "energy_weight": 1.0,
    "forces_weight": 1000.0,
    "weight_decay": 5e-7,
    "ema_decay": 0.99,
    "scaling": "rms_forces_scaling",
    "default_dtype": "float32",
    "patience": 256,
    "E0s": "average",
    "seed": 0,
}
"""``mace_run_train`` flags of the rMD17 runs of Batatia et al., "MACE: Higher Order Equivariant
Message Passing Neural Networks for Fast and Accurate Force Fields" (NeurIPS 2022): the run
command of the README of the paper's code (dataset rMD17, acac or 3bpa): ScaleShiftMACE with two
RealAgnosticResidualInteractionBlocks, max_ell 3, hidden irreps 256x0e + 256x1o + 256x2e
(messages up to L = 2), r_max 5 Å, polynomial cutoff p = 5, correlation 3, batch size 5, energy
weight 1, forces weight 1000, weight decay 5e-7, EMA 0.99, AMSGrad, RMS-forces scaling, float32,
patience 256; the learning rate (0.01), 8 Bessel functions, radial MLP [64, 64, 64] and the
plateau scheduler (factor 0.8, patience 50) are mace-torch's defaults, as in that code. E0s are
MACE's least-squares "average" (the rMD17 frames have no isolated-atom energies). ``--ema`` and
``--amsgrad`` are always given."""

NEQUIP_RMD17_MODEL: dict[str, Any] = {
    "r_max": 4.0,
    "num_layers": 5,
    "l_max": 3,
    "parity": True,
    "num_features": 64,
    "num_bessels": 8,
    "bessel_trainable": True,
    "polynomial_cutoff_p": 6,
    "radial_mlp_depth": 3,
    "radial_mlp_width": 64,
    "model_dtype": "float32",
    "seed": 0,
}
"""``NequIPGNNModel`` arguments: the size of NequIP's rMD17 models in Batzner et al.,
"E(3)-equivariant graph neural networks for data-efficient and accurate interatomic potentials"
(Nat. Commun. 13, 2453, 2022), as the authors' input files for its rMD17 results give them
(github.com/mir-group/nequip-input-files, ``revmd17/revmd17-<molecule>-n950-l3.yaml``): 5
interaction layers, features 64 × l = 0…3 with both parities, cutoff 4 Å, 8 trainable Bessel
functions, cutoff polynomial p = 6, a radial MLP of 3 hidden layers of 64, gates silu/tanh.
Where nequip 0.19 differs from the 2022 code: the neighbour normalisation is the training
frames' mean number of neighbours (the files fix it per molecule: 10 for paracetamol, aspirin
and salicylic acid, 8 for ethanol) and the readout is one linear map (the files: a hidden
16x0e layer)."""

NEQUIP_TRAINING: dict[str, Any] = {
    "batch_size": 5,
    "lr": 0.01,
    "ema_decay": 0.99,
    "scheduler": {"factor": 0.8, "patience": 50, "min_lr": 1e-6},
    "loss_coeffs": {"total_energy": 1.0, "forces": 1000.0},
}
"""Training settings of the same input files: batch size 5, Adam with AMSGrad at lr 0.01, EMA
0.99, ReduceLROnPlateau on the validation metric (factor 0.8, patience 50, down to 1e-6), loss =
total-energy MSE + force MSE with weights 1 and 1000, per-element energy scales and shifts
trainable; the validation metric is energy MAE + force MAE."""

NEQUIP_MONITOR = "val0_epoch/weighted_sum"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint the peer wrote: its file, minutes after the training command started, and
    the validation loss (the peer's own monitored quantity) of the model it holds."""

    path: Path
    minutes: float
    validation_loss: float


@dataclass(frozen=True)
class Predictions:
    """A model's predictions on the test frames and their labels.

    Attributes:
        energies, ref_energies: (n_frames,) eV.
        forces, ref_forces: lists of (n_atoms, 3) arrays, eV/Å.
    """

    energies: np.ndarray
    ref_energies: np.ndarray
    forces: list[np.ndarray]
    ref_forces: list[np.ndarray]


# --- the peer-independent part -----------------------------------------------------------------


def select_checkpoint(checkpoints: list[Checkpoint], mark_minutes: float) -> Checkpoint | None:
    """The checkpoint with the lowest validation loss among those written by ``mark_minutes``
    (the latest of equals), or ``None`` if none was written by then."""
    written = [c for c in sorted(checkpoints, key=lambda c: c.minutes) if c.minutes <= mark_minutes]
    if not written:
        return None
    return min(reversed(written), key=lambda c: c.validation_loss)


def venv_tool(name: str) -> str:
    """The path of the command-line tool ``name`` of this Python's virtual environment."""
    return str(Path(sys.executable).parent / name)


def minutes_since(path: Path, start: float) -> float:
    """Minutes from ``start`` (a ``time.time()``) to the last modification of ``path``."""
    return (path.stat().st_mtime - start) / 60


def train_under_timeout(command: list[str], folder: Path, minutes: float) -> float:
    """Run ``command`` in ``folder`` under ``timeout`` for ``minutes``, its output to
    ``folder/train.log``; return the ``time.time()`` at which it started.

    Raises:
        RuntimeError: the command failed (other than by reaching the time limit).
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(folder / "train.log", "w") as log:
        code = subprocess.run(["timeout", f"{minutes * 60:.0f}s", *command], cwd=folder, stdout=log, stderr=log, check=False).returncode
    if code not in (0, 124):
        raise RuntimeError(f"{command[0]} failed (exit {code}); see {folder / 'train.log'}")
    return start


def run_logged(command: list[str], folder: Path, log_name: str) -> None:
    """Run ``command`` in ``folder``, its output to ``folder/log_name``; ``RuntimeError`` if it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / log_name, "w") as log:
        code = subprocess.run(command, cwd=folder, stdout=log, stderr=log, check=False).returncode
    if code != 0:
        raise RuntimeError(f"{command[0]} failed (exit {code}); see {folder / log_name}")


def mean_absolute_errors(predictions: Predictions) -> tuple[float, float]:
    """(force MAE in meV/Å over all components, energy MAE in meV per frame)."""
    forces = np.concatenate(predictions.forces) - np.concatenate(predictions.ref_forces)
    energies = predictions.energies - predictions.ref_energies
    return 1000 * float(np.abs(forces).mean()), 1000 * float(np.abs(energies).mean())


def cross_check(predictions: Predictions, frames: list[ase.Atoms], calculator: Any) -> str:
    """Check that ``calculator`` gives the evaluation's predictions on ``frames`` (the first test
    frames) within :data:`CROSS_CHECK_ENERGY_EV` and :data:`CROSS_CHECK_FORCES_EV_PER_A`; return
    a line with the largest differences.

    Raises:
        RuntimeError: they differ by more.
    """
    energy_diff = forces_diff = 0.0
    for k, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = calculator
        energy_diff = max(energy_diff, abs(atoms.get_potential_energy() - predictions.energies[k]))
        forces_diff = max(forces_diff, float(np.abs(atoms.get_forces() - predictions.forces[k]).max()))
    line = f"calculator vs evaluation on {len(frames)} frames: max |dE| {energy_diff:.2e} eV, max |dF| {forces_diff:.2e} eV/A"
    if energy_diff > CROSS_CHECK_ENERGY_EV or forces_diff > CROSS_CHECK_FORCES_EV_PER_A:
        raise RuntimeError(f"cross-check failed: {line}")
    return line


def read_labelled(path: Path) -> list[ase.Atoms]:
    """The frames of an extxyz file with :data:`ENERGY_KEY` and :data:`FORCES_KEY` labels."""
    frames = ase.io.read(path, index=":")
    if not all(ENERGY_KEY in atoms.info and FORCES_KEY in atoms.arrays for atoms in frames):
        raise ValueError(f"{path}: every frame needs {ENERGY_KEY} (info) and {FORCES_KEY} (arrays)")
    return frames


# --- MACE ----------------------------------------------------------------------------------------


def mace_flags(recipe: dict[str, Any]) -> list[str]:
    """``recipe`` as ``mace_run_train`` flags, with ``--ema`` and ``--amsgrad``."""
    return [f"--{key}={value}" for key, value in recipe.items()] + ["--ema", "--amsgrad"]


def mace_train_command(files: dict[str, Path], recipe: dict[str, Any]) -> list[str]:
    """``mace_run_train`` on the training and validation files, on CPU, validating every epoch and
    keeping every checkpoint it writes."""
    return [venv_tool("mace_run_train"), "--name=mace", f"--train_file={files['train']}", f"--valid_file={files['validation']}",
            f"--energy_key={ENERGY_KEY}", f"--forces_key={FORCES_KEY}", "--device=cpu", "--max_num_epochs=1000000",
            "--eval_interval=1", "--keep_checkpoints", "--error_table=TotalMAE", "--plot=False",
            *mace_flags(recipe)]  # fmt: skip


def mace_checkpoints(folder: Path, start: float) -> list[Checkpoint]:
    """The checkpoints of a ``mace_run_train`` run in ``folder``, with the validation loss of their
    epoch from MACE's results file."""
    losses = {}
    for results in (folder / "results").glob("*_train.txt"):
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("mode") == "eval" and entry.get("epoch") is not None:
                losses[entry["epoch"]] = entry["loss"]
    checkpoints = []
    for path in (folder / "checkpoints").glob("*_epoch-*.pt"):
        epoch = int(path.stem.rsplit("_epoch-", 1)[1])
        checkpoints.append(Checkpoint(path, minutes_since(path, start), losses[epoch]))
    return checkpoints


def mace_model_template(train_command: list[str], checkpoint: Checkpoint, folder: Path) -> Path:
    """A whole-model file of the run, made by MACE's own restart: ``mace_run_train`` with the
    training arguments, ``--restart_latest`` and no epochs left, in a folder whose only checkpoint
    is ``checkpoint``, loads it and saves the model (with the training set's neighbour
    normalisation, which the checkpoint's state dict does not hold)."""
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    link = folder / "checkpoints" / checkpoint.path.name
    link.unlink(missing_ok=True)
    link.symlink_to(checkpoint.path.resolve())
    command = [arg for arg in train_command if not arg.startswith("--max_num_epochs=")]
    run_logged([*command, "--max_num_epochs=0", "--restart_latest"], folder, "restart.log")
    return folder / "mace.model"


def mace_model_file(template: Path, checkpoint: Checkpoint, path: Path) -> Path:
    """The model of ``template`` with the weights of ``checkpoint``, saved whole at ``path``."""
    model = torch.load(template, map_location="cpu", weights_only=False)
    model.load_state_dict(torch.load(checkpoint.path, map_location="cpu", weights_only=False)["model"])
    torch.save(model, path)
    return path


def mace_evaluate(model_file: Path, test_file: Path, folder: Path) -> Predictions:
    """MACE's own evaluation, ``mace_eval_configs``, of ``model_file`` on the test frames."""
    output = folder / f"{model_file.stem}-test.xyz"
    run_logged([venv_tool("mace_eval_configs"), f"--configs={test_file}", f"--model={model_file}", f"--output={output}",
                "--device=cpu", "--default_dtype=float32", "--batch_size=10"], folder, f"{model_file.stem}-eval.log")  # fmt: skip
    frames = ase.io.read(output, index=":")
    return Predictions(
        energies=np.array([atoms.info["MACE_energy"] for atoms in frames]),
        ref_energies=np.array([atoms.info[ENERGY_KEY] for atoms in frames]),
        forces=[atoms.arrays["MACE_forces"] for atoms in frames],
        ref_forces=[atoms.arrays[FORCES_KEY] for atoms in frames],
    )


def mace_calculator(model_file: Path) -> Any:
    """MACE's ASE calculator on ``model_file``, on CPU in float32."""
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(model_file), device="cpu", default_dtype="float32")


def run_mace(files: dict[str, Path], output: Path, minutes: float, marks: list[float], overrides: dict) -> list[tuple]:
    """Train MACE for ``minutes`` and test its models at ``marks``: (mark, checkpoint, predictions,
    calculator) per mark with a checkpoint."""
    command = mace_train_command(files, {**MACE_RMD17, **overrides})
    start = train_under_timeout(command, output / "train", minutes)
    checkpoints = mace_checkpoints(output / "train", start)
    chosen = [(mark, select_checkpoint(checkpoints, mark)) for mark in marks]
    chosen = [(mark, checkpoint) for mark, checkpoint in chosen if checkpoint is not None]
    if not chosen:
        return []
    template = mace_model_template(command, chosen[0][1], output / "restart")
    results = []
    for mark, checkpoint in chosen:
        model_file = mace_model_file(template, checkpoint, output / f"mace-{mark:g}min.model")
        results.append((mark, checkpoint, mace_evaluate(model_file, files["test"], output), mace_calculator(model_file)))
    return results


# --- NequIP --------------------------------------------------------------------------------------


def nequip_data(files: dict[str, str], type_names: list[str], r_max: float, batch_size: int) -> dict:
    """An ``ASEDataModule`` config for ``files`` (keys ``train_file_path``, ``val_file_path`` and,
    for a test run, ``test_file_path``: NequIP's test runs need the other two as well), reading
    the labels from :data:`ENERGY_KEY` and :data:`FORCES_KEY`."""
    return {
        "_target_": "nequip.data.datamodule.ASEDataModule",
        "seed": 0,
        **files,
        "key_mapping": {ENERGY_KEY: "total_energy", FORCES_KEY: "forces"},
        "transforms": [
            {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper", "model_type_names": type_names},
            {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": r_max},
        ],
        "train_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": batch_size, "shuffle": True},
        "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": 10},
        "test_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": 10},
        "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager", "type_names": type_names,
                          "dataloader_kwargs": {"batch_size": 10}},
    }


def nequip_metrics() -> dict:
    """NequIP's energy and force metrics, summed with weights 1 and 1 for the monitored value."""
    return {"_target_": "nequip.train.EnergyForceMetrics", "coeffs": {"total_energy_mae": 1.0, "forces_mae": 1.0}}


def nequip_trainer(folder: Path, callbacks: list[dict]) -> dict:
    """A CPU ``lightning.Trainer`` config without an epoch limit, logging to CSV in ``folder``."""
    return {
        "_target_": "lightning.Trainer",
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": -1,
        "log_every_n_steps": 10,
        "enable_progress_bar": False,
        "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(folder)},
        "callbacks": callbacks,
    }


def nequip_train_config(files: dict[str, Path], folder: Path, model_overrides: dict) -> dict:
    """The ``nequip-train`` config: :data:`NEQUIP_RMD17_MODEL` (with ``model_overrides``) trained as
    :data:`NEQUIP_TRAINING`, saving a checkpoint with its validation score every epoch."""
    model = {**NEQUIP_RMD17_MODEL, **model_overrides}
    type_names = sorted({symbol for atoms in read_labelled(files["train"]) for symbol in atoms.get_chemical_symbols()})
    checkpoint = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": str(folder / "checkpoints"),
                  "filename": "epoch{epoch}", "auto_insert_metric_name": False, "monitor": NEQUIP_MONITOR,
                  "save_top_k": -1, "every_n_epochs": 1}  # fmt: skip
    training = NEQUIP_TRAINING
    return {
        "run": ["train"],
        "data": nequip_data({"train_file_path": str(files["train"]), "val_file_path": str(files["validation"])},
                            type_names, model["r_max"], training["batch_size"]),
        "trainer": nequip_trainer(folder, [checkpoint]),
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "ema_decay": training["ema_decay"],
            "loss": {"_target_": "nequip.train.EnergyForceLoss", "per_atom_energy": False,
                     "coeffs": training["loss_coeffs"]},
            "val_metrics": nequip_metrics(),
            "test_metrics": nequip_metrics(),
            "optimizer": {"_target_": "torch.optim.Adam", "lr": training["lr"], "amsgrad": True},
            "lr_scheduler": {
                "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", **training["scheduler"]},
                "monitor": NEQUIP_MONITOR, "interval": "epoch", "frequency": 1,
            },
            "model": {
                "_target_": "nequip.model.NequIPGNNModel",
                "type_names": type_names,
                **model,
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_scales": "${training_data_stats:per_type_forces_rms}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
                "per_type_energy_scales_trainable": True,
                "per_type_energy_shifts_trainable": True,
            },
        },
    }


def nequip_command(config: dict, folder: Path, name: str) -> list[str]:
    """Write ``config`` as ``folder/name.yaml`` and return the ``nequip-train`` command that runs it
    with Hydra's output in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    return [venv_tool("nequip-train"), "-cp", str(folder.resolve()), "-cn", name, f"hydra.run.dir={folder.resolve()}"]


def nequip_checkpoints(folder: Path, start: float) -> list[Checkpoint]:
    """The checkpoints of a ``nequip-train`` run in ``folder``, with the validation score Lightning's
    ``ModelCheckpoint`` saved in each."""
    checkpoints = []
    for path in (folder / "checkpoints").glob("epoch*.ckpt"):
        states = torch.load(path, map_location="cpu", weights_only=False)["callbacks"]
        [score] = [state["current_score"] for key, state in states.items() if key.startswith("ModelCheckpoint")]
        checkpoints.append(Checkpoint(path, minutes_since(path, start), float(score)))
    return checkpoints


def nequip_evaluate(checkpoint: Checkpoint, files: dict[str, Path], folder: Path, type_names: list[str], r_max: float) -> Predictions:
    """NequIP's own test run (``nequip-train`` with ``run: [test]``, the checkpoint's EMA model by
    ``ModelFromCheckpoint``) on the test frames, predictions written by ``TestTimeXYZFileWriter``."""
    out_file = folder / "predictions"
    writer = {"_target_": "nequip.train.callbacks.TestTimeXYZFileWriter", "out_file": str(out_file),
              "output_fields_from_original_dataset": ["total_energy", "forces"], "chemical_symbols": type_names}  # fmt: skip
    config = {
        "run": ["test"],
        "data": nequip_data({"train_file_path": str(files["train"]), "val_file_path": str(files["validation"]),
                             "test_file_path": str(files["test"])}, type_names, r_max, NEQUIP_TRAINING["batch_size"]),
        "trainer": nequip_trainer(folder, [writer]),
        "training_module": {
            "_target_": "nequip.train.NequIPLightningModule",
            "loss": {"_target_": "nequip.train.EnergyForceLoss", "coeffs": {"total_energy": 1.0, "forces": 1.0}},
            "test_metrics": nequip_metrics(),
            "model": {"_target_": "nequip.model.ModelFromCheckpoint", "checkpoint_path": str(checkpoint.path.resolve())},
        },
    }
    run_logged(nequip_command(config, folder, "test"), folder, "test.log")
    frames = ase.io.read(f"{out_file}_dataset0.xyz", index=":")
    return Predictions(
        energies=np.array([atoms.get_potential_energy() for atoms in frames]),
        ref_energies=np.array([atoms.info["original_dataset_energy"] for atoms in frames]),
        forces=[atoms.get_forces() for atoms in frames],
        ref_forces=[atoms.arrays["original_dataset_forces"] for atoms in frames],
    )


def nequip_calculator(checkpoint: Checkpoint) -> Any:
    """NequIP's ASE calculator on the checkpoint's model, on CPU."""
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator._from_saved_model(str(checkpoint.path), device="cpu")


def run_nequip(files: dict[str, Path], output: Path, minutes: float, marks: list[float], overrides: dict) -> list[tuple]:
    """Train NequIP for ``minutes`` and test its models at ``marks``: (mark, checkpoint,
    predictions, calculator) per mark with a checkpoint."""
    config = nequip_train_config(files, output / "train", overrides)
    start = train_under_timeout(nequip_command(config, output / "train", "train"), output / "train", minutes)
    checkpoints = nequip_checkpoints(output / "train", start)
    type_names, r_max = config["training_module"]["model"]["type_names"], config["training_module"]["model"]["r_max"]
    results = []
    for mark in marks:
        checkpoint = select_checkpoint(checkpoints, mark)
        if checkpoint is not None:
            predictions = nequip_evaluate(checkpoint, files, output / f"test-{mark:g}min", type_names, r_max)
            results.append((mark, checkpoint, predictions, nequip_calculator(checkpoint)))
    return results


PEERS: dict[str, Callable[..., list[tuple]]] = {"mace": run_mace, "nequip": run_nequip}


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=sorted(PEERS), required=True)
    parser.add_argument("--run", required=True, help="the records' run name, e.g. mace-paracetamol-50")
    for part in ("train", "validation", "test"):
        parser.add_argument(f"--{part}", type=Path, required=True, help=f"extxyz file of the {part} frames")
    parser.add_argument("--output", type=Path, required=True, help="folder for the peer's training and evaluations")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training time")
    parser.add_argument("--marks", type=float, nargs="+", required=True, help="minutes at which to test the model")
    parser.add_argument("--hyperparameters", type=json.loads, default={}, help="JSON object of recipe overrides")
    parser.add_argument("--max-test-frames", type=int, help="test on the first N test frames only (default: all)")
    parser.add_argument("--cross-check-frames", type=int, default=3, help="frames for the calculator cross-check")
    return parser.parse_args(argv)


def test_file(path: Path, max_frames: int | None, output: Path) -> Path:
    """``path``, or a copy of its first ``max_frames`` frames in ``output``."""
    if max_frames is None:
        return path
    output.mkdir(parents=True, exist_ok=True)
    subset = output / "test-subset.xyz"
    ase.io.write(subset, read_labelled(path)[:max_frames], format="extxyz")
    return subset


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    output = args.output.resolve()
    files = {"train": args.train.resolve(), "validation": args.validation.resolve(),
             "test": test_file(args.test.resolve(), args.max_test_frames, output)}  # fmt: skip
    num_train = len(read_labelled(files["train"]))
    check_frames = read_labelled(files["test"])[: args.cross_check_frames]
    results = PEERS[args.peer](files, output, args.minutes, args.marks, args.hyperparameters)
    for mark in sorted(set(args.marks) - {result[0] for result in results}):
        print(f"{args.run}: no checkpoint was written in the first {mark:g} min, so no record for that mark", file=sys.stderr)
    records = []
    for mark, checkpoint, predictions, calculator in results:
        print(f"{args.run} at {mark:g} min ({checkpoint.path.name}): {cross_check(predictions, check_frames, calculator)}", file=sys.stderr)
        forces_mae, energy_mae = mean_absolute_errors(predictions)
        records.append({"run": args.run, "num_train": num_train, "minutes": mark, "training_minutes": checkpoint.minutes,
                        "num_test_frames": len(predictions.energies), "forces_mae": forces_mae, "energy_mae": energy_mae})  # fmt: skip
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
