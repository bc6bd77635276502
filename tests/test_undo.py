"""Undo: a recorded edit taken back in one transaction, seen by every tab as a change."""

from __future__ import annotations

import pytest

from core.contract import NodeKind
from core.errors import InvalidInput, NotFound
from core.root import Core


def _node_with_two_results(core: Core, project_id: int, prompt: str) -> int:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt=prompt)
    for image in ("/media/a.png", "/media/b.png"):
        job = core.jobs.create(node.id)
        assert core.jobs.complete(job.id, image)
    return node.id


def test_undoing_a_delete_brings_the_node_back_with_its_history_jobs_and_users(core: Core, project_id: int) -> None:
    user = core.accounts.local_user().id
    source = _node_with_two_results(core, project_id, "a fox")
    edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
    core.notebook.add_input_node(edit.id, source)
    before = core.canvas.snapshot(project_id)
    seq = before.seq

    step = core.canvas.delete_node(source, by=user)
    gone = core.canvas.snapshot(project_id)
    assert [n.id for n in gone.nodes] == [edit.id] and all(j.node_id == 0 for j in gone.jobs)

    assert core.undo.undo(project_id, user, step) == f"Restored #{source}"
    after = core.canvas.snapshot(project_id)
    restored = next(n for n in after.nodes if n.id == source)
    original = next(n for n in before.nodes if n.id == source)
    assert (restored.prompt, restored.image_url, restored.history) == (
        original.prompt,
        "/media/b.png",
        original.history,
    )
    assert sorted(j.node_id for j in after.jobs) == [source, source]
    edit_freshness = {s.seq: next(n for n in s.nodes if n.id == edit.id).freshness for s in (before, after)}
    assert edit_freshness[after.seq] == edit_freshness[before.seq]  # its input is back, no longer broken
    assert after.seq > seq
    # Every tab learns it from the feed, the restored node with its history (no tab holds it).
    feed = core.canvas.changes(project_id, gone.seq)
    row = next(n for n in feed.nodes if n.id == source)
    assert row.history == original.history
    with pytest.raises(InvalidInput, match="Already undone"):
        core.undo.undo(project_id, user, step)


def test_typing_is_one_step_and_undo_takes_the_users_own_last_edit(core: Core, project_id: int) -> None:
    ann = core.accounts.local_user().id
    bo, _ = core.accounts.sign_up("bo@example.com", "long enough")
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a cat", by=ann)
    for text in ("a cat on", "a cat on a mat"):  # the same typing: one step
        core.canvas.update_node(node.id, prompt=text, by=ann)
    other = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(other.id, prompt="bo's words", by=bo.id)

    assert core.undo.undo(project_id, ann) == f"Prompt of #{node.id} restored"
    prompts = {n.id: n.prompt for n in core.canvas.snapshot(project_id).nodes}
    assert prompts == {node.id: "", other.id: "bo's words"}  # Bo's edit is Bo's to undo
    with pytest.raises(InvalidInput, match="Nothing to undo"):
        core.undo.undo(project_id, ann)


def test_undo_puts_back_the_order_and_the_current_result(core: Core, project_id: int) -> None:
    user = core.accounts.local_user().id
    first = _node_with_two_results(core, project_id, "one")
    second = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE).id
    core.notebook.move(second, -1, by=user)
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [second, first]
    core.notebook.use_result(first, "/media/a.png", by=user)
    assert core.undo.undo(project_id, user) == f"Result of #{first} restored"
    assert next(n for n in core.canvas.snapshot(project_id).nodes if n.id == first).image_url == "/media/b.png"
    assert core.undo.undo(project_id, user) == "Order restored"
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [first, second]


def test_an_edit_of_a_deleted_node_waits_for_the_delete_to_be_undone(core: Core, project_id: int) -> None:
    user = core.accounts.local_user().id
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="kept", by=user)
    core.canvas.delete_node(node.id)  # someone else's delete, or one not recorded
    with pytest.raises(NotFound, match="was deleted"):
        core.undo.undo(project_id, user)


def test_a_node_added_after_a_delete_leaves_the_undo_of_that_delete_possible(core: Core, project_id: int) -> None:
    """On SQLite the new node used to take the deleted one's id (the newest), and the undo said
    "#5 is there already" about a node that was not it (migration 0009)."""
    user = core.accounts.local_user().id
    doomed = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    step = core.canvas.delete_node(doomed.id, by=user)
    newcomer = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    assert newcomer.id != doomed.id
    assert core.undo.undo(project_id, user, step) == f"Restored #{doomed.id}"
    assert sorted(n.id for n in core.canvas.snapshot(project_id).nodes) == sorted([doomed.id, newcomer.id])
