"""The audit log's HMAC key: from the environment or a secret file, else one in the data dir.

``MONITOR_AUDIT_KEY`` (or ``MONITOR_AUDIT_KEY_FILE``, the Docker/Kubernetes secret
convention) holds the key. Without either, the key is the file ``audit.key`` in
``MONITOR_DATA_DIR``, generated (mode 0600) the first time one is needed. The key itself is
never logged or printed; only its id (a short fingerprint) is.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from monitor.secrets import SecretMissing, read_env_secret

log = logging.getLogger(__name__)

KEY_ENV = "MONITOR_AUDIT_KEY"
KEY_FILE_NAME = "audit.key"
MIN_KEY_CHARS = 32


class AuditKeyError(Exception):
    """The audit key cannot be had; the message says where it was looked for (never the key)."""


@dataclass(frozen=True)
class AuditKey:
    """A key and where it came from."""

    secret: bytes = field(repr=False)
    source: str

    @property
    def id(self) -> str:
        """A fingerprint that names the key without revealing it."""
        return hashlib.sha256(b"monitor-audit-key-id:" + self.secret).hexdigest()[:16]

    def mac(self, message: str) -> str:
        """HMAC-SHA256 of ``message``."""
        return hmac.new(self.secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def data_dir_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the generated key lives: ``$MONITOR_DATA_DIR/audit.key``."""
    env = os.environ if environ is None else environ
    return Path(env.get("MONITOR_DATA_DIR") or "data") / KEY_FILE_NAME


def configured_in_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the key comes from ``MONITOR_AUDIT_KEY`` or ``MONITOR_AUDIT_KEY_FILE``."""
    env = os.environ if environ is None else environ
    return bool(env.get(KEY_ENV) or env.get(f"{KEY_ENV}_FILE"))


def load_key(environ: Mapping[str, str] | None = None, *, create: bool = True) -> AuditKey:
    """The audit key (see the module docstring); AuditKeyError when there is none to have."""
    env = os.environ if environ is None else environ
    try:
        value = read_env_secret(KEY_ENV, env)
    except SecretMissing as exc:
        raise AuditKeyError(str(exc)) from exc
    if value:
        source = f"{KEY_ENV}_FILE" if not env.get(KEY_ENV) else KEY_ENV
        return _checked(value, source)
    path = data_dir_key_path(env)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        if not create:
            raise AuditKeyError(
                f"no audit key: set {KEY_ENV} or {KEY_ENV}_FILE, or start the monitor once "
                f"to generate {path}"
            ) from None
        generate_key_file(path)
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise AuditKeyError(f"audit key file {path} cannot be read: {exc.strerror}") from exc
    return _file_key(str(path.resolve()), stamp)


@lru_cache(maxsize=16)
def _file_key(path: str, _stamp: int) -> AuditKey:  # re-read when the file changes
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuditKeyError(f"audit key file {path} cannot be read: {exc.strerror}") from exc
    return _checked(value, path)


def _checked(value: str, source: str) -> AuditKey:
    if len(value) < MIN_KEY_CHARS:
        raise AuditKeyError(
            f"the audit key from {source} is shorter than {MIN_KEY_CHARS} characters "
            "(make one with: openssl rand -hex 32)"
        )
    return AuditKey(secret=value.encode("utf-8"), source=source)


def new_key_text() -> str:
    """A fresh random key (64 hex characters)."""
    return secrets.token_hex(32)


def generate_key_file(path: Path) -> None:
    """Write a new key to ``path`` (mode 0600; never overwrites)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new_key_text() + "\n")
    log.warning(
        "audit key generated at %s (mode 0600): back it up apart from the database; "
        "set %s_FILE to keep it elsewhere",
        path,
        KEY_ENV,
    )


def replace_key_file(path: Path, value: str) -> None:
    """Atomically replace the key file at ``path`` with ``value`` (mode 0600)."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
