"""Sharing a project: its members and invitations, added by email, given a role, and removed.

Only membership and invitation rows change here; who may do what is decided in
`core.people.access`, and the callers check the acting user is the owner
(`Access.may_act(..., need=Role.OWNER)`) first. Every change goes through the change feed
(the triggers of migrations 0003 and 0005), and is announced after commit, with the
member's id when an account's access changed, so the web layer can update that account's
open tabs (its project list, its role, or the end of its access) and every member list.

Adding an email never tells whether an account uses it: the answer is the same sentence,
the attempts are rate limited per owner (`SHARE_ADD_LIMIT_PER_OWNER`), and the list shows
the email `invited`, with its link (`core.people.invitations`), until its person opens the
project. An existing account gets access at once all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from limits import parse
from sqlmodel import col, select

from core.changes import ChangeWriter
from core.db import get_or_404
from core.errors import InvalidInput, NotFound
from core.logs import get_logger
from core.people.access import SHARED_ROLES, Role
from core.people.accounts import clean_email, token_hash
from core.people.invitations import InviteTokens, is_expired
from core.people.rate_limits import RateCounter
from models.tables import Invitation, Membership, Project, User, utcnow

log = get_logger("sharing")


@dataclass(frozen=True)
class MemberView:
    """A row of the Share dialog, sent to every tab of the project (no link: those are the owner's)."""

    #: 0 for an invitation: whether an account uses its email is not told.
    user_id: int
    email: str
    role: str
    #: The invitation shown instead of a member (0: a member, or the owner).
    invite_id: int = 0
    expired: bool = False


@dataclass(frozen=True)
class SharedProjectView:
    """A project in someone's project menu, with their role in it."""

    id: int
    name: str
    role: str
    #: Whose project it is (their email), for a shared one in the menu.
    owner: str = ""


class Sharing:
    def __init__(
        self,
        writer: ChangeWriter,
        tokens: InviteTokens,
        *,
        invite_ttl_s: int,
        add_limit_per_owner: str,
        limits_storage_url: str = "",
    ) -> None:
        self._writer = writer
        self._tokens = tokens
        self._invite_ttl = timedelta(seconds=invite_ttl_s)
        self._add_limit = parse(add_limit_per_owner)
        self._counter = RateCounter(limits_storage_url)

    def members(self, project_id: int) -> list[MemberView]:
        """The owner first, then the members in the order they were added, then the invitations."""
        with self._writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id)
            owner = get_or_404(tx.session, User, project.owner_id)
            rows = tx.session.exec(
                select(Membership, User)
                .join(User, col(User.id) == Membership.user_id)
                .where(Membership.project_id == project_id)
                .order_by(col(Membership.added_at), col(Membership.user_id))
            )
            invitations = list(
                tx.session.exec(
                    select(Invitation)
                    .where(Invitation.project_id == project_id)
                    .order_by(col(Invitation.created_at), col(Invitation.id))
                )
            )
            invited = {i.email for i in invitations}
            return (
                [MemberView(project.owner_id, owner.email, Role.OWNER.value)]
                + [MemberView(m.user_id, u.email, m.role) for m, u in rows if u.email not in invited]
                + [MemberView(0, i.email, i.role, invite_id=i.id or 0, expired=is_expired(i)) for i in invitations]
            )

    def invite_links(self, project_id: int) -> dict[int, str]:
        """Each invitation's link path (`/invite/<token>`), by invitation id: for the owner's eyes only."""
        with self._writer.reading() as session:
            rows = session.exec(select(Invitation).where(Invitation.project_id == project_id))
            return {i.id or 0: self._tokens.path(i.nonce) for i in rows}

    def projects_for(self, user_id: int) -> list[SharedProjectView]:
        """Every project the user may open: their own, then the ones shared with them."""
        with self._writer.transaction() as tx:
            owned = tx.session.exec(select(Project).where(Project.owner_id == user_id).order_by(col(Project.id)))
            mine = [SharedProjectView(p.id or 0, p.name, Role.OWNER.value) for p in owned]
            shared = tx.session.exec(
                select(Project, Membership.role, User.email)
                .join(Membership, col(Membership.project_id) == Project.id)
                .join(User, col(User.id) == Project.owner_id)
                .where(Membership.user_id == user_id)
                .order_by(col(Project.id))
            )
            return mine + [SharedProjectView(p.id or 0, p.name, role, owner) for p, role, owner in shared]

    def add(self, project_id: int, email: str, role: str) -> str:
        """Invite `email` with `role`; an account using it gets access at once. Returns the answer to show.

        Adding an email already invited replaces its invitation: a new link, the old one dead.
        """
        given = _shared_role(role)
        try:
            email = clean_email(email)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        with self._writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id, lock=True)
            owner = get_or_404(tx.session, User, project.owner_id)
            if email == owner.email:
                raise InvalidInput(f"{email} owns this project")
            self._count_add(project.owner_id)
            user = tx.session.exec(select(User).where(User.email == email)).first()
            account = user.id if user is not None and user.password_hash else None  # the local user signs in nowhere
            member = tx.session.get(Membership, (project_id, account)) if account else None
            pending = tx.session.exec(
                select(Invitation).where(Invitation.project_id == project_id, Invitation.email == email)
            ).first()
            if member is not None and pending is None:
                # The owner sees this member in the list already: telling it leaks nothing.
                raise InvalidInput(f"{email} is already a member: change their role in the list")
            if pending is not None:
                tx.session.delete(pending)
                tx.session.flush()  # the new invitation takes the (project, email) slot
            nonce = self._tokens.new_nonce()
            tx.session.add(
                Invitation(
                    project_id=project_id,
                    email=email,
                    role=given.value,
                    token_hash=token_hash(self._tokens.token(nonce)),
                    nonce=nonce,
                    expires_at=utcnow() + self._invite_ttl,
                )
            )
            if account:
                if member is None:
                    member = Membership(project_id=project_id, user_id=account, role=given.value)
                member.role = given.value
                tx.session.add(member)
            tx.changed(project_id, member=account or 0, roster=True)
        return f"Invited {email} as {given.value}: send them the invitation link from the list."

    def revoke(self, project_id: int, invite_id: int) -> None:
        """Remove an invitation: its link dies, and the access an account of that email was given ends."""
        with self._writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id, lock=True)
            invitation = tx.session.get(Invitation, invite_id)
            if invitation is None or invitation.project_id != project_id:
                raise NotFound(f"Invitation {invite_id} not found")
            user = tx.session.exec(select(User).where(User.email == invitation.email)).first()
            member = tx.session.get(Membership, (project_id, user.id)) if user is not None else None
            tx.session.delete(invitation)
            if member is not None:
                tx.session.delete(member)
            tx.changed(project_id, member=member.user_id if member is not None else 0, roster=True)

    def _count_add(self, owner_id: int) -> None:
        """One more `Add` by this owner; refused past the limit, which bounds guessing who has an account."""
        try:
            wait = self._counter.wait_after_hit(self._add_limit, "share-add", str(owner_id))
        except Exception:
            # Like sign-in: a restarting Redis does not stop sharing; the answers tell nothing anyway.
            log.warning("share limits unavailable; add allowed", exc_info=True, extra={"step": "share.unlimited"})
            return
        if wait:
            raise InvalidInput(f"Too many people added in a short time. Try again in {wait} seconds.")

    def set_role(self, project_id: int, user_id: int, role: str) -> None:
        given = _shared_role(role)
        with self._writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id, lock=True)
            member = tx.session.get(Membership, (project_id, user_id))
            if member is None:
                raise NotFound(f"Member {user_id} not found")
            if member.role != given.value:
                member.role = given.value
                tx.session.add(member)
                tx.changed(project_id, member=user_id)

    def remove(self, project_id: int, user_id: int) -> None:
        with self._writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id, lock=True)
            member = tx.session.get(Membership, (project_id, user_id))
            if member is None:
                raise NotFound(f"Member {user_id} not found")
            tx.session.delete(member)
            tx.changed(project_id, member=user_id)


def _shared_role(role: str) -> Role:
    if role not in {r.value for r in SHARED_ROLES}:
        raise InvalidInput(f"A member is an {' or a '.join(r.value for r in SHARED_ROLES)}, not {role or 'nothing'}")
    return Role(role)
