"""The taxonomy of the architectures: every registered one has an entry, with answers from the lecture's lists."""

from eqff.models import ARCHITECTURES
from eqff.models.taxonomy import FEATURE_SPACES, MESSAGE_KINDS, TAXONOMY, taxonomy_order


def test_every_architecture_but_the_committee_wrapper_has_a_taxonomy():
    assert set(TAXONOMY) == set(ARCHITECTURES) - {"committee"}
    for entry in TAXONOMY.values():
        assert entry.message in MESSAGE_KINDS and entry.features in FEATURE_SPACES and entry.adds


def test_the_lectures_table_and_the_order_of_the_two_questions():
    lecture = {"schnet": ("linear", "R³"), "egnn": ("non-linear", "R³"), "dimenet++": ("non-linear", "R³×S²"),
               "tfn": ("linear", "steerable SE(3)")}  # fmt: skip
    assert {name: (TAXONOMY[name].message, TAXONOMY[name].features) for name in lecture} == lecture
    assert sorted(TAXONOMY, key=taxonomy_order) == [
        "schnet", "ponita", "painn", "tfn", "egnn", "dimenet++", "gemnet-t", "segnn",
    ]  # fmt: skip
