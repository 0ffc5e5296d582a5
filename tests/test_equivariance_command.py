"""``eqff equivariance``: PNITA (N = 0) is exactly invariant, a 4-point grid is not, and the table is printed."""

import os
from pathlib import Path

import pytest

from eqff.cli import main

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ASPIRIN = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 aspirin not found (set EQFF_DATA)")
def test_error_is_zero_without_a_grid_and_not_with_four_orientations(capsys):
    assert main(["equivariance", "--orientations", "0", "4", "--rotations", "2", "--repeats", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] in (["0"], ["4"])]
    (n0, *errors0), (n4, *errors4) = [(int(row[0]), *map(float, row[1:5])) for row in rows]
    assert max(errors0[:3]) < 1e-8 and errors0[3] < 1e-12
    assert min(errors4[:3]) > 1e-4 and errors4[3] > 1e-4
