"""``eqff train``: fit a force field as a YAML config says (see training/README.md)."""

import argparse
import sys

from eqff.train.config import load_config
from eqff.train.run import train
from eqff.train.run_folder import SPLIT_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML), e.g. training/painn-aspirin.yaml")
    parser.add_argument("--resume", action="store_true", help="continue the run from its checkpoints/last.ckpt")
    parser.add_argument("--data", metavar="FOLDER", help="data folder (default: the config's data.root, else $EQFF_DATA)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (there is none when standard error is not a terminal)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value by its dotted key, e.g. --set name=ponita-n12 "
        "--set model.hyperparameters.num_orientations=12 (repeatable; give the same ones with --resume)",
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    sources = ", ".join(
        f"{data.path if data.dataset == 'extxyz' else f'{data.dataset} {data.molecule}'} "
        f"({data.num_train} train + {data.num_validation} validation frames)"
        for data in config.data
    )
    print(f"eqff train: {config.name}: {config.model.architecture} on {sources}, {config.dtype} on {config.device}, "
          f"run folder {config.run_dir}{' (resuming)' if args.resume else ''}", flush=True)
    result = train(config, resume=args.resume, data_root=args.data, progress_bar=not args.no_progress and sys.stderr.isatty())
    if result is None:  # a non-zero rank of a multi-process run
        return 0
    epochs_run = len(result.epoch_seconds)
    print("summary")
    if epochs_run:
        mean = sum(result.epoch_seconds) / epochs_run
        print(f"  epochs              {result.epochs} in total, {epochs_run} in this run at {mean:.1f} s/epoch: "
              f"{result.epochs_per_hour:.1f} epochs/hour")
    else:
        print(f"  epochs              {result.epochs} in total, none in this run (the run had already finished)")
    print(f"  training time       {result.training_seconds:.0f} s in total")
    print(f"  best val force MAE  {result.best_forces_mae:.2f} meV/Å (EMA weights)")
    print(f"  model               {result.model_path}")
    split = result.run_dir / SPLIT_FILE
    print(f"  evaluate            eqff evaluate {result.model_path} --split-file {split} --part test")
    return 0
