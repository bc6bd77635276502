"""Who may act on what: `Access.may_act`, the one check every tab action passes."""

from __future__ import annotations

import pytest

from core.contract import NodeKind
from core.errors import NotFound
from core.root import Core


async def test_an_action_must_name_a_node_or_job_of_the_users_own_project(core: Core) -> None:
    alice = core.accounts.local_user()
    bob, _ = core.accounts.sign_up("bob@example.com", "correct horse battery")
    mine, other = (core.canvas.create_project(alice.id, n) for n in ("mine", "also mine"))
    theirs = core.canvas.create_project(bob.id, "theirs")
    node = core.canvas.add_node(mine.id, NodeKind.TEXT_TO_IMAGE)
    their_node = core.canvas.add_node(theirs.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a lighthouse")
    job = core.jobs.create(node.id)

    core.access.may_act(alice.id, mine.id)
    core.access.may_act(alice.id, mine.id, node_id=node.id)
    core.access.may_act(alice.id, mine.id, job_id=job.id)
    refused = [
        {"project_id": theirs.id},  # someone else's project
        {"project_id": other.id, "node_id": node.id},  # a node of another project of hers
        {"project_id": other.id, "job_id": job.id},
        {"project_id": mine.id, "node_id": their_node.id},  # someone else's node
        {"project_id": mine.id, "node_id": node.id, "image_url": "/media/" + "0" * 64 + ".png"},  # not granted
    ]
    for arguments in refused:
        with pytest.raises(NotFound):
            core.access.may_act(alice.id, **arguments)
