"""``eqff report``: models side by side: test errors, speed, NVE energy drift, NVT stability and h(r).

For each model (default: every shipped potential), trained on rMD17: the test errors that
``eqff evaluate`` prints for its molecule's ``test_0N``; ms per energy+forces call on aspirin and
on a 1,029-atom water box (``eqff bench`` rows, float32, each in a fresh process, compiled for the
architectures the calculator compiles in runs longer than a few minutes); an NVE run
(float64) and an NVT run at 500 K (float32) of its molecule (see :mod:`eqff.report.measurements`). With
``--peers``, MACE and SchNetPack's PaiNN at random weights are timed on the same systems in their
own virtual environment, and with ``--nequip`` NequIP at its rMD17 size in its own, in turn with
eqff's models, so the speed ratios are measured here. With ``--taxonomy``, the rows are ordered by
the lecture's two questions (:mod:`eqff.models.taxonomy`): linear convolution or non-linear
message, then features on R³, on R³×S² or steerable, and the two answers are printed beside the
model's name.

Writes ``report.md`` (the table), ``report.json`` and the plots ``speed.png``, ``nve.png`` and
``nvt.png`` into ``--output``. Each model's finished measurements are kept in ``--output``'s
``measured/`` folder as they finish, so that the same command, run again after an interruption,
continues where it stopped (:mod:`eqff.report.progress`).
"""

import argparse
import json
import os
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from eqff.allocator import retain_freed_memory
from eqff.compilation import COMPILE_SECONDS
from eqff.commands.bench import run_in_fresh_process, time_row
from eqff.model_file import load_model, read_model_file, shipped_potentials
from eqff.models.taxonomy import TAXONOMY, Taxonomy, taxonomy_order
from eqff.report.measurements import (
    NVE_DTYPE, NVT_DTYPE, TIMESTEP, NVEResult, NVTResult, TrainingData, errors_on_test_set, nve_drift, nvt_stability,
    rotation_error, training_data,
)  # fmt: skip
from eqff.peers.run import (
    DEFAULT_NEQUIP_PYTHON, DEFAULT_PEERS_PYTHON, NEQUIP, PEER_LABELS, PEERS, check_peers_python, time_peer,
)  # fmt: skip
from eqff.report.plots import plot_nve, plot_nvt, plot_speed
from eqff.report.progress import MEASURED_FOLDER, MeasuredStore
from eqff.md.systems import WATER_BOXES, benchmark_system


SPEED_SYSTEMS = ["aspirin", "water-1029"]
"""Systems timed by default: rMD17 aspirin (21 atoms) and a water box of 1,029 atoms."""
SPEED_DTYPE = "float32"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", help="model files or shipped potentials trained on rMD17 "
                        "(default: every shipped potential)")  # fmt: skip
    parser.add_argument("--nve-ps", type=float, default=1.0, help="ps of NVE per model (default: %(default)s)")
    parser.add_argument("--nvt-ps", type=float, default=2.0, help="ps of NVT at 500 K per model (default: %(default)s)")
    parser.add_argument("--systems", nargs="+", default=SPEED_SYSTEMS, choices=["aspirin", *WATER_BOXES],
                        help="systems timed (default: %(default)s)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per speed measurement (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="speed measurements per model and system, taken in turn; the median is reported")  # fmt: skip
    parser.add_argument("--peers", action="store_true", help="also time MACE and SchNetPack's PaiNN (random weights)")
    parser.add_argument("--nequip", action="store_true",
                        help="also time NequIP at its rMD17 size (random weights) in its own environment")  # fmt: skip
    parser.add_argument("--peer-systems", nargs="+", default=["aspirin"], choices=["aspirin", *WATER_BOXES],
                        help="systems the peers are timed on (default: %(default)s; MACE and NequIP at their rMD17 "
                        "sizes took about 90 s and 180 s per call on 1,029 atoms on a 2-core CPU)")  # fmt: skip
    parser.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                        help="Python of the peers' environment (default: $EQFF_PEERS_PYTHON or %(default)s)")  # fmt: skip
    parser.add_argument("--nequip-python", default=DEFAULT_NEQUIP_PYTHON,
                        help="Python of NequIP's environment (default: $EQFF_NEQUIP_PYTHON or %(default)s)")  # fmt: skip
    parser.add_argument("--taxonomy", action="store_true",
                        help="order the models by message kind (linear convolution or non-linear) and feature space "
                        "(R³, R³×S², steerable), and show both beside each model")  # fmt: skip
    parser.add_argument("--data", help="data folder holding rmd17/ (default: $EQFF_DATA)")
    parser.add_argument("--output", type=Path, default=Path("report"), help="folder for the table and plots")


