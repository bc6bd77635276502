"""The notebook's graph and staleness rules, on plain data."""

from __future__ import annotations

import pytest

from core.notebook.graph import CycleError, ancestors, descendants, topological_order, would_cycle
from core.notebook.staleness import BLOCKED, RUNNING, WAITING, NodeFacts, ResultFacts, StepFacts, judge

CHAIN = {1: [], 2: [1], 3: [2]}


def test_a_reference_that_closes_a_loop_is_a_cycle() -> None:
    assert would_cycle(CHAIN, 1, 3)  # 1 would use 3, which uses 2, which uses 1
    assert would_cycle(CHAIN, 1, 2)
    assert would_cycle(CHAIN, 2, 2)  # a node using itself
    assert not would_cycle(CHAIN, 3, 1)  # a second path down is no loop
    assert not would_cycle({1: [], 2: [], 3: [1]}, 1, 2)


def test_ancestors_and_descendants_follow_every_step() -> None:
    diamond = {1: [], 2: [1], 3: [1], 4: [2, 3]}
    assert ancestors(diamond, 4) == {1, 2, 3}
    assert descendants(diamond, 1) == {2, 3, 4}
    assert descendants(diamond, 4) == set()


def test_topological_order_puts_inputs_first_and_keeps_the_given_order_otherwise() -> None:
    uses = {5: [7], 6: [], 7: [6], 8: []}
    assert topological_order(uses, [5, 6, 7, 8]) == [6, 8, 7, 5]
    assert topological_order(uses, [8, 7, 6, 5]) == [8, 6, 7, 5]
    assert topological_order({2: [1], 3: [2]}, [3, 2]) == [2, 3]  # an input outside the set is ignored
    with pytest.raises(CycleError):
        topological_order({1: [2], 2: [1]}, [1, 2])


def node(node_id: int, *inputs: int, result: str | None = None, prompt: str = "p") -> NodeFacts:
    return NodeFacts(node_id, prompt, "m", "1:1", (), inputs, result)


def made(prompt: str = "p", **used: str) -> ResultFacts:
    """A result's job; `used` maps "n<id>" to the job of input <id>'s result it took."""
    inputs = {int(k[1:]): v for k, v in used.items()}
    return ResultFacts(prompt, "m", "1:1", tuple(f"/media/{v}.png" for v in inputs.values()), inputs)


def labels(nodes: list[NodeFacts], results: dict[str, ResultFacts], plan: dict | None = None) -> dict[int, str]:
    return {n: v.label for n, v in judge({n.id: n for n in nodes}, results, plan or {}).items()}


def test_never_run_nodes_are_stale_and_their_users_wait() -> None:
    assert labels([node(1), node(2, 1), node(3, 2)], {}) == {
        1: "Stale: never run",
        2: "Waiting for #1",
        3: "Waiting for #2",
    }


def test_a_fresh_chain_is_up_to_date() -> None:
    results = {"j1": made(), "j2": made(n1="j1"), "j3": made(n2="j2")}
    verdicts = judge(
        {n.id: n for n in [node(1, result="j1"), node(2, 1, result="j2"), node(3, 2, result="j3")]}, results, {}
    )
    assert {n: (v.stale, v.label) for n, v in verdicts.items()} == {1: (False, ""), 2: (False, ""), 3: (False, "")}


def test_a_new_result_upstream_makes_everything_below_stale() -> None:
    results = {"j1": made(), "j1b": made(), "j2": made(n1="j1"), "j3": made(n2="j2")}
    chain = [node(1, result="j1b"), node(2, 1, result="j2"), node(3, 2, result="j3")]
    assert labels(chain, results) == {1: "", 2: "Stale: #1 has a new result", 3: "Stale: #2 is stale"}


def test_changed_settings_and_inputs_make_a_node_stale() -> None:
    results = {"j1": made(), "j2": made(n1="j1")}
    assert labels([node(1, result="j1", prompt="new")], results)[1] == "Stale: prompt changed"
    model = NodeFacts(1, "p", "other", "1:1", (), (), "j1")
    assert labels([model], results)[1] == "Stale: model changed"
    ratio = NodeFacts(1, "p", "m", "16:9", (), (), "j1")
    assert labels([ratio], results)[1] == "Stale: aspect ratio changed"
    upload = NodeFacts(2, "p", "m", "1:1", ("/media/up.png",), (1,), "j2")
    assert labels([node(1, result="j1"), upload], results)[2] == "Stale: inputs changed"
    assert labels([node(1, result="j1"), node(2, result="j2")], results)[2] == "Stale: inputs changed"


def test_a_deleted_input_is_a_visible_broken_input() -> None:
    verdict = judge({2: node(2, 9, result="j2")}, {"j2": made(n9="j0")}, {})[2]
    assert verdict.stale and verdict.label == "Stale: input #9 was deleted"


def test_plan_steps_say_what_a_node_waits_for_and_why_it_did_not_run() -> None:
    chain = [node(1), node(2, 1), node(3, 2)]
    plan = {1: StepFacts(RUNNING), 2: StepFacts(WAITING), 3: StepFacts(WAITING)}
    assert labels(chain, {}, plan) == {1: "Running", 2: "Waiting for #1", 3: "Waiting for #2"}
    failed = {2: StepFacts(BLOCKED, "Not run: #1 failed"), 3: StepFacts(BLOCKED, "Not run: #1 failed")}
    assert labels(chain, {}, failed) == {1: "Stale: never run", 2: "Not run: #1 failed", 3: "Not run: #1 failed"}
