"""``eqff train-peer``: train a peer force field (MACE or NequIP) on the frames of an eqff training
config for a fixed time, through the peer's own command line in its own virtual environment,
and test the models it kept after given minutes (see :mod:`eqff.peers.learning_curve`).

The run folder it writes (``runs/<peer>-<config name>`` by default) can be given to
``eqff learning-curve`` beside eqff's own runs.
"""

import argparse
import json
from pathlib import Path

from eqff.peers.learning_curve import (
    PEER_DIR,
    PEER_RECORDS,
    PEERS,
    check_peer_python,
    run_peer,
    train_peer_command,
    write_split_frames,
)
from eqff.train.config import RunConfig, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="eqff training config whose frames the peer trains on (one data source)")
    parser.add_argument("--peer", choices=PEERS, required=True, help="the peer to train with its own rMD17 recipe")
    parser.add_argument("--python", required=True, help="Python of the peer's virtual environment")
    parser.add_argument("--minutes", type=float, default=90.0, help="wall-clock training time (default: 90)")
    parser.add_argument("--marks", type=float, nargs="+", default=[10.0, 30.0, 90.0],
                        help="minutes at which to test the model kept (default: 10 30 90)")  # fmt: skip
    parser.add_argument("--output", help="run folder (default: the config's output_dir/<peer>-<config name less its architecture>)")
    parser.add_argument("--data", metavar="FOLDER", help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument("--hyperparameters", type=json.loads, help="JSON object of overrides of the peer's recipe")
    parser.add_argument("--max-test-frames", type=int, help="test on the first N test frames only (default: all)")


def peer_run_name(peer: str, config: RunConfig) -> str:
    """The config's run name with the peer's name in place of the architecture's:
    ``painn-paracetamol-50`` becomes ``mace-paracetamol-50``."""
    return f"{peer}-{config.name.removeprefix(config.model.architecture + '-')}"


def run(args: argparse.Namespace) -> int:
    python = check_peer_python(args.python, args.peer)
    config = load_config(args.config)
    folder = Path(args.output or Path(config.output_dir) / peer_run_name(args.peer, config))
    files = write_split_frames(config, folder, args.data)
    command = train_peer_command(python, args.peer, files, folder / PEER_DIR, folder.name, args.minutes, args.marks,
                                 args.hyperparameters, args.max_test_frames)  # fmt: skip
    records = run_peer(command, folder / PEER_RECORDS)
    print(json.dumps(records, indent=1))
    print(f"wrote {folder / PEER_RECORDS}")
    return 0