def measure_speeds(args: argparse.Namespace, models: list[str], peers: tuple[str, ...],
                   store: MeasuredStore) -> dict[str, dict[str, float]]:  # fmt: skip
    """ms per call, ``speeds[name][system]``: median over ``--rounds`` measurements taken in turn.

    eqff's calls are timed as the calculator makes them in a run longer than its compile time:
    compiled for the architectures it compiles (:data:`eqff.compilation.COMPILE_SECONDS`). A model's
    speeds saved in ``store`` under the same settings are reused; the others (and the peers') are measured.
    """
    settings = {"systems": args.systems, "dtype": SPEED_DTYPE, "repeats": args.repeats, "rounds": args.rounds}
    speeds = {model: saved for model in models if (saved := store.load(model, "speed", settings)) is not None}
    to_measure = [model for model in models if model not in speeds]
    compiled = {model: load_model(model)[1]["architecture"] in COMPILE_SECONDS for model in to_measure}
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_ in range(1, args.rounds + 1):
        for system in args.systems:
            atoms = benchmark_system(system, args.data)
            for model in to_measure:
                row = run_in_fresh_process(
                    time_row, model, system, args.data, "cpu", SPEED_DTYPE, args.repeats, None, "rattle", compiled[model]
                )
                ms = np.nan if row is None else row["total_ms"]
                samples[model][system].append(ms)
                print(f"  round {round_}: {model:<24} {system:<11} {ms:9.2f} ms", flush=True)
            for peer in peers if system in args.peer_systems else ():
                record = time_peer(peer_python(args, peer), peer, atoms, SPEED_DTYPE, args.repeats)
                samples[PEER_LABELS[peer]][system].append(record["ms"])
                if round_ == 1 and system == args.peer_systems[0]:
                    print(f"  {PEER_LABELS[peer]}: {record['description']}; versions {record['versions']}")
                print(f"  round {round_}: {PEER_LABELS[peer]:<24} {system:<11} {record['ms']:9.2f} ms", flush=True)
    measured = {name: {system: float(np.median(values)) for system, values in rows.items()} for name, rows in samples.items()}
    for model in to_measure:
        store.save(model, "speed", settings, measured[model])
    return {**{model: speeds.get(model) or measured[model] for model in models},
            **{label: ms for label, ms in measured.items() if label not in models}}  # fmt: skip


def measure_model(model: str, data: TrainingData, args: argparse.Namespace,
                  store: MeasuredStore) -> tuple[dict, NVEResult, NVTResult]:  # fmt: skip
    """``model``'s test errors (with the rotation error), NVE run and NVT run; each taken from ``store`` when
    saved there under the same settings, else measured and saved at once."""
    data_settings = {"molecule": data.molecule, "split": data.split}
    errors = store.value(model, "errors", data_settings, lambda: {
        **errors_on_test_set(model, data, args.data), "rotation_energy_error_meV": rotation_error(model, data, args.data),
    })  # fmt: skip
    nve = store.result(model, "nve", {**data_settings, "picoseconds": args.nve_ps}, NVEResult,
                       lambda: nve_drift(model, data, args.nve_ps, args.data))  # fmt: skip
    nvt = store.result(model, "nvt", {**data_settings, "picoseconds": args.nvt_ps}, NVTResult,
                       lambda: nvt_stability(model, data, args.nvt_ps, args.data))  # fmt: skip
    return errors, nve, nvt


