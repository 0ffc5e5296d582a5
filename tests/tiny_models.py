"""Small random-weight sizes of every architecture, for tests that run each one in seconds.

Every registered architecture has an entry (``test_every_architecture_has_a_tiny_size``), so a
new model is picked up by the tests that loop over architectures (compilation, metatomic).
"""

TINY: dict[str, dict] = {
    "painn": {"num_features": 16, "num_interactions": 2, "num_radial": 8},
    "gemnet-t": {"num_blocks": 1, "emb_size_atom": 16, "emb_size_edge": 16, "emb_size_trip": 8, "emb_size_rbf": 4,
                 "emb_size_cbf": 4, "emb_size_bil_trip": 8, "num_radial": 4, "num_spherical": 4},
    "segnn": {"num_features": 16, "l_max": 2, "l_max_attr": 2, "num_layers": 1, "num_radial": 4},
    "ponita": {"num_features": 16, "num_layers": 2, "basis_dim": 16, "degree": 3, "num_orientations": 12},
    "schnet": {"num_features": 16, "num_interactions": 2, "num_radial": 8},
    "egnn": {"num_features": 16, "num_layers": 2, "num_radial": 8},
    "tfn": {"num_channels": 4, "l_max": 2, "num_layers": 2, "num_radial": 4, "radial_hidden": 8},
    "dimenet++": {"hidden_channels": 16, "num_blocks": 2, "int_emb_size": 8, "basis_emb_size": 4, "out_emb_channels": 16,
                  "num_spherical": 4, "num_radial": 4, "num_output_layers": 1},
    "committee": {"member_architecture": "painn", "member_hyperparameters": {"num_features": 8, "num_interactions": 1,
                  "num_radial": 4}, "size": 2},
}  # fmt: skip
"""Architecture name → hyperparameters (besides ``elements`` and ``cutoff``) of a tiny model."""
