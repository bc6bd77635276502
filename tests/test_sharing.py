"""Shared projects: roles, membership changes in the change feed, images seen through membership."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, select

from core.changes import Notice
from core.contract import JobStatus, NodeKind
from core.errors import InvalidInput, NotAllowed, NotFound
from core.people.access import Role
from core.people.accounts import UserView
from core.root import Core
from models.tables import ChangeEvent
from providers.local_render import render_text_to_image
from tests.wait import TERMINAL, eventually, job_reaches


@pytest.fixture
def people(core: Core) -> dict[str, UserView]:
    names = ("olga", "ed", "vic", "eve")
    return {name: core.accounts.sign_up(f"{name}@example.com", "long enough")[0] for name in names}


@pytest.fixture
def shared(core: Core, people: dict[str, UserView]) -> int:
    """Olga's project, shared with Ed (editor) and Vic (viewer), who have opened it; Eve is no member."""
    project = core.canvas.create_project(people["olga"].id, "Team board")
    core.sharing.add(project.id, "ed@example.com", "editor")
    core.sharing.add(project.id, " VIC@example.com ", "viewer")
    for name in ("ed", "vic"):
        core.invitations.arrived(project.id, people[name])
    return project.id


def test_each_role_may_do_what_it_says_and_no_more(core: Core, people: dict[str, UserView], shared: int) -> None:
    olga, ed, vic, eve = (people[n].id for n in ("olga", "ed", "vic", "eve"))
    node = core.canvas.add_node(shared, NodeKind.TEXT_TO_IMAGE)
    assert [core.access.project(u, shared) for u in (olga, ed, vic)] == [Role.OWNER, Role.EDITOR, Role.VIEWER]
    assert core.access.node(vic, node.id) == shared  # a viewer reads everything
    assert core.access.may_act(ed, shared, node_id=node.id) == Role.EDITOR
    assert core.access.may_act(olga, shared, need=Role.OWNER) == Role.OWNER
    with pytest.raises(NotAllowed, match="view this project but not change it"):
        core.access.may_act(vic, shared, node_id=node.id)
    with pytest.raises(NotAllowed, match="view this project but not change it"):
        core.access.may_act(vic, shared)
    with pytest.raises(NotAllowed, match="Only the project's owner"):
        core.access.may_act(ed, shared, need=Role.OWNER)
    # Someone who is no member learns nothing, not even that the project exists.
    for check in (
        lambda: core.access.project(eve, shared),
        lambda: core.access.node(eve, node.id),
        lambda: core.access.may_act(eve, shared),
        lambda: core.access.may_act(eve, shared, node_id=node.id),
        lambda: core.access.may_act(vic, 99999),
    ):
        with pytest.raises(NotFound, match="not found"):
            check()
    # A node of another project named with this one is not found, whatever the role.
    other = core.canvas.add_node(core.canvas.create_project(ed, "Ed's own").id, NodeKind.TEXT_TO_IMAGE)
    with pytest.raises(NotFound, match=f"Node {other.id} not found"):
        core.access.may_act(ed, shared, node_id=other.id)


def test_members_are_listed_and_their_projects_menu_names_shared_ones(
    core: Core, people: dict[str, UserView], shared: int
) -> None:
    assert [(m.email, m.role) for m in core.sharing.members(shared)] == [
        ("olga@example.com", "owner"),
        ("ed@example.com", "editor"),
        ("vic@example.com", "viewer"),
    ]
    own = core.canvas.create_project(people["vic"].id, "Vic's own")
    assert [(p.id, p.role) for p in core.sharing.projects_for(people["vic"].id)] == [
        (own.id, "owner"),
        (shared, "viewer"),
    ]
    assert core.sharing.projects_for(people["eve"].id) == []
    assert core.canvas.ensure_default_project(people["vic"].id).id == own.id  # never a shared one


@pytest.mark.parametrize(
    ("email", "role", "message"),
    [
        ("olga@example.com", "viewer", "owns this project"),
        ("ed@example.com", "viewer", "already a member"),
        ("eve@example.com", "owner", "not owner"),
        ("eve@example.com", "", "not nothing"),
        ("not an email", "viewer", "valid email"),
    ],
)
def test_bad_shares_are_refused_and_change_nothing(
    core: Core, shared: int, email: str, role: str, message: str
) -> None:
    core.accounts.local_user()
    before = core.sharing.members(shared)
    with pytest.raises(InvalidInput, match=message):
        core.sharing.add(shared, email, role)
    assert core.sharing.members(shared) == before