def timed_peers(args: argparse.Namespace) -> tuple[str, ...]:
    """The peers ``--peers`` and ``--nequip`` ask for."""
    return (*(PEERS if args.peers else ()), *((NEQUIP,) if args.nequip else ()))


def peer_python(args: argparse.Namespace, peer: str) -> str:
    """The Python of ``peer``'s environment: ``--nequip-python`` for NequIP, ``--peers-python`` for the others."""
    return args.nequip_python if peer == NEQUIP else args.peers_python


def model_architecture(model: str) -> str:
    """The architecture of ``model`` (a model file or shipped potential); a committee's is its members'."""
    content = read_model_file(model)
    if content["architecture"] == "committee":
        return content["hyperparameters"]["member_architecture"]
    return content["architecture"]


def in_taxonomy_order(models: list[str], architectures: dict[str, str]) -> list[str]:
    """``models`` ordered by :func:`eqff.models.taxonomy.taxonomy_order` of their architectures; those of one
    architecture in the order given."""
    return sorted(models, key=lambda model: taxonomy_order(architectures[model]))


def with_taxonomy(rows: list[list[str]], architectures: dict[str, str]) -> list[list[str]]:
    """The table ``rows`` (header first) with the message kind and feature space of each model's
    architecture after its name; dashes in the peers' rows."""
    header, *body = rows
    extended = [[header[0], "message", "features", *header[1:]]]
    for name, *cells in body:
        taxonomy: Taxonomy | None = TAXONOMY[architectures[name]] if name in architectures else None
        answers = [taxonomy.message, taxonomy.features] if taxonomy else ["—", "—"]
        extended.append([name, *answers, *cells])
    return extended


def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def table(models: list[str], molecules: dict[str, str], errors: dict[str, dict], speeds: dict[str, dict[str, float]],
          nve: dict[str, NVEResult], nvt: dict[str, NVTResult]) -> list[list[str]]:  # fmt: skip
    """The report's table, header first: one row per model, then one per peer (speed only)."""
    systems = list(next(iter(speeds.values())))
    rows = [["model", "molecule", "E MAE meV", "F MAE meV/Å", "rot. ΔE meV", *(f"ms/call {system}" for system in systems),
             "NVE drift meV/atom/ps", "NVE fluct. meV/atom", "NVE |L| ħ/ps", "NVT stable ps", "h(r) MAE"]]  # fmt: skip
    for model in models:
        rows.append([
            model, molecules[model], _cell(errors[model]["energy_mae_meV"], 2),
            _cell(errors[model]["forces_mae_meV_per_A"], 2), _scientific(errors[model]["rotation_energy_error_meV"]),
            *(_cell(speeds[model][system], 2) for system in systems),
            _cell(nve[model].drift, 4), _cell(nve[model].fluctuation, 3), _scientific(nve[model].angular_momentum_drift),
            f"{nvt[model].stable_ps:.2f} of {nvt[model].run_ps:.2f}", _cell(nvt[model].hr_mae, 3),
        ])  # fmt: skip
    for label in [name for name in speeds if name not in models]:
        rows.append([label, "—", "—", "—", "—", *(_cell(speeds[label].get(system), 2) for system in systems),
                     "—", "—", "—", "—", "—"])  # fmt: skip
    return rows


def _scientific(value: float) -> str:
    return f"{value:.1e}"


