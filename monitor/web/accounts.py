"""Local web accounts: argon2 password hashes and optional TOTP, for schools without SSO."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.storage import tables as t
from monitor.web import totp

HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD_LENGTH = 12
# verified when the name is unknown, so an unknown name takes as long as a wrong password
_DUMMY_HASH = HASHER.hash("not a real password, only spends the same time")


class AccountRefused(Exception):
    """The local account cannot be made or changed; the message says why."""


def password_problem(password: str) -> str | None:
    """Why ``password`` is too weak to keep; None when it will do."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if password.strip() != password:
        return "a password cannot start or end with spaces"
    return None


@dataclass(frozen=True)
class SetResult:
    """What ``set_password`` did; ``totp_secret`` is shown once to be put in an app."""

    created: bool
    totp_secret: str | None


def set_password(
    session: Session, staff_key: str, password: str, *, now: datetime, with_totp: bool
) -> SetResult:
    """Create or reset the local account of ``staff_key`` (who must be in the staff register)."""
    staff = session.scalars(
        select(t.Staff).where(t.Staff.key == staff_key, t.Staff.archived_at.is_(None))
    ).one_or_none()
    if staff is None:
        raise AccountRefused(f"no member of staff {staff_key!r} in the register")
    why = password_problem(password)
    if why:
        raise AccountRefused(why)
    login = session.scalars(
        select(t.LocalLogin).where(t.LocalLogin.staff_key == staff_key)
    ).one_or_none()
    secret = totp.new_secret() if with_totp else None
    created = login is None
    if login is None:
        login = t.LocalLogin(staff_key=staff_key, created_at=now)
        session.add(login)
    login.password_hash = HASHER.hash(password)
    login.totp_secret = secret
    login.updated_at = now
    session.flush()
    return SetResult(created=created, totp_secret=secret)


def check_password(
    session: Session, name: str, password: str, code: str, *, now: datetime
) -> str | None:
    """The staff key whose local account matches ``name`` (staff id or email) and secrets."""
    wanted = name.strip().lower()
    staff = session.scalars(
        select(t.Staff).where(t.Staff.archived_at.is_(None), t.Staff.key == wanted)
    ).one_or_none() or next(
        (
            s
            for s in session.scalars(select(t.Staff).where(t.Staff.archived_at.is_(None)))
            if s.email and s.email.lower() == wanted
        ),
        None,
    )
    login = (
        session.scalars(
            select(t.LocalLogin).where(t.LocalLogin.staff_key == staff.key)
        ).one_or_none()
        if staff is not None
        else None
    )
    try:
        HASHER.verify(login.password_hash if login else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if login is None or staff is None:
        return None
    if login.totp_secret and not totp.verify(login.totp_secret, code, now):
        return None
    if HASHER.check_needs_rehash(login.password_hash):
        login.password_hash = HASHER.hash(password)
        login.updated_at = now
    return staff.key
