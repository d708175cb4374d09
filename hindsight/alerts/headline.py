"""An incident's headline: the simplest set of segment values that carries its drop.

In the spirit of slice finding (Slice Finder, SliceLine): among the failing cells of an
incident — its alerts, their ancestors and their crosses — score each by its *excess errors*
on the incident's days (errors beyond what its reference rate predicts for its rows). The
headline is found top down:

1. the cells that carry at least ``SHARE`` of the largest excess are the candidates; the most
   general of them (fewest segment values; then the larger excess) is the start;
2. a strictly smaller cell inside it replaces it while it carries at least ``SHARE`` of the
   current cell's excess on its own (the seed's case: the aggregate flat, one cell
   collapsing: that cell is named, not its parent).

So a drop spread over the crosses of one value is named by the value, and a drop confined to
one cross by that cross.
"""

from __future__ import annotations

from collections.abc import Sequence

from hindsight.alerts.hierarchy import inside
from hindsight.alerts.model import segment_key

SHARE = 0.8  # "carries most of the excess errors"


def choose(segments: Sequence[dict[str, str]], excess: Sequence[float],
           n: Sequence[float]) -> int:
    """The index of the headline among cells, given each one's excess errors and rows.

    >>> cells = [{"country": "CH"}, {"country": "CH", "tier": "free"},
    ...          {"country": "CH", "tier": "gold"}]
    >>> choose(cells, [100.0, 52.0, 48.0], [400, 200, 200])  # spread: the value
    0
    >>> choose(cells, [100.0, 97.0, 3.0], [400, 200, 200])  # one cross alone: the cross
    1
    """
    if not segments:
        raise ValueError("choose: no cells to choose from")

    def general(i: int) -> tuple[int, float, str]:
        return len(segments[i]), -excess[i], segment_key(segments[i])

    top = max(excess)
    if top <= 0:
        return min(range(len(segments)), key=lambda i: (len(segments[i]), -n[i]))
    current = min((i for i in range(len(segments)) if excess[i] >= SHARE * top), key=general)
    while True:
        inner = [i for i in range(len(segments))
                 if i != current and inside(segments[i], segments[current])
                 and n[i] < n[current] and excess[i] >= SHARE * excess[current]]
        if not inner:
            return current
        current = min(inner, key=general)


def related(members: Sequence[dict[str, str]], cells: Sequence[dict[str, str]]) -> list[int]:
    """Indices of the cells that hold a member or lie inside one.

    >>> related([{"country": "CH", "tier": "free"}],
    ...         [{"country": "CH"}, {"tier": "gold"}, {"country": "CH", "tier": "free"}])
    [0, 2]
    """
    return [j for j, cell in enumerate(cells)
            if any(inside(m, cell) or inside(cell, m) for m in members)]
