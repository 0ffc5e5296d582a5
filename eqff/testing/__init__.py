"""Reusable physics checks for eqff energy models, shared by the test suites of every model.

See :mod:`eqff.testing.physics`. The checks are plain functions that raise ``AssertionError``
with a message saying what broke and by how much; :class:`~eqff.testing.physics.ModelTests`
bundles them as pytest test methods for a model given by a fixture.
"""

from eqff.testing.physics import (
    FLOAT_TOLERANCE,
    ModelTests,
    check_batch_consistency,
    check_cutoff_smoothness,
    check_forces_match_finite_differences,
    check_fragment_additivity,
    check_model_file_round_trip,
    check_pairs_beyond_the_cutoff_change_nothing,
    check_permutation_equivariance,
    check_reflection_invariance,
    check_rotation_invariance,
    check_stress_matches_finite_differences,
    check_supercell_consistency,
    check_translation_invariance,
    evaluate,
)

__all__ = [
    "FLOAT_TOLERANCE",
    "ModelTests",
    "check_batch_consistency",
    "check_cutoff_smoothness",
    "check_forces_match_finite_differences",
    "check_fragment_additivity",
    "check_model_file_round_trip",
    "check_pairs_beyond_the_cutoff_change_nothing",
    "check_permutation_equivariance",
    "check_reflection_invariance",
    "check_rotation_invariance",
    "check_stress_matches_finite_differences",
    "check_supercell_consistency",
    "check_translation_invariance",
    "evaluate",
]
