"""Sharing by invitation: any email can be added, the answer never tells whether an account
uses it, and the link works once, until it expires or the owner removes or replaces it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from core.errors import InvalidInput, NotFound
from core.people.access import Role
from core.people.accounts import UserView
from core.people.invitations import EXPIRED, GONE, INVITE_PREFIX, InviteUnusable
from core.root import Core
from core.settings import Settings
from models.tables import ChangeEvent, Invitation, utcnow
from tests.test_security import _client

ADD_LIMIT = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with a small `Add` limit to reach."""
    return settings.model_copy(update={"share_add_limit_per_owner": f"{ADD_LIMIT}/minute"})


@pytest.fixture
def olga(core: Core) -> UserView:
    return core.accounts.sign_up("olga@example.com", "long enough")[0]


@pytest.fixture
def project(core: Core, olga: UserView) -> int:
    return core.canvas.create_project(olga.id, "Team board").id


def link(core: Core, project_id: int, email: str) -> str:
    """The token of the invitation of `email`, as the owner's dialog shows it."""
    invite_id = next(m.invite_id for m in core.sharing.members(project_id) if m.email == email)
    return core.sharing.invite_links(project_id)[invite_id].removeprefix(INVITE_PREFIX)


def feed(core: Core, project_id: int) -> list[tuple[str, str]]:
    with core.db.session() as session:
        rows = session.exec(select(ChangeEvent).where(ChangeEvent.project_id == project_id))
        return [(e.entity, e.op) for e in rows]


def test_the_answer_and_the_list_read_the_same_whether_or_not_an_account_exists(core: Core, project: int) -> None:
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    answers = {email: core.sharing.add(project, email, "editor") for email in ("ed@example.com", "nobody@example.com")}
    assert answers == {
        "ed@example.com": "Invited ed@example.com as editor: send them the invitation link from the list.",
        "nobody@example.com": "Invited nobody@example.com as editor: send them the invitation link from the list.",
    }
    rows = [dataclasses.asdict(m) for m in core.sharing.members(project)][1:]
    assert [{k: v for k, v in row.items() if k not in ("email", "invite_id")} for row in rows] == [
        {"user_id": 0, "role": "editor", "expired": False}
    ] * 2
    # The existing account got access at once (its menu lists the project), and a link like anyone.
    assert core.access.project(ed.id, project) == Role.EDITOR
    assert [p.id for p in core.sharing.projects_for(ed.id)] == [project]
    assert len(core.sharing.invite_links(project)) == 2
    # Its person opening the project ends the invitation: now the list shows a member.
    core.invitations.arrived(project, ed)
    assert [(m.email, m.user_id, m.invite_id > 0) for m in core.sharing.members(project)][1:] == [
        ("ed@example.com", ed.id, False),
        ("nobody@example.com", 0, True),
    ]
    with pytest.raises(InvalidInput, match="already a member"):
        core.sharing.add(project, "ed@example.com", "viewer")


def test_whoever_opens_the_link_signed_in_becomes_a_member_once(core: Core, project: int) -> None:
    core.sharing.add(project, "nina@example.com", "viewer")
    token = link(core, project, "nina@example.com")
    with core.db.session() as session:
        stored = session.exec(select(Invitation)).one()
    assert token not in (stored.token_hash, stored.nonce)  # the database keeps no usable token
    nina, _ = core.accounts.sign_up("nina@example.com", "long enough")
    core.invitations.check(token)
    assert core.invitations.accept(token, nina) == project
    assert core.access.project(nina.id, project) == Role.VIEWER
    assert [(m.email, m.role, m.invite_id) for m in core.sharing.members(project)][1:] == [
        ("nina@example.com", "viewer", 0)
    ]
    # Single use: the same link again, by anyone, is refused and changes nothing.
    other, _ = core.accounts.sign_up("other@example.com", "long enough")
    events = feed(core, project)
    for person in (nina, other):
        with pytest.raises(InviteUnusable, match=GONE):
            core.invitations.accept(token, person)
    with pytest.raises(NotFound):
        core.access.project(other.id, project)
    assert feed(core, project) == events


