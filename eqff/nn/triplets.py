"""Two-hop (triplet) indices built from a directed edge list, in pure torch.

Conventions are eqff's (:mod:`eqff.data.keys`): edge ``e`` joins the centre atom
``i = edge_index[0, e]`` to the neighbour ``j = edge_index[1, e]``, an image of ``j`` shifted by
the integer cell multiples ``cell_shifts[e]``; its vector points i → j. In GemNet's and
DimeNet's notation that edge carries the message j → i.

Everything here is integer index arithmetic (sort, counts, cumulative sums,
``repeat_interleave``): no positions are read, so the indices can be built inside ``forward`` or
in a data transform alike, and the functions compile with TorchScript.

Under periodic boundary conditions an atom may neighbour its own images, and several images of
the same atom. An edge is therefore identified by its atoms *and* its cell shift: the reverse of
(i, j, S) is (j, i, −S), and two edges between the same atoms with different shifts are
different edges.

Models that read triplets (GemNet-T, DimeNet++) get them through
:meth:`TripletIndexCache.graph_with_triplets`, called by their ``prepare_graph``: the graph's
triplet indices, built on the whole (Verlet) edge list once per neighbour-list rebuild and, unless
shapes are kept static (:func:`eqff.nn.forces.graph_for_model`), restricted to the pairs within
the cutoff at every call. Finding those pairs is the one step here that reads positions
(without gradients).
"""

import torch
from torch import nn

from eqff.data import keys
from eqff.nn.geometry import within_cutoff


def reverse_edges(edge_index: torch.Tensor, num_atoms: int, cell_shifts: torch.Tensor | None = None) -> torch.Tensor:
    """The index of the reverse of every edge.

    The reverse of edge (i, j) with shift S is the edge (j, i) with shift −S. The edge list must
    be a full neighbour list (every edge has exactly one reverse), as eqff's neighbour lists are.

    Args:
        edge_index: (2, E) int64 centre and neighbour atoms.
        num_atoms: number of atoms n (all indices are below it).
        cell_shifts: (E, 3) integer-valued shifts (any dtype), or ``None`` for isolated structures.

    Returns:
        (E,) int64: ``reverse[e]`` is the edge that runs back along ``e``.

    Raises:
        ValueError: if some edge has no reverse, or the edge keys would overflow int64.
    """
    centre, neighbour = edge_index[0], edge_index[1]
    num_edges = centre.shape[0]
    if num_edges == 0:
        return torch.zeros_like(centre)
    max_key = 2.0**62  # bound on the edge keys below, so that int64 arithmetic cannot overflow
    # Each edge gets the integer key ((i·n + j)·B + s0)·B² + s1·B + s2 of its atoms and shift
    # (components offset to 0..B−1); the reverse edge has the key of (j, i, −S).
    key = centre * num_atoms + neighbour  # (E,)
    reverse_key = neighbour * num_atoms + centre  # (E,)
    if cell_shifts is not None:
        shifts = torch.round(cell_shifts).to(torch.long)  # (E, 3)
        largest = int(shifts.abs().max())
        base = 2 * largest + 1
        if float(num_atoms) ** 2 * float(base) ** 3 > max_key:
            raise ValueError("too many atoms or too large cell shifts to index the edges with int64 keys")
        for k in range(3):
            key = key * base + shifts[:, k] + largest
            reverse_key = reverse_key * base - shifts[:, k] + largest
    elif float(num_atoms) ** 2 > max_key:
        raise ValueError("too many atoms to index the edges with int64 keys")
    # The keys of the edges and of their reverses are the same set in a full neighbour list:
    # the k-th smallest reverse key belongs to the edge whose reverse has the k-th smallest key.
    sorted_keys, by_key = torch.sort(key)  # (E,), (E,)
    sorted_reverse_keys, by_reverse_key = torch.sort(reverse_key)  # (E,), (E,)
    if not bool(torch.equal(sorted_keys, sorted_reverse_keys)):
        raise ValueError("some edges have no reverse edge; a full neighbour list (both directions) is needed")
    reverse = torch.empty_like(centre)
    reverse[by_reverse_key] = by_key
    return reverse


