"""``eqff active-learning``: test error against labelled frames, chosen by a committee's uncertainty or at random.

Rounds of: train a committee on the labelled frames, test it, and label the next frames of the
pool, chosen by the committee's uncertainty or at random (:func:`eqff.active_learning.learning_curve`).
"""

import argparse
from pathlib import Path

from eqff.active_learning import CURVE_FILE, PLOT_FILE, STRATEGIES, learning_curve
from eqff.train.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config of one data source with model.committee_size >= 2, e.g. "
                        "training/committee-ethanol.yaml; its data.num_train frames are the pool")
    parser.add_argument("--initial", type=int, default=25, help="labelled frames of the first round")
    parser.add_argument("--step", type=int, default=25, help="frames added per round")
    parser.add_argument("--rounds", type=int, default=8, help="rounds, the first included")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES),
                        help="how the frames are chosen")
    parser.add_argument("--output", help="folder of the rounds' runs, the JSON and the plot (default: the config's "
                        "output_dir/<name>-active-learning)")
    parser.add_argument("--data", metavar="FOLDER", help="data folder (default: the config's data.root, else $EQFF_DATA)")
    parser.add_argument("--max-test-frames", type=int, help="test on the first N test frames only (default: all)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value by its dotted key, as for eqff train (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    output = Path(args.output) if args.output else Path(config.output_dir) / f"{config.name}-active-learning"
    print(f"eqff active-learning: {config.name}: committees of {config.model.committee_size} {config.model.architecture}, "
          f"{args.rounds} rounds from {args.initial} frames in steps of {args.step}, "
          f"chosen by {' and by '.join(args.strategies)}; output {output}", flush=True)
    results = learning_curve(config, output, args.initial, args.step, args.rounds, args.strategies, args.data,
                             args.max_test_frames)  # fmt: skip
    print(f"{'strategy':<12} {'frames':>6} {'F MAE meV/Å':>12} {'E MAE meV':>10} {'mean σF meV/Å':>14} "
          f"{'Spearman':>8} {'train s':>8}")
    for r in results:
        print(f"{r.strategy:<12} {r.num_labelled:>6} {r.forces_mae:>12.2f} {r.energy_mae:>10.2f} "
              f"{r.mean_forces_uncertainty:>14.2f} {r.spearman:>8.3f} {r.training_seconds:>8.0f}")
    print(f"wrote {output / CURVE_FILE} and {output / PLOT_FILE}")
    return 0
