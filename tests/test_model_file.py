"""eqff.model_file: round trips, the plain-torch layout, and a clear ModelFileError for every bad file."""

import struct
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

import eqff
from eqff import EqffCalculator
from eqff.cli import main
from eqff.errors import ModelFileError
from eqff.model_file import FORMAT, FORMAT_VERSION, load_model, read_model_file, save_model, weights_digest
from eqff.models import ARCHITECTURES
from eqff.potential import Potential
from eqff.testing import evaluate
from eqff.testing.physics import check_rotation_invariance
from tiny_models import TINY


@pytest.fixture
def saved(tmp_path, painn_model) -> Path:
    """The painn_model fixture saved (float32) with some metadata."""
    return save_model(tmp_path / "model.eqff", painn_model, metadata={"training_data": "unit test"})


def rewrite(path: Path, change) -> Path:
    """Load the raw dict of a model file, apply ``change(content)`` and save it back."""
    content = torch.load(path, weights_only=True)
    change(content)
    torch.save(content, path)
    return path


class TestRoundTrip:
    def test_same_energies(self, tmp_path, painn_model, molecule, periodic_atoms, dtype):
        model = painn_model.to(dtype)
        path = save_model(tmp_path / "m.eqff", model)
        loaded, content = load_model(path)
        assert content["dtype"] == str(dtype).removeprefix("torch.")
        assert next(loaded.parameters()).dtype == dtype
        assert not loaded.training
        for atoms in (molecule, periodic_atoms):
            before = evaluate(model, atoms, dtype, compute_stress=bool(atoms.pbc.all()))
            after = evaluate(loaded, atoms, dtype, compute_stress=bool(atoms.pbc.all()))
            for key, value in before.items():
                assert torch.equal(after[key], value), key

    def test_potential_without_a_dtype_keeps_the_files(self, tmp_path, painn_model, dtype):
        path = save_model(tmp_path / "m.eqff", painn_model.to(dtype))
        potential = Potential(path, dtype=None)
        assert potential.dtype == dtype
        assert next(potential.model.parameters()).dtype == dtype

    def test_state_and_hyperparameters_are_identical(self, saved, painn_model):
        loaded, content = load_model(saved)
        assert type(loaded) is type(painn_model)
        assert loaded.hyperparameters == painn_model.hyperparameters
        reference = painn_model.state_dict()
        assert loaded.state_dict().keys() == reference.keys()
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, reference[name]), name
        assert float(loaded.scale_shift.scale) == pytest.approx(1.7)  # the fixture's non-trivial statistics
        assert torch.equal(loaded.scale_shift.offsets, painn_model.scale_shift.offsets)

    def test_load_in_another_dtype(self, saved):
        loaded, content = load_model(saved, dtype=torch.float64)
        assert content["dtype"] == "float32"
        assert all(p.dtype == torch.float64 for p in loaded.parameters())

    def test_float64_weights_load_without_rounding(self, painn_model, tmp_path):
        model = painn_model.double()
        with torch.no_grad():
            model.embedding.weight.add_(1e-12)  # not representable in float32
        loaded, content = load_model(save_model(tmp_path / "float64.eqff", model))
        assert content["dtype"] == "float64"
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, model.state_dict()[name]), name

    @pytest.mark.parametrize("architecture, hyperparameters", [("segnn", TINY["segnn"]), ("tfn", {})])
    def test_float32_e3nn_model_loads_exactly_equivariant_in_float64(
        self, architecture, hyperparameters, molecule, tmp_path
    ):
        """A model built and saved in float32 holds float32-rounded Clebsch–Gordan coefficients;
        loaded in float64 it must be invariant to float64 precision, as cast in place it is not
        (TFN at its default size: the tiny one's rounding error stays below the tolerance)."""
        torch.manual_seed(0)
        model = ARCHITECTURES[architecture](elements=[1, 6, 7, 8], cutoff=3.0, **hyperparameters)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(3.0)  # larger activations, as trained weights have: the rounding shows
        loaded, _ = load_model(save_model(tmp_path / "float32.eqff", model), dtype=torch.float64)
        check_rotation_invariance(loaded, molecule)
        with pytest.raises(AssertionError, match="rotation"):
            check_rotation_invariance(model.double(), molecule)

    def test_plain_torch_load_with_weights_only(self, saved, painn_model):
        content = torch.load(saved, weights_only=True)
        assert content["format"] == FORMAT and content["format_version"] == FORMAT_VERSION
        assert content["architecture"] == "painn"
        assert content["hyperparameters"]["elements"] == [1, 6, 7, 8]
        assert content["hyperparameters"]["cutoff"] == painn_model.cutoff
        assert content["units"] == {"energy": "eV", "length": "Å"}
        assert all(isinstance(v, torch.Tensor) for v in content["state_dict"].values())

    def test_metadata(self, saved):
        _, content = load_model(saved)
        metadata = content["metadata"]
        assert metadata["eqff_version"] == eqff.__version__
        created = datetime.fromisoformat(metadata["created"])
        assert created.tzinfo is not None
        assert created <= datetime.now(timezone.utc) + timedelta(seconds=1)
        assert metadata["training_data"] == "unit test"

    def test_atomic_write_leaves_no_temporary_file(self, saved):
        assert sorted(p.name for p in saved.parent.iterdir()) == ["model.eqff"]

    def test_overwrite(self, saved, make_painn, molecule):
        other = make_painn(seed=1)
        save_model(saved, other)
        loaded, _ = load_model(saved)
        assert torch.equal(evaluate(loaded, molecule)["energy"], evaluate(other, molecule)["energy"])

    def test_unregistered_model_class_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="not a registered eqff architecture"):
            save_model(tmp_path / "x.eqff", torch.nn.Linear(2, 2))