def triplets(
    edge_index: torch.Tensor, num_atoms: int, cell_shifts: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All triplets k → j → i: each edge j → i with every edge k → j that reaches it, k ≠ i.

    In eqff's terms: for every *output* edge e = (i, j), every *input* edge f = (j, k), i.e. an
    edge centred on e's neighbour, except the reverse of e, (j, i) with the opposite shift.
    "k ≠ i" compares edge identity, not atom indices: under periodic boundary conditions k may be
    another image of atom i (then f is kept), and e may join i to its own image.

    Args:
        edge_index: (2, E) int64 centre and neighbour atoms.
        num_atoms: number of atoms n (all indices are below it).
        cell_shifts: (E, 3) integer-valued shifts (any dtype), or ``None`` for isolated structures.

    Returns:
        input_edges: (T,) int64 index of the edge f = k → j of each triplet.
        output_edges: (T,) int64 index of the edge e = j → i of each triplet, in ascending order
        (the triplets of one output edge are contiguous, ordered by input edge index).
    """
    centre, neighbour = edge_index[0], edge_index[1]
    num_edges = centre.shape[0]
    # Edges grouped by centre atom: the edges centred on atom a are by_centre[first[a]:first[a] + count[a]].
    by_centre = torch.sort(centre, stable=True)[1]  # (E,)
    count = torch.bincount(centre, minlength=num_atoms)  # (n,)
    first = torch.cumsum(count, 0) - count  # (n,)
    # Every edge centred on j is a candidate input of each output edge (i, j).
    num_candidates = count.index_select(0, neighbour)  # (E,)
    output_edges = torch.repeat_interleave(torch.arange(num_edges, device=centre.device), num_candidates)  # (T0,)
    start = torch.cumsum(num_candidates, 0) - num_candidates  # (E,) first candidate of each output edge
    rank = torch.arange(output_edges.shape[0], device=centre.device) - start.index_select(0, output_edges)  # (T0,)
    group_start = first.index_select(0, neighbour.index_select(0, output_edges))  # (T0,)
    input_edges = by_centre.index_select(0, group_start + rank)  # (T0,)
    # Drop each output edge's own reverse (k is atom i itself, in the same image).
    is_reverse = neighbour.index_select(0, input_edges) == centre.index_select(0, output_edges)  # (T0,)
    if cell_shifts is not None:
        opposite = cell_shifts.index_select(0, input_edges) == -cell_shifts.index_select(0, output_edges)  # (T0, 3)
        is_reverse = is_reverse & opposite.all(dim=1)
    keep = ~is_reverse
    return input_edges[keep], output_edges[keep]


def triplet_slots(output_edges: torch.Tensor, num_edges: int) -> tuple[torch.Tensor, int]:
    """Where each triplet goes in a zero-padded per-edge layout (E, K, ...), as GemNet's efficient layers use.

    Args:
        output_edges: (T,) int64 output edge of each triplet, in ascending order (as
            :func:`triplets` returns them).
        num_edges: E.

    Returns:
        slot: (T,) int64 position of each triplet among those of its output edge, so that
        ``padded[output_edges, slot] = values`` fills an (E, K, ...) tensor;
        width: K, the largest number of triplets of one output edge (0 without triplets).
    """
    count = torch.bincount(output_edges, minlength=num_edges)  # (E,)
    start = torch.cumsum(count, 0) - count  # (E,)
    slot = torch.arange(output_edges.shape[0], device=output_edges.device) - start.index_select(0, output_edges)  # (T,)
    width = int(count.max()) if num_edges > 0 else 0
    return slot, width


def neighbourhood_slots(centre: torch.Tensor, num_atoms: int) -> torch.Tensor:
    """Where each edge goes in a zero-padded per-atom layout (n, D, ...) of the edges of each atom.

    The edges centred on one atom keep their order in the edge list. In a full neighbour list the
    input edges of the triplets of an output edge (i, j) are the edges of atom j but the reverse
    of (i, j), so a triplet k → j → i is the pair of slots (that of (j, i), that of (j, k)) of
    atom j, and D, the largest number of edges of one atom, is the triplet width K of
    :func:`triplet_slots` plus one (for any non-empty full neighbour list).

    Unlike :func:`triplets` it uses only operations whose output sizes are known from the input
    sizes, so that a compiled forward can build it.

    Args:
        centre: (E,) int64 centre atom of each edge (``edge_index[0]``).
        num_atoms: n.

    Returns:
        (E,) int64 slot of each edge among those of its centre atom, so that
        ``padded[centre, slot] = values`` fills an (n, D, ...) tensor.
    """
    by_centre = torch.sort(centre, stable=True)[1]  # (E,)
    count = torch.zeros(num_atoms, dtype=centre.dtype, device=centre.device).index_add_(
        0, centre, torch.ones_like(centre)
    )  # (n,)
    first = torch.cumsum(count, 0) - count  # (n,)
    first_of_own_atom = first.index_select(0, centre.index_select(0, by_centre))  # (E,) in by_centre order
    rank = torch.arange(centre.shape[0], device=centre.device) - first_of_own_atom  # (E,) in by_centre order
    return torch.empty_like(centre).scatter_(0, by_centre, rank)  # (E,)


def triplet_indices(
    edge_index: torch.Tensor, num_atoms: int, cell_shifts: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Every index GemNet-T builds from the edge list: :func:`triplets`, :func:`triplet_slots` and
    :func:`reverse_edges` in one call (what ``eqff bench`` times as triplet construction).

    Returns:
        input_edges (T,), output_edges (T,), slot (T,), width K, reverse (E,).
    """
    input_edges, output_edges = triplets(edge_index, num_atoms, cell_shifts)
    slot, width = triplet_slots(output_edges, edge_index.shape[1])
    return input_edges, output_edges, slot, width, reverse_edges(edge_index, num_atoms, cell_shifts)


def restrict_triplets(
    input_edges: torch.Tensor, output_edges: torch.Tensor, reverse: torch.Tensor, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """The triplet indices of a subset of the edges, from those of the whole edge list.

    Equal to :func:`triplet_indices` of the kept edges (the same triplets in the same order), in
    a fraction of its time: it only filters and renumbers. This is how the triplets of a Verlet
    list (pairs within cutoff + skin, built once per neighbour-list rebuild) serve every step in
    between, where only the pairs within the cutoff are kept. ``keep`` must keep an edge and its
    reverse together (a cutoff on lengths does).

    Args:
        input_edges, output_edges: (T,) of the whole list, as :func:`triplets` returns them.
        reverse: (E,) of the whole list (:func:`reverse_edges`).
        keep: (E,) bool, the edges kept.

    Returns:
        input_edges (T',), output_edges (T',), slot (T',), width K and reverse (E',), indexing the
        kept edges in their original order.
    """
    new_index = torch.cumsum(keep, 0) - 1  # (E,): position of each kept edge among the kept ones
    kept = keep.index_select(0, input_edges) & keep.index_select(0, output_edges)  # (T,)
    input_edges = new_index.index_select(0, input_edges[kept])  # (T',)
    output_edges = new_index.index_select(0, output_edges[kept])  # (T',) still ascending
    num_kept = int(keep.sum())
    slot, width = triplet_slots(output_edges, num_kept)
    return input_edges, output_edges, slot, width, new_index.index_select(0, reverse[keep])


class TripletIndexCache(nn.Module):
    """:func:`triplet_indices`, kept for the last edge list and reused while it stays the same.

    eqff's calculators pass the same Verlet list, in the same order, from one neighbour-list
    rebuild to the next (:class:`eqff.neighbours.NeighbourListCache`). A call whose ``edge_index``, number of atoms and
    cell shifts equal the last call's returns the last call's indices: an O(E) comparison instead
    of the O(T) construction. Any other call rebuilds them, so the result is always that of
    :func:`triplet_indices`.

    The remembered tensors are plain attributes, copies of the inputs: not part of the state dict
    (nothing of them is saved in a model file) and not buffers (which distributed training would
    broadcast between processes whose batches differ).

    ``num_builds`` counts the calls that built the indices.

    Shapes: as :func:`triplet_indices`.
    """

    def __init__(self) -> None:
        super().__init__()
        empty = torch.zeros(0, dtype=torch.long)
        self.edge_index = torch.zeros(2, 0, dtype=torch.long)
        self.cell_shifts = torch.zeros(0, 3)
        self.has_cell_shifts = False
        self.num_atoms = -1  # no call yet
        self.input_edges, self.output_edges, self.slot, self.reverse = empty, empty, empty, empty
        self.width = 0
        self.num_builds = 0

    def _is_last_call(self, edge_index: torch.Tensor, num_atoms: int, cell_shifts: torch.Tensor | None) -> bool:
        if num_atoms != self.num_atoms or not _same(edge_index, self.edge_index):
            return False
        if cell_shifts is None:
            return not self.has_cell_shifts
        return self.has_cell_shifts and _same(cell_shifts, self.cell_shifts)

    def forward(
        self, edge_index: torch.Tensor, num_atoms: int, cell_shifts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
        if not self._is_last_call(edge_index, num_atoms, cell_shifts):
            self.input_edges, self.output_edges, self.slot, self.width, self.reverse = triplet_indices(
                edge_index, num_atoms, cell_shifts
            )
            self.num_builds += 1
            self.edge_index = edge_index.clone()
            self.num_atoms = num_atoms
            self.has_cell_shifts = cell_shifts is not None
            if cell_shifts is not None:
                self.cell_shifts = cell_shifts.detach().clone()
        return self.input_edges, self.output_edges, self.slot, self.width, self.reverse

    def graph_with_triplets(self, graph: dict[str, torch.Tensor], cutoff: float | None) -> dict[str, torch.Tensor]:
        """A copy of ``graph`` with its triplet indices under the keys ``triplet_input_edges``,
        ``triplet_output_edges``, ``triplet_slots``, ``triplet_width`` and ``reverse_edges``
        (:mod:`eqff.data.keys`), and only its pairs within ``cutoff`` (Å;
        :func:`~eqff.nn.geometry.within_cutoff`) unless ``cutoff`` is ``None``: what the
        ``prepare_graph`` of a triplet model returns.

        The triplets are built on the whole edge list the graph came with, cached (this module's
        ``forward``), and restricted to the pairs within the cutoff at each call
        (:func:`restrict_triplets`): with a Verlet list they are built once per neighbour-list
        rebuild rather than whenever a pair crosses the cutoff, which in a liquid is every MD step.
        """
        cell_shifts: torch.Tensor | None = None
        if keys.CELL_SHIFTS in graph:
            cell_shifts = graph[keys.CELL_SHIFTS]
        num_atoms = graph[keys.ATOMIC_NUMBERS].shape[0]
        input_edges, output_edges, slot, width, reverse = self(graph[keys.EDGE_INDEX], num_atoms, cell_shifts)
        if cutoff is None:
            prepared = dict(graph)
        else:
            prepared, keep = within_cutoff(graph, cutoff)
            if not bool(keep.all()):
                input_edges, output_edges, slot, width, reverse = restrict_triplets(input_edges, output_edges, reverse, keep)
        prepared[keys.TRIPLET_INPUT_EDGES] = input_edges
        prepared[keys.TRIPLET_OUTPUT_EDGES] = output_edges
        prepared[keys.TRIPLET_SLOTS] = slot
        prepared[keys.TRIPLET_WIDTH] = input_edges.new_zeros(width)
        prepared[keys.REVERSE_EDGES] = reverse
        return prepared


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors have the same dtype, device, shape and values."""
    return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape and bool(torch.equal(a, b))
