"""Training with two CPU processes (Lightning's DDP over gloo), as on several GPUs or nodes."""

import csv
import subprocess
import sys

import pytest
import yaml

from eqff.model_file import load_model
from eqff.train.config import parse_config
from eqff.train.metrics import evaluate
from eqff.train.run import split_frames
from test_training import needs_rmd17, tiny_config

pytestmark = needs_rmd17


def test_two_processes_train_and_log_the_errors_of_a_single_process_evaluation(tmp_path):
    content = tiny_config(tmp_path, name="ddp", max_epochs=2)
    content["data"]["num_validation"] = 5  # odd: the two processes validate 3 and 2 frames, none twice
    content.update(num_devices=2, strategy="ddp")
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(yaml.safe_dump(content, allow_unicode=True))
    result = subprocess.run(
        [sys.executable, "-m", "eqff.cli", "train", str(config_file), "--no-progress"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Grad strides do not match" not in result.stderr
    model, file = load_model(tmp_path / "ddp" / "ddp.eqff")
    assert file["metadata"]["hardware"]["num_devices"] == 2
    [source], _ = split_frames(parse_config(content), None)
    with open(tmp_path / "ddp" / "metrics.csv") as metrics:
        logged = [float(row["val/forces_mae"]) for row in csv.DictReader(metrics) if row.get("val/forces_mae")]
    best = file["metadata"]["best_epoch"] - 1
    assert logged[best] == pytest.approx(evaluate(model, source.validation)["forces_mae_meV_per_A"], rel=1e-5)
