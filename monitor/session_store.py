"""Platform login sessions kept in the database, encrypted, shared by every process.

A Bluesky session string holds access and refresh tokens, so it is a credential: it
is stored in ``account_health.session_state`` encrypted with AES-256-GCM under a key
derived (HKDF-SHA256) from the account's own credentials, which the process reads
from the environment or secret files and never stores. The database alone cannot
reveal a session; changing the credentials makes the stored session unreadable, and
the connector simply logs in again. The account key is bound in as associated data,
so a session cannot be moved to another account's row.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.accounts import health_of

log = logging.getLogger(__name__)

FORMAT = "v1:"
INFO = b"school-social-monitor platform session v1"
NONCE_BYTES = 12


def session_key(credentials: Mapping[str, str], account_key: str) -> bytes:
    """The 256-bit key for one account's stored session, from its credentials."""
    material = "\0".join(f"{name}={credentials[name]}" for name in sorted(credentials))
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=account_key.encode(), info=INFO)
    return kdf.derive(material.encode())


def seal(value: str, key: bytes, account_key: str) -> str:
    """``value`` encrypted and authenticated, as printable text."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), account_key.encode())
    return FORMAT + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(text: str, key: bytes, account_key: str) -> str | None:
    """The value ``seal`` made, or None when it cannot be read (other key, other format)."""
    if not text.startswith(FORMAT):
        return None
    try:
        blob = base64.urlsafe_b64decode(text[len(FORMAT) :].encode())
        nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        return AESGCM(key).decrypt(nonce, sealed, account_key.encode()).decode()
    except (InvalidTag, ValueError):
        return None


class DatabaseSessionStore:
    """One account's session, encrypted in its ``account_health`` row (a connector SessionStore)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        account_id: int,
        account_key: str,
        credentials: Mapping[str, str],
    ) -> None:
        self._sessions = sessions
        self._account_id = account_id
        self._account_key = account_key
        self._key = session_key(credentials, account_key)
        self.writes = 0

    def get(self) -> str | None:
        """The stored session string, if there is one this process can read."""
        with self._sessions() as session:
            health = session.get(t.AccountHealth, self._account_id)
            stored = health.session_state if health else None
        if not stored:
            return None
        value = unseal(stored, self._key, self._account_key)
        if value is None:
            log.info(
                "%s: the stored session cannot be read (credentials changed?)", self._account_key
            )
        return value

    def set(self, value: str) -> None:
        """Keep a new or refreshed session string (in its own short transaction)."""
        sealed = seal(value, self._key, self._account_key)
        try:
            with transaction(self._sessions) as session:
                health_of(session, self._account_id).session_state = sealed
        except SQLAlchemyError as exc:
            # not fatal: this process keeps the session; another may have to log in again
            log.warning("%s: the new session could not be stored: %s", self._account_key, exc)
            return
        self.writes += 1

    def __repr__(self) -> str:  # never the session, never the key
        return f"DatabaseSessionStore(account={self._account_key!r})"
