"""Pure-torch segment sums (no C++ extension)."""

import torch


def scatter_sum(source: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum the rows of ``source`` that share an ``index``.

    Built on ``scatter_add_`` with the index broadcast (a view, no copy) to the shape of
    ``source``: its backward is a gather, so autograd keeps only the (N,) index, where
    ``index_add_`` would also keep ``source`` (a third of the memory of a force call).

    Args:
        source: (N, ...) values.
        index: (N,) int64 target row of each value, in ``[0, dim_size)``.
        dim_size: number of output rows.

    Returns:
        (dim_size, ...) sums, zeros for rows no value points to.
    """
    broadcast_index = index.view([-1] + [1] * (source.dim() - 1)).expand_as(source)
    out = source.new_zeros([dim_size] + list(source.shape[1:]))
    return out.scatter_add_(0, broadcast_index, source)
