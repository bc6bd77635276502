"""Invitation links: how someone joins a shared project, with or without an account yet.

The owner adds an email in the Share dialog (`core.people.sharing.Sharing.add`), which makes an
invitation whose link (`/invite/<token>`) the owner sends. Whoever opens it signed in
becomes a member with its role (`accept`): once, before `INVITE_TTL_S` ran out, and not
after the owner removed or replaced it. A link that cannot be used changes nothing.

The token is an HMAC of the invitation's random nonce under the app's secret: the owner
can be shown the link again, while the database keeps only the token's hash for the lookup,
so a copy of the database opens no project.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from sqlmodel import col, delete, select

from core.changes import ChangeWriter
from core.errors import InvalidInput
from core.people.access import Role
from core.people.accounts import UserView, token_hash
from models.tables import Invitation, Membership, Project, utcnow

INVITE_PREFIX = "/invite/"
#: Tokens are 43 characters; anything much longer is no token of ours (and is not hashed).
MAX_TOKEN_CHARS = 100
GONE = "This invitation link is no longer valid: it was used already, or the owner removed or replaced it."
EXPIRED = "This invitation link has expired."


class InviteUnusable(InvalidInput):
    """The link cannot be used (unknown, used, revoked, replaced, expired); the message says which."""


class InviteTokens:
    """Makes an invitation's nonce, and from it the link's token, under the app's secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"invitation links", hashlib.sha256).digest()

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(16)

    def token(self, nonce: str) -> str:
        digest = hmac.new(self._key, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def path(self, nonce: str) -> str:
        return INVITE_PREFIX + self.token(nonce)


def is_expired(invitation: Invitation, now: datetime | None = None) -> bool:
    # SQLite hands back naive datetimes (stored in UTC).
    return invitation.expires_at.replace(tzinfo=utcnow().tzinfo) <= (now or utcnow())


class Invitations:
    def __init__(self, writer: ChangeWriter) -> None:
        self._writer = writer

    def check(self, token: str) -> None:
        """Raises `InviteUnusable` unless the link can be accepted (asked before signing in)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InviteUnusable(GONE)
        with self._writer.reading() as session:
            found = session.exec(select(Invitation).where(Invitation.token_hash == token_hash(token))).first()
            _usable(found)

    def accept(self, token: str, user: UserView) -> int:
        """Make `user` a member with the invitation's role (keeping a higher one); returns the project id.

        Single use: the invitation is deleted in the same transaction. The project's owner
        opening their own link is told so, and the link stays usable for the person invited.
        """
        if user.is_local:
            raise InvalidInput("Sign in with your own account to accept an invitation")
        if len(token) > MAX_TOKEN_CHARS:
            raise InviteUnusable(GONE)
        hashed = token_hash(token)
        with self._writer.transaction() as tx:
            found = tx.session.exec(select(Invitation.project_id).where(Invitation.token_hash == hashed)).first()
            if found is None:
                raise InviteUnusable(GONE)
            tx.lock_project(found)
            # Read again under the project's lock: a concurrent accept of the same link may have won.
            query = select(Invitation).where(Invitation.token_hash == hashed)
            invitation = _usable(tx.session.exec(query.execution_options(populate_existing=True)).first())
            project = tx.session.get(Project, invitation.project_id)
            assert project is not None  # the invitation's foreign key
            if project.owner_id == user.id:
                raise InvalidInput("You own this project: send this link to the person you invited.")
            member = tx.session.get(Membership, (project.id, user.id))
            if member is None:
                tx.session.add(Membership(project_id=invitation.project_id, user_id=user.id, role=invitation.role))
            elif Role(member.role).rank < Role(invitation.role).rank:
                member.role = invitation.role
                tx.session.add(member)
            tx.session.delete(invitation)
            tx.changed(invitation.project_id, member=user.id)
            return invitation.project_id

    def arrived(self, project_id: int, user: UserView) -> None:
        """A member opened the project: an invitation sent to their email is done with.

        An existing account gets access as soon as it is added, but the owner's list shows
        it `invited` like any email until its person shows up, so the list tells nobody
        whether an account exists.
        """
        with self._writer.reading() as session:
            pending = session.exec(
                select(Invitation.id).where(Invitation.project_id == project_id, Invitation.email == user.email)
            ).first()
        if pending is None:
            return
        with self._writer.transaction() as tx:
            tx.lock_project(project_id)
            tx.session.exec(delete(Invitation).where(col(Invitation.id) == pending))  # type: ignore[call-overload]
            tx.changed(project_id, roster=True)


def _usable(invitation: Invitation | None) -> Invitation:
    if invitation is None:
        raise InviteUnusable(GONE)
    if is_expired(invitation):
        raise InviteUnusable(EXPIRED)
    return invitation
