"""Sharing a project: its members, added by email, given a role, and removed.

Only membership rows change here; who may do what is decided in `core.access`, and the
callers check the acting user is the owner (`Access.may_act(..., need=Role.OWNER)`) first.
Every change goes through the change feed (the membership triggers of migration 0003),
and is announced after commit with the member's id, so the web layer can update that
account's open tabs (its project list, its role, or the end of its access).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from core.access import SHARED_ROLES, Role
from core.accounts import clean_email
from core.changes import ChangeWriter
from core.db import get_or_404
from core.errors import InvalidInput, NotFound
from models.tables import Membership, Project, User


@dataclass(frozen=True)
class MemberView:
    user_id: int
    email: str
    role: str


@dataclass(frozen=True)
class SharedProjectView:
    """A project in someone's project menu, with their role in it."""

    id: int
    name: str
    role: str


class Sharing:
    def __init__(self, writer: ChangeWriter) -> None:
        self._writer = writer

    def members(self, project_id: int) -> list[MemberView]:
        """The owner first, then the members in the order they were added."""
        with self._writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id)
            owner = get_or_404(tx.session, User, project.owner_id)
            rows = tx.session.exec(
                select(Membership, User)
                .join(User, col(User.id) == Membership.user_id)
                .where(Membership.project_id == project_id)
                .order_by(col(Membership.added_at), col(Membership.user_id))
            )
            return [MemberView(project.owner_id, owner.email, Role.OWNER.value)] + [
                MemberView(m.user_id, u.email, m.role) for m, u in rows
            ]

    def projects_for(self, user_id: int) -> list[SharedProjectView]:
        """Every project the user may open: their own, then the ones shared with them."""
        with self._writer.transaction() as tx:
            owned = tx.session.exec(select(Project).where(Project.owner_id == user_id).order_by(col(Project.id)))
            mine = [SharedProjectView(p.id or 0, p.name, Role.OWNER.value) for p in owned]
            shared = tx.session.exec(
                select(Project, Membership.role)
                .join(Membership, col(Membership.project_id) == Project.id)
                .where(Membership.user_id == user_id)
                .order_by(col(Project.id))
            )
            return mine + [SharedProjectView(p.id or 0, p.name, role) for p, role in shared]

    def add(self, project_id: int, email: str, role: str) -> MemberView:
        """Share the project with the account registered under `email`."""
        given = _shared_role(role)
        try:
            email = clean_email(email)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        with self._writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id, lock=True)
            user = tx.session.exec(select(User).where(User.email == email)).first()
            if user is None or not user.password_hash:  # the local user cannot sign in anywhere
                raise InvalidInput(f"No account uses {email}: they must create one first")
            if user.id == project.owner_id:
                raise InvalidInput(f"{email} owns this project")
            if tx.session.get(Membership, (project_id, user.id)) is not None:
                raise InvalidInput(f"{email} is already a member: change their role in the list")
            assert user.id is not None
            tx.session.add(Membership(project_id=project_id, user_id=user.id, role=given.value))
            tx.changed(project_id, member=user.id)
            return MemberView(user.id, email, given.value)

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
