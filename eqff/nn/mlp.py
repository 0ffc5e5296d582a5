"""Small multilayer perceptrons."""

from torch import nn


def mlp(sizes: list[int], activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them (none after the last).

    Shapes: (..., sizes[0]) → (..., sizes[-1]).
    """
    layers: list[nn.Module] = []
    for k, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k > 0:
            layers.append(activation())
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)