class TestCalculatorFromFile:
    @pytest.mark.parametrize("as_type", [str, Path])
    def test_path(self, saved, painn_model, molecule, as_type):
        molecule.calc = EqffCalculator(as_type(saved), dtype="float64")
        expected = evaluate(painn_model, molecule, torch.float64)
        assert molecule.get_potential_energy() == pytest.approx(float(expected["energy"]), abs=1e-10)
        assert molecule.calc.potential.metadata["eqff_version"] == eqff.__version__

    def test_missing_path(self, tmp_path):
        with pytest.raises(ModelFileError, match="no model file"):
            EqffCalculator(tmp_path / "absent.eqff")


@pytest.mark.parametrize("command", [
    ["md", "--steps", "1", "--model"],
    ["bench", "--repeats", "1", "--model"],
    ["evaluate", "--dataset", "rmd17", "--molecule", "ethanol"],
    ["equivariance", "--system", "ethanol", "--models"],
    ["report"],
])  # fmt: skip
def test_every_command_names_a_missing_model_file_in_one_line(tmp_path, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, str(tmp_path / "absent.eqff")])
    message = str(exit_info.value.code)
    assert message.startswith("error: no model file") and "absent.eqff" in message
    assert "\n" not in message


class TestBadFiles:
    def test_missing_path(self, tmp_path):
        with pytest.raises(ModelFileError, match="absent.eqff"):
            load_model(tmp_path / "absent.eqff")

    def test_directory(self, tmp_path):
        with pytest.raises(ModelFileError):
            load_model(tmp_path)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_random_bytes(self, tmp_path, seed):
        path = tmp_path / "random.eqff"
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(path)

    @pytest.mark.parametrize("seed", [17, 54, 62], ids=["IndexError", "UnicodeDecodeError", "KeyError"])
    def test_random_bytes_that_escape_as_other_exceptions(self, tmp_path, seed):
        path = tmp_path / "random.eqff"
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(ModelFileError):
            load_model(path)

    def test_flipped_byte_in_the_weights(self, saved):
        with zipfile.ZipFile(saved) as archive:
            tensors = [info for info in archive.infolist() if "/data/" in info.filename]  # raw tensor bytes
            record = max(tensors, key=lambda info: info.file_size)
        data = bytearray(saved.read_bytes())
        # Local file header: 30 bytes, then the name and extra field, whose lengths sit at 26 and 28.
        start = record.header_offset
        name_length, extra_length = struct.unpack("<HH", data[start + 26 : start + 30])
        data[start + 30 + name_length + extra_length + record.file_size // 2] ^= 0x40
        saved.write_bytes(bytes(data))
        with pytest.raises(ModelFileError):
            load_model(saved)

    def test_empty_file(self, tmp_path):
        path = tmp_path / "empty.eqff"
        path.write_bytes(b"")
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(path)

    def test_truncated(self, saved):
        data = saved.read_bytes()
        saved.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(saved)

    @pytest.mark.parametrize(
        "content",
        [{"weights": torch.zeros(3)}, torch.zeros(3), [1, 2, 3], {"format": "other-format"}],
        ids=["dict", "tensor", "list", "other-format"],
    )
    def test_not_an_eqff_file(self, tmp_path, content):
        path = tmp_path / "other.pt"
        torch.save(content, path)
        with pytest.raises(ModelFileError, match="not an eqff model file"):
            load_model(path)

    def test_pickled_class_is_refused(self, tmp_path, painn_model):
        """A whole pickled module (``torch.save(model)``) must not be unpickled."""
        path = tmp_path / "pickled.pt"
        torch.save(painn_model, path)
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(path)

    def test_future_format_version(self, saved):
        rewrite(saved, lambda c: c.update(format_version=FORMAT_VERSION + 1))
        with pytest.raises(ModelFileError, match=f"version {FORMAT_VERSION + 1} is not supported.*upgrade eqff"):
            load_model(saved)

    def test_missing_entry(self, saved):
        rewrite(saved, lambda c: c.pop("state_dict"))
        with pytest.raises(ModelFileError, match="lacks.*state_dict"):
            load_model(saved)

    def test_unknown_architecture(self, saved):
        rewrite(saved, lambda c: c.update(architecture="gemnet-xl"))
        with pytest.raises(ModelFileError, match="unknown architecture 'gemnet-xl'.*painn"):
            load_model(saved)

    def test_state_dict_with_wrong_shapes(self, saved):
        rewrite(saved, lambda c: c["hyperparameters"].update(num_features=8))
        with pytest.raises(ModelFileError, match="weights do not fit"):
            load_model(saved)

    def test_state_dict_with_missing_weights(self, saved):
        def drop_a_weight(content):
            content["state_dict"].pop(next(iter(content["state_dict"])))
            content["weights_sha256"] = weights_digest(content["state_dict"])

        rewrite(saved, drop_a_weight)
        with pytest.raises(ModelFileError, match="weights do not fit"):
            load_model(saved)

    def test_changed_weights_fail_the_checksum(self, saved):
        rewrite(saved, lambda c: c["state_dict"][next(iter(c["state_dict"]))].add_(1e-3))
        with pytest.raises(ModelFileError, match="checksum"):
            load_model(saved)

    def test_unknown_hyperparameter(self, saved):
        rewrite(saved, lambda c: c["hyperparameters"].update(num_heads=4))
        with pytest.raises(ModelFileError, match="num_heads"):
            load_model(saved)

    def test_read_model_file_checks_too(self, saved):
        rewrite(saved, lambda c: c.update(format_version=0))
        with pytest.raises(ModelFileError):
            read_model_file(saved)

    def test_bad_dtype_entry(self, saved):
        rewrite(saved, lambda c: c.update(dtype="float16x"))
        with pytest.raises(ModelFileError, match="dtype"):
            load_model(saved)

    def test_state_dict_not_a_dict(self, saved):
        rewrite(saved, lambda c: c.update(state_dict=torch.zeros(3)))
        with pytest.raises(ModelFileError):
            load_model(saved)


def test_md_names_an_unknown_element_before_any_progress_bar(tmp_path, capsys):
    structure = tmp_path / "hs.xyz"
    structure.write_text("2\n\nS 0 0 0\nH 1.34 0 0\n")
    with pytest.raises(SystemExit, match=r"^error: elements S \(16\) are not among those this model was trained on"):
        main(["md", "--structure", str(structure), "--steps", "5"])
    assert "steps" not in capsys.readouterr().err  # no progress bar was started


def test_md_names_an_unreadable_structure(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: cannot read the structure .*absent.xyz"):
        main(["md", "--structure", str(tmp_path / "absent.xyz"), "--steps", "5"])


def test_md_runs_a_water_box_by_name_without_data(monkeypatch, capsys):
    monkeypatch.delenv("EQFF_DATA", raising=False)
    assert main(["md", "--structure", "water-192", "--steps", "2", "--interval", "1"]) == 0
    assert "H128O64 (192 atoms)" in capsys.readouterr().out


def test_every_architecture_has_a_tiny_size():
    """tests/tiny_models.py sizes every registered architecture, so tests looping over it see them all."""
    assert set(TINY) == set(ARCHITECTURES)
