"""Accounts and sign-in sessions, free of any web framework.

Passwords are hashed with argon2id (argon2-cffi). A session is a random token
the browser keeps in an HttpOnly cookie; the database keeps only its SHA-256,
so a copy of the database does not sign anyone in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from core.db import SessionFactory
from models.tables import AuthSession, User, utcnow

LOCAL_USER_EMAIL = "local@localhost"
SESSION_DAYS = 30
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_EMAIL_CHARS = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class AuthError(ValueError):
    """Sign-up or sign-in refused; the message is safe to show."""


@dataclass(frozen=True)
class UserView:
    id: int
    email: str

    @property
    def is_local(self) -> bool:
        return self.email == LOCAL_USER_EMAIL


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.match(email):
        raise AuthError("Enter a valid email address")
    return email


class Accounts:
    def __init__(
        self, session_factory: SessionFactory, reads: SessionFactory, hasher: PasswordHasher | None = None
    ) -> None:
        self._session = session_factory
        #: Who a session token is: asked by every event and image request, never behind the write lock.
        self._reads = reads
        self._hasher = hasher or PasswordHasher()
        # Verified when an email is unknown, so a wrong email costs as long as a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        #: The local user never changes once it exists; every signed-out event asks for it.
        self._local: UserView | None = None

    def sign_up(self, email: str, password: str) -> tuple[UserView, str]:
        """Create an account and its first session; returns the user and the session token."""
        email = clean_email(email)
        if email == LOCAL_USER_EMAIL:
            raise AuthError("That address is reserved")
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            raise AuthError(f"Use a password of {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
        try:
            with self._session() as session:
                user = User(email=email, password_hash=self._hasher.hash(password))
                session.add(user)
                session.flush()
        except IntegrityError:
            raise AuthError("An account with this email already exists") from None
        view = UserView(id=user.id or 0, email=email)
        return view, self._start_session(view.id)

    def sign_in(self, email: str, password: str) -> tuple[UserView, str]:
        """Check the password; returns the user and a new session token."""
        try:
            email = clean_email(email)
        except AuthError:
            raise AuthError("Wrong email or password") from None
        with self._session() as session:
            user = session.exec(select(User).where(User.email == email)).first()
            stored = user.password_hash if user and user.password_hash else self._dummy_hash
            try:
                self._hasher.verify(stored, password[:MAX_PASSWORD_CHARS])
            except (VerificationError, InvalidHashError):
                user = None
            if user is None or stored is self._dummy_hash:
                raise AuthError("Wrong email or password")
            if self._hasher.check_needs_rehash(stored):
                user.password_hash = self._hasher.hash(password)
            view = UserView(id=user.id or 0, email=user.email)
        return view, self._start_session(view.id)

    def sign_out(self, token: str) -> None:
        with self._session() as session:
            session.exec(delete(AuthSession).where(col(AuthSession.token_hash) == token_hash(token)))  # type: ignore[call-overload]

    def user_for(self, token: str) -> UserView | None:
        """The user a session token belongs to, or None when it is unknown or expired."""
        if not token:
            return None
        with self._reads() as session:
            row = session.get(AuthSession, token_hash(token))
            if row is None or row.expires_at.replace(tzinfo=utcnow().tzinfo) <= utcnow():
                return None
            user = session.get(User, row.user_id)
            return UserView(id=user.id or 0, email=user.email) if user else None

    def local_user(self) -> UserView:
        """The user who owns everything done without signing in (single-user mode)."""
        if self._local is None:
            self._local = self._find_or_create_local_user()
        return self._local

    def _find_or_create_local_user(self) -> UserView:
        for _ in range(2):  # a concurrent first request may create it between our read and write
            try:
                with self._session() as session:
                    user = session.exec(select(User).where(User.email == LOCAL_USER_EMAIL)).first()
                    if user is None:
                        user = User(email=LOCAL_USER_EMAIL)
                        session.add(user)
                        session.flush()
                    return UserView(id=user.id or 0, email=user.email)
            except IntegrityError:
                continue
        raise RuntimeError("could not create the local user")

    def _start_session(self, user_id: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._session() as session:
            session.add(
                AuthSession(
                    token_hash=token_hash(token), user_id=user_id, expires_at=utcnow() + timedelta(days=SESSION_DAYS)
                )
            )
        return token
