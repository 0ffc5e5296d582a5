"""``eqff bench``: its rows, and a row whose process dies does not end the benchmark."""

import os
from pathlib import Path

import pytest

from eqff.cli import main
from eqff.commands.bench import run_in_fresh_process

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ASPIRIN = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_bench_prints_one_row_per_system_and_dtype(capsys):
    argv = ["bench", "--systems", "aspirin", "--dtypes", "float32", "float64", "--repeats", "2", "--data", DATA_ROOT]
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("aspirin")]
    assert [row[4] for row in rows] == ["float32", "float64"]
    for row in rows:
        assert row[1:3] == ["21", "294"]  # atoms, pairs within 5 Å
        total, neighbours, model = map(float, row[5:8])
        assert 0 < neighbours < total and 0 < model < total


def test_a_process_that_dies_gives_none():
    assert run_in_fresh_process(os.abort) is None
    assert run_in_fresh_process(os.getpid) != os.getpid()
