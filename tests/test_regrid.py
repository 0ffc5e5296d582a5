"""``eqff regrid``: a PONITA model file on another sphere grid, the same weights, a smaller rotation
error on a finer grid, and one error line for what has no grid."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from eqff.cli import main
from eqff.commands.equivariance import equivariance_errors
from eqff.model_file import load_model, read_model_file, save_model
from eqff.models import build_model
from eqff.rotations import random_rotations


@pytest.fixture
def ponita_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "ponita-n4.eqff"
    save_model(path, build_model("ponita", {"elements": [1, 6, 8], "num_orientations": 4}), {"note": "kept"})
    return path


def largest_energy_change_under_rotation(path) -> float:
    """meV: the largest change of ethanol's float64 energy over 5 random rotations."""
    rotations = random_rotations(5, seed=0).numpy()
    return equivariance_errors(load_model(path)[0], molecule("CH3CH2OH"), rotations)["energy_max_meV"]


def test_regrid_keeps_every_weight_and_records_its_source(ponita_file, tmp_path, capsys):
    output = tmp_path / "ponita-n64.eqff"
    assert main(["regrid", str(ponita_file), str(output), "--orientations", "64"]) == 0
    assert "on 64 orientations (from 4)" in capsys.readouterr().out
    source, moved = read_model_file(ponita_file), read_model_file(output)
    assert moved["hyperparameters"] == {**source["hyperparameters"], "num_orientations": 64}
    assert moved["metadata"]["note"] == "kept"
    assert moved["metadata"]["regridded_from"] == {
        "model": str(ponita_file), "weights_sha256": source["weights_sha256"], "num_orientations": 4,
    }
    for name, weight in source["state_dict"].items():
        if name != "orientations":
            assert torch.equal(moved["state_dict"][name], weight), name
    assert load_model(output)[0].orientations.shape == (64, 3)
    assert largest_energy_change_under_rotation(output) < 0.1 * largest_energy_change_under_rotation(ponita_file)


def test_regrid_refuses_a_model_without_a_sphere_grid_and_a_grid_of_no_points(ponita_file, tmp_path):
    torch.manual_seed(0)
    painn = save_model(tmp_path / "painn.eqff", build_model("painn", {"elements": [1, 6, 8]}))
    with pytest.raises(SystemExit, match="^error: .* is a painn model; only PONITA has a sphere grid"):
        main(["regrid", str(painn), str(tmp_path / "out.eqff"), "--orientations", "64"])
    with pytest.raises(SystemExit, match="^error: --orientations must be positive, got 0"):
        main(["regrid", str(ponita_file), str(tmp_path / "out.eqff"), "--orientations", "0"])
    assert not (tmp_path / "out.eqff").exists()


def test_on_grid_copies_the_model_in_its_dtype_and_mode():
    torch.manual_seed(0)
    model = build_model("ponita", {"elements": [1, 6, 8], "num_orientations": 4}).double().eval()
    moved = model.on_grid(8)
    assert moved.orientations.shape == (8, 3) and not moved.training
    assert next(moved.parameters()).dtype == torch.float64
    np.testing.assert_array_equal(moved.embedding.weight.detach(), model.embedding.weight.detach())
