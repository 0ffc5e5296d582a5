"""A committee: K models of one architecture whose disagreement says where they cannot be trusted.

Query by committee (Seung, Opper, Sompolinsky, COLT 1992), as Schran, Brezina and Marsalek use it
for neural-network potentials ("Committee neural network potentials control generalization
errors and enable active learning", J. Chem. Phys. 153, 104105, 2020): the prediction is the
members' mean, and the spread of their predictions estimates its error. Where the members were
trained they agree; away from their training frames each extrapolates its own way.

:class:`Committee` is one energy model holding K members (an ``nn.ModuleList``), saved and
loaded as one model file. ``forward`` returns the members' mean ``energy`` (B,) and
``atomic_energies`` (n,) and each member's energy, ``member_energies`` (K, B). Forces stay the
gradient of the energy (:mod:`eqff.nn.forces`): the committee reads positions (n, 3) shared by
all members, or (K, n, 3), one copy per member, which :func:`eqff.nn.forces.energy_forces_stress`
passes so that one backward pass gives every member's forces (K, n, 3) at the cost of the mean
force alone; their mean is the committee's force and their spread its uncertainty
(:func:`eqff.nn.forces.committee_spread`, :data:`eqff.data.keys.FORCES_UNCERTAINTY`).

Where eqff differs from Schran et al., and why:

- The members are trained together, in one run, on the same frames in the same order (the loss
  is the mean of the members' losses, :class:`eqff.train.loss.EnergyForceLoss`), and differ
  only in their random initial weights. Schran et al. also give each member its own random
  subset of the training frames; on the small training sets where a committee matters most that
  would leave each member fewer frames, and for deep ensembles Lakshminarayanan, Pritzel and
  Blundell (NeurIPS 2017) found random initialisation alone better than such subsets.
- The per-element energy offsets and the energy scale are the committee's, one set for all
  members (:class:`~eqff.nn.species.PerElementScaleShift`, fitted to the training frames as for
  any model): they are statistics of the data, the same for every member, and a term that all
  members share adds nothing to their spread. Each member's own scale-shift stays the identity.
- The spread is reported as it is, not rescaled to calibrate it against errors (Musil et al.,
  JCTC 15, 906, 2019, rescale it with a factor fitted on validation frames).

The members run one after another, so a call costs about K times one member's (``eqff bench
--architectures painn committee``: the default committee is four PaiNNs of the size PaiNN is timed
at). Running them as one batched call instead (``torch.func.vmap`` over their stacked weights)
was slower still on a CPU, for small molecules and large.
"""

import torch
from torch import nn

from eqff.data import keys
from eqff.models.energy_model import EnergyModel
from eqff.models.hyperparameters import constructor_arguments
from eqff.nn.forces import graph_for_model
from eqff.nn.species import sum_per_frame


class Committee(EnergyModel):
    """K energy models of one architecture and size, and their mean.

    Args:
        elements: atomic numbers the members know.
        cutoff: the members' radial cutoff, Å.
        member_architecture: the members' registered architecture (``eqff.models.ARCHITECTURES``).
        member_hyperparameters: the members' constructor arguments besides ``elements`` and
            ``cutoff`` (default: the architecture's defaults).
        size: the number of members K, at least 2. Each is initialised from the random state in
            turn, so they start from different weights.

    Attributes:
        num_members: K; a model with this attribute gets one copy of the positions per member
            from :func:`eqff.nn.forces.energy_forces_stress`.
        members: the K members.

    Shapes: graph → ``energy`` (B,) and ``atomic_energies`` (n,), the members' means, float64 eV;
    ``member_energies`` (K, B), float64 eV. ``positions`` may be (n, 3), read by every member, or
    (K, n, 3), member k reading ``positions[k]``.
    """

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        member_architecture: str = "painn",
        member_hyperparameters: dict | None = None,
        size: int = 4,
    ) -> None:
        super().__init__(elements, cutoff)
        self.hyperparameters = constructor_arguments(locals())
        from eqff.models import build_model  # here, not above: eqff.models imports this module

        member_hyperparameters = dict(member_hyperparameters or {})
        given = sorted({"elements", "cutoff"} & member_hyperparameters.keys())
        if given:
            raise ValueError(f"give the committee's {given}, not its member_hyperparameters: the members take them from it")
        if member_architecture == "committee":
            raise ValueError("a committee's members cannot be committees")
        if size < 2:
            raise ValueError(f"a committee needs at least 2 members, got size {size}")
        self.num_members = size
        self.member_architecture = member_architecture
        member_arguments = {**member_hyperparameters, "elements": list(elements), "cutoff": float(cutoff)}
        self.members = nn.ModuleList(build_model(member_architecture, member_arguments) for _ in range(size))

    def prepare_graph(self, graph: dict[str, torch.Tensor], static_shapes: bool = False) -> dict[str, torch.Tensor]:
        """The graph as the members read it (:func:`~eqff.nn.forces.graph_for_model`), derived once
        for all (they share architecture and cutoff)."""
        return graph_for_model(self.members[0], graph, static_shapes)

    def forward(self, graph: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        species = self.species(graph[keys.ATOMIC_NUMBERS])  # (n,)
        positions = graph[keys.POSITIONS]  # (n, 3), or (K, n, 3): one copy per member
        outputs = []
        for k, member in enumerate(self.members):
            member_graph = graph
            if positions.dim() == 3:
                member_graph = graph.copy()
                member_graph[keys.POSITIONS] = positions[k]
            outputs.append(member(member_graph)[keys.ATOMIC_ENERGIES])  # (n,): its scale-shift is the identity
        member_atomic_energies = self.scale_shift(torch.stack(outputs), species)  # (K, n) float64
        num_frames = graph[keys.CELL].shape[0]
        member_energies = sum_per_frame(member_atomic_energies, graph[keys.BATCH], num_frames)  # (K, B)
        return {
            keys.ENERGY: member_energies.mean(dim=0),
            keys.ATOMIC_ENERGIES: member_atomic_energies.mean(dim=0),
            keys.MEMBER_ENERGIES: member_energies,
        }