def test_an_expired_link_is_refused_and_changes_nothing(core: Core, project: int) -> None:
    core.sharing.add(project, "late@example.com", "editor")
    token = link(core, project, "late@example.com")
    with core.db.session() as session:
        invitation = session.exec(select(Invitation)).one()
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        session.add(invitation)
    late, _ = core.accounts.sign_up("late@example.com", "long enough")
    events = feed(core, project)
    for attempt in (lambda: core.invitations.check(token), lambda: core.invitations.accept(token, late)):
        with pytest.raises(InviteUnusable, match=EXPIRED):
            attempt()
    with pytest.raises(NotFound):
        core.access.project(late.id, project)
    assert [(m.email, m.expired) for m in core.sharing.members(project)][1:] == [("late@example.com", True)]
    assert feed(core, project) == events


def test_the_expiry_is_the_setting(core: Core, project: int) -> None:
    core.sharing.add(project, "someone@example.com", "viewer")
    with core.db.session() as session:
        invitation = session.exec(select(Invitation)).one()
    made = invitation.expires_at.replace(tzinfo=utcnow().tzinfo)
    assert abs((made - utcnow()).total_seconds() - core.settings.invite_ttl_s) < 60


def test_removing_an_invitation_kills_its_link_and_the_access_it_gave(core: Core, project: int) -> None:
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    for email in ("ed@example.com", "nobody@example.com"):
        core.sharing.add(project, email, "editor")
    tokens = {email: link(core, project, email) for email in ("ed@example.com", "nobody@example.com")}
    for member in core.sharing.members(project)[1:]:
        core.sharing.revoke(project, member.invite_id)
    assert [m.email for m in core.sharing.members(project)] == ["olga@example.com"]
    with pytest.raises(NotFound):
        core.access.project(ed.id, project)
    nobody, _ = core.accounts.sign_up("nobody@example.com", "long enough")
    for token in tokens.values():
        with pytest.raises(InviteUnusable, match=GONE):
            core.invitations.accept(token, nobody)
    with pytest.raises(NotFound, match="Invitation"):
        core.sharing.revoke(project, 99999)


def test_adding_an_invited_email_again_replaces_its_link_and_role(core: Core, project: int) -> None:
    core.sharing.add(project, "nina@example.com", "viewer")
    first = link(core, project, "nina@example.com")
    core.sharing.add(project, "NINA@example.com", "editor")
    second = link(core, project, "nina@example.com")
    assert second != first
    nina, _ = core.accounts.sign_up("nina@example.com", "long enough")
    with pytest.raises(InviteUnusable, match=GONE):
        core.invitations.accept(first, nina)
    assert core.invitations.accept(second, nina) == project
    assert core.access.project(nina.id, project) == Role.EDITOR


def test_a_member_opening_a_link_keeps_the_higher_role_and_the_owner_uses_none(
    core: Core, olga: UserView, project: int
) -> None:
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    core.sharing.add(project, "ed@example.com", "editor")
    core.invitations.arrived(project, ed)
    core.sharing.add(project, "viewer-link@example.com", "viewer")
    token = link(core, project, "viewer-link@example.com")
    with pytest.raises(InvalidInput, match="You own this project"):
        core.invitations.accept(token, olga)
    core.invitations.check(token)  # still usable by the person it was sent to
    assert core.invitations.accept(token, ed) == project
    assert core.access.project(ed.id, project) == Role.EDITOR  # not lowered by a viewer's link
    with pytest.raises(InvalidInput, match="own account"):
        core.invitations.accept(token, core.accounts.local_user())


@pytest.mark.parametrize("token", ["", "nonsense", "a" * 43, "x" * 5000, "../p/1", "%00"])
def test_a_bad_token_is_refused_and_changes_nothing(core: Core, project: int, token: str) -> None:
    core.sharing.add(project, "nina@example.com", "viewer")
    nina, _ = core.accounts.sign_up("nina@example.com", "long enough")
    before, events = core.sharing.members(project), feed(core, project)
    with pytest.raises(InviteUnusable, match=GONE):
        core.invitations.check(token)
    with pytest.raises(InviteUnusable, match=GONE):
        core.invitations.accept(token, nina)
    assert core.sharing.members(project) == before
    assert feed(core, project) == events


