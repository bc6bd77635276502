"""Batches and seeds: `Images` jobs per Generate, the first result current; each job's seed."""

from __future__ import annotations

import pytest

from core.contract import NodeKind
from core.errors import InvalidInput
from core.root import Core


def test_one_generate_makes_a_batch_with_random_seeds_and_the_first_result_is_current(
    core: Core, project_id: int
) -> None:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="three owls", batch_size=3)
    first, second, third = core.jobs.create_batch(node.id, "click1")
    assert first.client_request_id == "click1" and second.client_request_id == "click1-1"
    assert len({first.seed, second.seed, third.seed}) == 3 and all(j.seed.isdigit() for j in (first, second))
    assert [j.id for j in core.jobs.create_batch(node.id, "click1")] == [first.id, second.id, third.id]  # resent

    assert core.jobs.complete(second.id, "/media/second.png")  # the first to finish is current
    assert core.jobs.complete(first.id, "/media/first.png")
    assert core.jobs.complete(third.id, "/media/third.png")
    shown = next(n for n in core.canvas.snapshot(project_id).nodes if n.id == node.id)
    assert shown.image_url == "/media/second.png"
    assert sorted(e.url for e in shown.history) == ["/media/first.png", "/media/second.png", "/media/third.png"]

    (later,) = core.jobs.create_batch(node.id, "click2") if core.canvas.update_node(node.id, batch_size=1) else []
    assert core.jobs.complete(later.id, "/media/later.png")  # a later Generate takes over as before
    assert next(n for n in core.canvas.snapshot(project_id).nodes if n.id == node.id).image_url == "/media/later.png"


def test_a_typed_seed_is_used_and_checked(core: Core, project_id: int) -> None:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a seeded owl", seed=" 42 ")
    (job,) = core.jobs.create_batch(node.id)
    assert job.seed == "42"
    for bad in ("forty", "-1", str(2**31)):
        with pytest.raises(InvalidInput, match="whole number"):
            core.canvas.update_node(node.id, seed=bad)
    with pytest.raises(InvalidInput, match="1 to 4"):
        core.canvas.update_node(node.id, batch_size=5)
    core.canvas.update_node(node.id, model="google/nano-banana", seed="")
    with pytest.raises(InvalidInput, match="takes no seed"):
        core.canvas.update_node(node.id, seed="7")
