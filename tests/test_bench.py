"""``eqff bench``: its rows, and a row whose process dies does not end the benchmark."""

import os
from pathlib import Path

import pytest

from eqff.cli import main
from eqff.commands.bench import benchmark_system, run_in_fresh_process

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ASPIRIN = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_bench_prints_one_row_per_model_system_and_dtype(capsys):
    argv = ["bench", "--architectures", "painn", "gemnet-t", "--systems", "aspirin", "--dtypes", "float32", "float64",
            "--repeats", "2", "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if " aspirin " in line]
    assert [(row[0], row[5]) for row in rows] == [
        ("painn", "float32"), ("painn", "float64"), ("gemnet-t", "float32"), ("gemnet-t", "float64")
    ]
    for row in rows:
        assert row[2:4] == ["21", "294"]  # atoms, pairs within 5 Å
        total, neighbours, model = map(float, row[6:9])
        assert 0 < neighbours < total and 0 < model < total
    for row in rows:  # GemNet-T's rows also time its triplet construction, with its share of the call
        if row[0] == "gemnet-t":
            assert len(row) == 12 and 0 < float(row[10]) < float(row[6]) and row[11].endswith("%)")
        else:
            assert len(row) == 10


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_systems_are_rmd17_molecules_and_water_boxes():
    assert benchmark_system("ethanol", DATA_ROOT).get_chemical_formula() == "C2H6O"
    assert len(benchmark_system("water-192", DATA_ROOT)) == 192
    with pytest.raises(ValueError, match="unknown system 'ethanl'.*ethanol"):
        benchmark_system("ethanl", DATA_ROOT)


def test_a_process_that_dies_gives_none():
    assert run_in_fresh_process(os.abort) is None
    assert run_in_fresh_process(os.getpid) != os.getpid()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_training_step_rows_time_eager_and_compiled_steps(capsys):
    argv = ["bench", "--architectures", "painn", "--systems", "aspirin", "--dtypes", "float32", "--repeats", "1",
            "--training-step", "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out.split("training steps:")[1]
    rows = [line.split() for line in table.splitlines() if " aspirin " in line]
    assert [row[:2] for row in rows] == [["painn", "aspirin"]]
    eager, compile_seconds, compiled = map(float, rows[0][2:5])
    assert eager > 0 and compile_seconds > compiled / 1e3 > 0 and rows[0][5].endswith("x")
