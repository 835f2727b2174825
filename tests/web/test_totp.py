"""RFC 6238 appendix B and RFC 4226 appendix D test vectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.web import totp

SHA1_KEY = b"12345678901234567890"
SHA256_KEY = b"12345678901234567890123456789012"
SHA512_KEY = b"1234567890123456789012345678901234567890123456789012345678901234"
KEYS = {"sha1": SHA1_KEY, "sha256": SHA256_KEY, "sha512": SHA512_KEY}

# RFC 6238 appendix B: (Unix time, algorithm, 8-digit TOTP)
RFC6238 = [
    (59, "sha1", "94287082"),
    (59, "sha256", "46119246"),
    (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"),
    (1111111109, "sha256", "68084774"),
    (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"),
    (1111111111, "sha256", "67062674"),
    (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"),
    (1234567890, "sha256", "91819424"),
    (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"),
    (2000000000, "sha256", "90698825"),
    (2000000000, "sha512", "38618901"),
    (20000000000, "sha1", "65353130"),
    (20000000000, "sha256", "77737706"),
    (20000000000, "sha512", "47863826"),
]

# RFC 4226 appendix D: HOTP values for counters 0..9
RFC4226 = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


@pytest.mark.parametrize(("unix", "algorithm", "expected"), RFC6238)
def test_rfc6238_vectors(unix: int, algorithm: str, expected: str) -> None:
    at = datetime.fromtimestamp(unix, tz=UTC)
    assert totp.totp_at(KEYS[algorithm], at, digits=8, algorithm=algorithm) == expected


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226)))
def test_rfc4226_vectors(counter: int, expected: str) -> None:
    assert totp.hotp(SHA1_KEY, counter) == expected


def test_verify_accepts_one_step_of_drift_and_nothing_more() -> None:
    secret = totp.new_secret()
    key = totp.decode_secret(secret)
    at = datetime(2026, 12, 4, 12, 0, 10, tzinfo=UTC)
    code = totp.totp_at(key, at)
    assert totp.verify(secret, code, at)
    assert totp.verify(secret, code, at + timedelta(seconds=30))
    assert not totp.verify(secret, code, at + timedelta(seconds=90))
    assert not totp.verify(secret, "12345", at)
    assert not totp.verify(secret, "abcdef", at)
