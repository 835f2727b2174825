"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), pure: the time is passed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime

from monitor.clock import require_aware

STEP_SECONDS = 30
DIGITS = 6
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "sha1") -> str:
    """RFC 4226: the one-time password for ``counter`` (dynamic truncation of an HMAC)."""
    mac = hmac.new(key, struct.pack(">Q", counter), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp_at(
    key: bytes, at: datetime, *, digits: int = DIGITS, algorithm: str = "sha1", step: int = 30
) -> str:
    """RFC 6238: the password for the time step holding ``at``."""
    counter = int(require_aware(at).timestamp()) // step
    return hotp(key, counter, digits=digits, algorithm=algorithm)


def new_secret() -> str:
    """A fresh 160-bit secret in base32, as authenticator apps expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a base32 secret (spaces and missing padding tolerated)."""
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def verify(secret: str, code: str, at: datetime, *, window: int = 1) -> bool:
    """Whether ``code`` is right at ``at``, allowing ``window`` steps of clock drift each way."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != DIGITS:
        return False
    key = decode_secret(secret)
    counter = int(require_aware(at).timestamp()) // STEP_SECONDS
    return any(
        hmac.compare_digest(hotp(key, counter + drift), code)
        for drift in range(-window, window + 1)
    )


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually shown as a QR code)."""
    from urllib.parse import quote

    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_SECONDS}"
