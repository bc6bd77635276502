"""The notebook's graph, as plain data: which node uses which (marimo's cell graph).

`uses` maps a node id to the ids of the nodes whose results it takes as inputs. The
functions here know nothing of the database; `core/notebook/staleness.py` and `core/jobs/plan.py`
feed them the project's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

Uses = Mapping[int, Sequence[int]]


def users_of(uses: Uses) -> dict[int, list[int]]:
    """The edges the other way: for each node, the nodes that use it."""
    users: dict[int, list[int]] = {}
    for node, inputs in uses.items():
        for source in inputs:
            users.setdefault(source, []).append(node)
    return users


def ancestors(uses: Uses, node: int) -> set[int]:
    """Every node whose result reaches `node`, through any number of steps."""
    return _reach(uses, node)


def descendants(uses: Uses, node: int) -> set[int]:
    """Every node `node`'s result reaches."""
    return _reach(users_of(uses), node)


def _reach(edges: Uses, start: int) -> set[int]:
    seen: set[int] = set()
    todo = list(edges.get(start, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(edges.get(current, ()))
    return seen


def would_cycle(uses: Uses, node: int, source: int) -> bool:
    """Whether `node` taking `source`'s result as an input closes a loop."""
    return source == node or node in ancestors(uses, source)


def topological_order(uses: Uses, order: Iterable[int]) -> list[int]:
    """The nodes of `order`, every node after the nodes it uses; ties keep `order`'s order.

    Inputs outside `order` are ignored (they are not part of what runs). Raises
    `CycleError` for a loop, which `would_cycle` keeps out of the database.
    """
    rank = {node: i for i, node in enumerate(order)}
    sorter: TopologicalSorter[int] = TopologicalSorter()
    for node in rank:
        sorter.add(node, *(source for source in uses.get(node, ()) if source in rank))
    sorter.prepare()
    ordered: list[int] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=rank.__getitem__)
        ordered.extend(ready)
        sorter.done(*ready)
    return ordered


__all__ = ["CycleError", "ancestors", "descendants", "topological_order", "users_of", "would_cycle"]
