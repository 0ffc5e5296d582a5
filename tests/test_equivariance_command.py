"""``eqff equivariance``: PNITA (N = 0) is exactly invariant, a 4-point grid is not, and the table is printed."""

import os
from pathlib import Path

import pytest
import torch

from eqff.cli import main
from eqff.model_file import save_model
from eqff.models import build_model

DATA_ROOT = os.environ.get("EQFF_DATA", "/work/shared/data")
HAVE_ASPIRIN = (Path(DATA_ROOT) / "rmd17" / "splits" / "rmd17_aspirin_train_01.npz").is_file()


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 aspirin not found (set EQFF_DATA)")
def test_error_is_zero_without_a_grid_and_not_with_four_orientations(capsys):
    argv = ["equivariance", "--orientations", "0", "4", "--rotations", "2", "--repeats", "1", "--nve-steps", "20",
            "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("random ")]
    (n0, *errors0), (n4, *errors4) = [(int(row[1]), *map(float, row[2:8])) for row in rows]
    assert (n0, n4) == (0, 4)
    energy_and_forces0, torque0, angular_momentum0 = errors0[:4], errors0[4], errors0[5]
    assert max(energy_and_forces0[:3]) < 1e-8 and energy_and_forces0[3] < 1e-12
    assert torque0 < 1e-10 and angular_momentum0 < 1e-6
    energy_and_forces4, torque4, angular_momentum4 = errors4[:4], errors4[4], errors4[5]
    assert min(energy_and_forces4[:3]) > 1e-4 and energy_and_forces4[3] > 1e-4
    assert torque4 > 1e-5 and angular_momentum4 > 1e3 * angular_momentum0


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_model_files_are_measured_with_their_own_grid(tmp_path, capsys):
    torch.manual_seed(0)
    save_model(tmp_path / "ponita-n4.eqff", build_model("ponita", {"elements": [1, 6, 8], "num_orientations": 4}))
    save_model(tmp_path / "painn.eqff", build_model("painn", {"elements": [1, 6, 8]}))
    argv = ["equivariance", "--models", str(tmp_path / "ponita-n4.eqff"), "--system", "ethanol", "--rotations", "2",
            "--repeats", "1", "--nve-steps", "5", "--data", DATA_ROOT]  # fmt: skip
    assert main(argv) == 0
    output = capsys.readouterr().out
    assert "rMD17 ethanol (9 atoms)" in output
    (row,) = [line.split() for line in output.splitlines() if line.startswith("ponita-n4 ")]
    assert int(row[1]) == 4 and float(row[4]) > 1e-4
    with pytest.raises(SystemExit, match="is a painn model"):
        main(["equivariance", "--models", str(tmp_path / "painn.eqff"), "--data", DATA_ROOT])


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_test_frames_take_the_largest_error_over_frames(tmp_path, capsys):
    """With --test-frames the largest energy error and torque are over every frame: never below
    those of the first frame alone."""
    torch.manual_seed(0)
    path = tmp_path / "ponita-n4.eqff"
    save_model(path, build_model("ponita", {"elements": [1, 6, 8], "num_orientations": 4}))
    rows = {}
    for frames in ("1", "3"):
        argv = ["equivariance", "--models", str(path), "--system", "ethanol", "--test-frames", frames, "--rotations",
                "2", "--repeats", "1", "--nve-steps", "2", "--data", DATA_ROOT]  # fmt: skip
        assert main(argv) == 0
        output = capsys.readouterr().out
        assert f"the first {frames} test_01 frames" in output
        (row,) = [line.split() for line in output.splitlines() if line.startswith("ponita-n4 ")]
        rows[frames] = [float(value) for value in row[2:8]]
    assert rows["3"][1] >= rows["1"][1] and rows["3"][4] >= rows["1"][4]  # |ΔE| max, torque
    assert rows["3"] != rows["1"]


@pytest.mark.skipif(not HAVE_ASPIRIN, reason="rMD17 data not found (set EQFF_DATA)")
def test_model_files_run_on_other_grids(tmp_path, capsys):
    """--orientations with --models runs the file's weights on each grid: N = 4 gives the file's own
    row, a finer grid a smaller rotation error, and PNITA's grid is refused in one line."""
    torch.manual_seed(0)
    path = tmp_path / "ponita-n4.eqff"
    save_model(path, build_model("ponita", {"elements": [1, 6, 8], "num_orientations": 4}))
    common = ["--system", "ethanol", "--rotations", "2", "--repeats", "1", "--nve-steps", "2", "--data", DATA_ROOT]

    def rows(*orientations: str) -> dict[int, list[float]]:
        assert main(["equivariance", "--models", str(path), *orientations, *common]) == 0
        lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("ponita-n4 ")]
        return {int(row[1]): [float(value) for value in row[2:8]] for row in lines}

    own = rows()
    regridded = rows("--orientations", "4", "32")
    assert sorted(regridded) == [4, 32] and regridded[4] == own[4]
    assert regridded[32][1] < regridded[4][1] and regridded[32][4] < regridded[4][4]  # |ΔE| max, torque
    with pytest.raises(SystemExit, match="0 orientations"):
        rows("--orientations", "0")