def test_membership_changes_are_in_the_feed_and_announced_with_the_member(
    core: Core, people: dict[str, UserView], shared: int
) -> None:
    async def scenario() -> list[tuple[int, int]]:
        with core.notifier.subscribe() as queue:
            core.sharing.set_role(shared, people["vic"].id, "editor")
            core.sharing.set_role(shared, people["vic"].id, "editor")  # no change: nothing announced
            core.sharing.remove(shared, people["ed"].id)
            notices: list[Notice] = []

            def announced() -> list[tuple[int, int]]:
                while not queue.empty():
                    notices.append(queue.get_nowait())
                return [(n.project_id, n.member) for n in notices if n.member]

            # The notifier hands notices over in order: one for the unchanged role would come
            # before the removal's, so it is in by the time the removal's is.
            return await eventually(announced, lambda found: len(found) >= 2, what="the removal's notice")

    assert asyncio.run(scenario()) == [(shared, people["vic"].id), (shared, people["ed"].id)]
    assert core.access.project(people["vic"].id, shared) == Role.EDITOR
    with pytest.raises(NotFound):
        core.access.project(people["ed"].id, shared)
    with core.db.session() as session:
        events = session.exec(
            select(ChangeEvent)
            .where(ChangeEvent.project_id == shared, ChangeEvent.entity == "member")
            .order_by(col(ChangeEvent.seq))
        )
        member_events = [(e.entity_id, e.op) for e in events]
    ed, vic = str(people["ed"].id), str(people["vic"].id)
    assert member_events == [(ed, "upsert"), (vic, "upsert"), (vic, "upsert"), (ed, "delete")]
    with pytest.raises(NotFound, match="Member"):
        core.sharing.remove(shared, people["eve"].id)
    with pytest.raises(InvalidInput):
        core.sharing.set_role(shared, people["vic"].id, "owner")


async def test_a_result_is_visible_to_the_members_and_to_nobody_else(
    core: Core, people: dict[str, UserView], shared: int
) -> None:
    node = core.canvas.add_node(shared, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a shared lighthouse")
    view = await core.pipeline.generate(node.id)
    job = await job_reaches(core, view.id, *TERMINAL)
    assert job.status == JobStatus.COMPLETED and job.image_path
    sees = {name: core.access.may_see_media(user.id, job.image_path) for name, user in people.items()}
    assert sees == {"olga": True, "ed": True, "vic": True, "eve": False}
    core.sharing.remove(shared, people["vic"].id)
    assert not core.access.may_see_media(people["vic"].id, job.image_path)  # gone with the membership


def test_an_image_used_in_two_projects_is_visible_to_members_of_either(
    core: Core, people: dict[str, UserView], shared: int
) -> None:
    eve = people["eve"].id
    upload = core.media.save(render_text_to_image("eve's upload", "1:1"))
    core.access.grant_media(eve, upload)
    assert not core.access.may_see_media(people["vic"].id, upload)
    # Eve uses her upload in her own project, shared with Ed alone...
    evesproject = core.canvas.create_project(eve, "Eve's")
    core.sharing.add(evesproject.id, "ed@example.com", "viewer")
    edit = core.canvas.add_node(evesproject.id, NodeKind.IMAGE_EDIT)
    core.canvas.change_inputs(edit.id, add=[upload])
    assert core.access.may_see_media(people["ed"].id, upload)
    assert not core.access.may_see_media(people["vic"].id, upload)
    # ...then Ed, an editor of Olga's project, uses it there too: now Olga's members see it.
    there = core.canvas.add_node(shared, NodeKind.IMAGE_EDIT)
    core.access.may_act(people["ed"].id, shared, node_id=there.id, image_url=upload)
    core.canvas.change_inputs(there.id, add=[upload])
    assert {n: core.access.may_see_media(people[n].id, upload) for n in ("olga", "vic")} == {"olga": True, "vic": True}
    # An image nobody shared with them cannot be added by guessing its name.
    private = core.media.save(render_text_to_image("olga's private", "1:1"))
    core.access.grant_media(people["olga"].id, private)
    with pytest.raises(NotFound, match="not one of yours"):
        core.access.may_act(people["ed"].id, shared, node_id=there.id, image_url=private)
