"""Random proper rotations, reproducible from a seed, shared by the symmetry checks, the
equivariance command and the rotation of training frames."""

import torch
from e3nn import o3


def random_rotations(count: int, seed: int) -> torch.Tensor:
    """(count, 3, 3) float64 rotation matrices, uniform over SO(3), from :func:`e3nn.o3.rand_matrix`.

    The global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return o3.rand_matrix(count, dtype=torch.float64)