def test_adds_are_limited_per_owner_and_a_refused_add_changes_nothing(core: Core, olga: UserView, project: int) -> None:
    second = core.canvas.create_project(olga.id, "Another").id  # the limit is the owner's, over projects
    for n in range(ADD_LIMIT):
        core.sharing.add(project if n % 2 else second, f"guess{n}@example.com", "viewer")
    before = core.sharing.members(project)
    with pytest.raises(InvalidInput, match=r"Too many people added .* Try again in \d+ seconds"):
        core.sharing.add(project, "one-more@example.com", "viewer")
    assert core.sharing.members(project) == before
    someone_else, _ = core.accounts.sign_up("sam@example.com", "long enough")  # another owner is not slowed
    core.sharing.add(core.canvas.create_project(someone_else.id, "Sam's").id, "x@example.com", "viewer")


def test_every_invitation_change_is_in_the_feed_and_announced_as_a_member_list_change(core: Core, project: int) -> None:
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")

    async def scenario() -> list[tuple[int, bool]]:
        with core.notifier.subscribe() as queue:
            core.sharing.add(project, "nobody@example.com", "viewer")
            core.sharing.add(project, "ed@example.com", "viewer")
            await asyncio.sleep(0)  # the notifier hands notices over with call_soon
            return [(n.member, n.roster) for n in (queue.get_nowait() for _ in range(queue.qsize())) if n.roster]

    # The unknown email names no account; the existing one's tabs learn of their new project.
    assert asyncio.run(scenario()) == [(0, True), (ed.id, True)]
    assert feed(core, project)[1:] == [("invite", "upsert"), ("invite", "upsert"), ("member", "upsert")]


def test_the_local_user_may_invite_and_is_never_given_access_by_it(core: Core) -> None:
    local = core.accounts.local_user()
    project = core.canvas.create_project(local.id, "Local").id
    core.sharing.add(project, "friend@example.com", "editor")
    friend, _ = core.accounts.sign_up("friend@example.com", "long enough")
    assert core.invitations.accept(link(core, project, "friend@example.com"), friend) == project
    other = core.canvas.create_project(friend.id, "Friend's").id
    core.sharing.add(other, "local@localhost", "viewer")  # the local user signs in nowhere: no access
    with pytest.raises(NotFound):
        core.access.project(local.id, other)


# The link over HTTP -------------------------------------------------------------------
async def test_a_signed_out_visitor_signs_up_through_the_link_and_lands_in_the_project(
    core: Core, project: int
) -> None:
    core.sharing.add(project, "newcomer@example.com", "editor")
    path = INVITE_PREFIX + link(core, project, "newcomer@example.com")
    async with _client(core) as http:
        opened = await http.get(path)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/signup?" + httpx.QueryParams({"next": path}).__str__()
        page = await http.get(opened.headers["location"])
        assert "You are invited to a shared project" in page.text and f'value="{path}"' in page.text
        signed_up = await http.post(
            "/signup", data={"email": "newcomer@example.com", "password": "long enough", "next": path}
        )
        assert signed_up.status_code == 303 and signed_up.headers["location"] == path
        landed = await http.get(path)
        assert landed.status_code == 303 and landed.headers["location"] == f"/p/{project}"
        again = await http.get(path)
        assert again.status_code == 410 and GONE in again.text
    newcomer = core.accounts.sign_in("newcomer@example.com", "long enough")[0]
    assert core.access.project(newcomer.id, project) == Role.EDITOR


async def test_a_dead_link_says_so_signed_in_or_out(core: Core, project: int) -> None:
    _, token = core.accounts.sign_up("nina@example.com", "long enough")
    for cookie in ("", token):
        async with _client(core, cookie) as http:
            page = await http.get(INVITE_PREFIX + "no-such-token")
        assert page.status_code == 410
        assert "Invitation not valid" in page.text and GONE in page.text
        assert page.headers["referrer-policy"] == "same-origin"