def format_text(rows: list[list[str]]) -> str:
    """The table (header first) with aligned columns, for the terminal."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) if column else cell.ljust(width)
                       for column, (cell, width) in enumerate(zip(row, widths))) for row in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_markdown(rows: list[list[str]]) -> str:
    """The table (header first) in Markdown, for the README."""
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def speed_ratios(models: list[str], speeds: dict[str, dict[str, float]]) -> list[str]:
    """One line per model and peer: the peer's ms per call divided by the model's, on each system,
    and in brackets the model's divided by the peer's."""
    lines = []
    for model in models:
        for label in [name for name in speeds if name not in models]:
            ratios = ", ".join(f"{speeds[label][system] / speeds[model][system]:.1f}× on {system} "
                               f"(ms ratio {speeds[model][system] / speeds[label][system]:.2g})"
                               for system in speeds[model] if system in speeds[label])  # fmt: skip
            lines.append(f"speed-up of {model} over {label}: {ratios}")
    return lines


def run(args: argparse.Namespace) -> int:
    retain_freed_memory()  # this process is eqff's own: see eqff.allocator
    models = args.models or shipped_potentials()
    architectures = {model: model_architecture(model) for model in models}
    if args.taxonomy:
        models = in_taxonomy_order(models, architectures)
    peers = timed_peers(args)
    data = {model: training_data(model) for model in models}
    for peer in peers:
        check_peers_python(peer_python(args, peer), peer)
    print(f"eqff report: {len(models)} models{' and peers ' + ', '.join(peers) if peers else ''}; "
          f"host {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"speed: {SPEED_DTYPE} on the CPU through each package's ASE calculator, median of {args.repeats} calls "
          f"after 3 warm-up calls, {args.rounds} rounds in turn")
    store = MeasuredStore(args.output / MEASURED_FOLDER)
    speeds = measure_speeds(args, models, peers, store)
    errors, nve, nvt = {}, {}, {}
    for model in models:
        print(f"{model}: rMD17 {data[model].molecule} split {data[model].split}", flush=True)
        errors[model], nve[model], nvt[model] = measure_model(model, data[model], args, store)
    rows = table(models, {m: d.molecule for m, d in data.items()}, errors, speeds, nve, nvt)
    if args.taxonomy:
        rows = with_taxonomy(rows, architectures)
    args.output.mkdir(parents=True, exist_ok=True)
    plot_speed(args.output / "speed.png", speeds)
    plot_nve(args.output / "nve.png", nve)
    plot_nvt(args.output / "nvt.png", nvt)
    conditions = (f"test errors: rMD17 test_0N of each model's split, in the model's dtype; rot. ΔE: the largest "
                  f"change of the {NVE_DTYPE} energy of 5 test frames under 10 random rotations each; NVE: {args.nve_ps:g} ps "
                  f"of velocity Verlet, {NVE_DTYPE}, {TIMESTEP:g} fs, from 300 K; NVT: {args.nvt_ps:g} ps of Langevin at "
                  f"500 K, {NVT_DTYPE}, {TIMESTEP:g} fs; NVE |L|: the largest angular momentum over the run's length (it starts "
                  f"at zero); stable ps: time until a bond deviates by more than 0.5 Å")  # fmt: skip
    ratios = speed_ratios(models, speeds)
    ratio_list = "\n".join(f"- {line}" for line in ratios)
    (args.output / "report.md").write_text("\n\n".join([format_markdown(rows), conditions, ratio_list]).strip() + "\n")
    (args.output / "report.json").write_text(json.dumps({
        "models": {model: {"architecture": architectures[model], "message": TAXONOMY[architectures[model]].message,
                           "features": TAXONOMY[architectures[model]].features,
                           "molecule": data[model].molecule, "split": data[model].split, "test_errors": errors[model],
                           "ms_per_call": speeds[model], "nve_drift_meV_per_atom_per_ps": nve[model].drift,
                           "nve_fluctuation_meV_per_atom": nve[model].fluctuation,
                           "nve_angular_momentum_drift_hbar_per_ps": nve[model].angular_momentum_drift,
                           "nvt_run_ps": nvt[model].run_ps,
                           "nvt_stable_ps": nvt[model].stable_ps, "hr_mae": nvt[model].hr_mae}
                   for model in models},
        "peers_ms_per_call": {label: ms for label, ms in speeds.items() if label not in models},
        "conditions": conditions,
    }, indent=1) + "\n")  # fmt: skip
    print()
    print(format_text(rows))
    print(conditions)
    for line in ratios:
        print(line)
    print(f"wrote {args.output / 'report.md'}, report.json, speed.png, nve.png, nvt.png")
    return 0
