"""Every shipped potential: a model file that loads without unpickling code, its split file, a
card whose figures agree with the model file's metadata and with the README's table, and its
own energy and forces on a fixed frame (golden values, ``tests/golden.py``)."""

import json
from pathlib import Path

import pytest
import torch

from eqff import EqffCalculator
from eqff.model_file import SHIPPED_POTENTIALS_DIR, load_model, read_model_file, shipped_potentials
from eqff.testing.physics import check_forces_match_finite_differences, check_rotation_invariance
from eqff.train.splits import read_split
from golden import GOLDEN_FILE, RELATIVE_TOLERANCE, differences, example_structure, golden_values

README = Path(__file__).resolve().parent.parent / "README.md"
POTENTIALS = shipped_potentials()


def test_potentials_are_shipped():
    assert "painn-aspirin" in POTENTIALS and len(POTENTIALS) >= 2


@pytest.mark.parametrize("name", POTENTIALS)
def test_model_file_loads_with_weights_only(name):
    path = SHIPPED_POTENTIALS_DIR / f"{name}.eqff"
    content = torch.load(path, map_location="cpu", weights_only=True)
    model, checked = load_model(path)
    assert checked["architecture"] == content["architecture"] and model.elements


EXACTLY_INVARIANT = [
    name for name in POTENTIALS if read_model_file(SHIPPED_POTENTIALS_DIR / f"{name}.eqff")["architecture"] != "ponita"
]
"""The shipped potentials whose energy is invariant to float round-off (PONITA's only up to its sphere grid)."""


@pytest.mark.parametrize("name", EXACTLY_INVARIANT)
def test_trained_weights_pass_the_physics_checks_in_float64(name):
    """Invariance to 1e-10 relative and forces against finite differences, with the trained weights."""
    model, _ = load_model(SHIPPED_POTENTIALS_DIR / f"{name}.eqff", torch.float64)
    atoms = example_structure(name)
    check_rotation_invariance(model, atoms)
    check_forces_match_finite_differences(model, atoms)


@pytest.mark.parametrize("name", POTENTIALS)
def test_split_file_is_the_one_the_model_was_trained_on(name):
    metadata = load_model(SHIPPED_POTENTIALS_DIR / f"{name}.eqff")[1]["metadata"]
    sources = read_split(SHIPPED_POTENTIALS_DIR / f"{name}.split.json")
    assert [source["data"] for source in sources] == metadata["config"]["data"]
    assert [len(source["train"]) for source in sources] == [data["num_train"] for data in metadata["config"]["data"]]


@pytest.mark.parametrize("name", POTENTIALS)
def test_card_gives_the_evaluate_command_its_table_and_the_validation_error(name):
    metadata = load_model(SHIPPED_POTENTIALS_DIR / f"{name}.eqff")[1]["metadata"]
    molecules = [data["molecule"] for data in metadata["config"]["data"]]  # rMD17 molecules
    card = (SHIPPED_POTENTIALS_DIR / f"{name}.md").read_text()
    if len(molecules) == 1:
        assert f"eqff evaluate {name} --dataset rmd17 --molecule {molecules[0]} --split 1 --part test" in card
    else:
        assert f"eqff evaluate {name} --split-file potentials/{name}.split.json --part test" in card
    test_sets = "; ".join(f"rMD17 {molecule} test_01" for molecule in molecules)
    assert f"eqff evaluate: model {name} on {test_sets}, {1000 * len(molecules)} frames" in card
    assert f"{metadata['validation_forces_mae_meV_per_A']:.2f} meV/Å" in card


@pytest.mark.parametrize("name", POTENTIALS)
def test_readme_row_rounds_the_cards_force_error(name, card_test_maes):
    _, forces_mae = card_test_maes(SHIPPED_POTENTIALS_DIR / f"{name}.md")
    [row] = [line for line in README.read_text().splitlines() if line.startswith(f"| `{name}`")]
    assert f"{forces_mae:.1f} meV/Å" in row


GOLDEN = json.loads(GOLDEN_FILE.read_text())


def test_every_shipped_potential_has_golden_values():
    assert sorted(GOLDEN) == POTENTIALS


@pytest.mark.parametrize("name", POTENTIALS)
def test_shipped_potential_reproduces_its_golden_values(name):
    computed = golden_values(EqffCalculator(name, dtype="float64"), example_structure(name))
    energy, forces = differences(computed, GOLDEN[name])
    assert energy < RELATIVE_TOLERANCE and forces < RELATIVE_TOLERANCE


def swap_first_two_input_columns(model: torch.nn.Module) -> str:
    """Swap the first two input columns of the model's first matrix weight whose two columns differ
    (as swapping the centre and neighbour blocks of an embedding would); return its name."""
    for name, parameter in model.named_parameters():
        if parameter.ndim == 2 and parameter.shape[1] >= 2 and not torch.equal(parameter[:, 0], parameter[:, 1]):
            with torch.no_grad():
                parameter[:, [0, 1]] = parameter[:, [1, 0]]
            return name
    raise AssertionError("no matrix weight with two different columns")


@pytest.mark.parametrize("name", POTENTIALS)
def test_golden_values_catch_two_swapped_weight_blocks(name):
    model, _ = load_model(SHIPPED_POTENTIALS_DIR / f"{name}.eqff", torch.float64)
    swapped = swap_first_two_input_columns(model)
    computed = golden_values(EqffCalculator(model, dtype="float64"), example_structure(name))
    assert max(differences(computed, GOLDEN[name])) > 100 * RELATIVE_TOLERANCE, swapped
