"""Secrets never reach the logs: the redaction filter against attempts to slip them through."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.logs import REDACTED, configure, secrets_from_environment

SECRET = "hunter2-Sup3r&Secret/pw"
SLACK = "xoxb-1234567890-abcdefghijklmnop"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() replaces the root handlers: put pytest's own back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logging.getLogger(name).level
        for name in ("apscheduler.scheduler", "urllib3", "httpx")
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("DEBUG", "text", secrets=[SECRET], stream=stream)
    yield stream


ATTEMPTS = [
    ("plain %s", (SECRET,)),
    ("in a dict %s", ({"password": SECRET},)),
    ("json %s", (json.dumps({"pw": SECRET}),)),
    ("url https://user:%s@example.org/", (SECRET.replace("/", "%2F").replace("&", "%26"),)),
    ("slack token %s", (SLACK,)),
    ("header Authorization: Bearer %s", ("eyJhbGciOiJIUzI1NiJ9.payload.sig",)),
    ("database %s", ("postgresql+psycopg://monitor:dbpass99@db:5432/monitor",)),
    ("form body app_password=%s&x=1", ("zzzz-yyyy-xxxx-wwww",)),
    ("repr %r", (SECRET,)),
]


@pytest.mark.parametrize(("message", "args"), ATTEMPTS)
def test_secrets_are_redacted(
    captured: io.StringIO, message: str, args: tuple[object, ...]
) -> None:
    logging.getLogger("monitor.test").warning(message, *args)
    out = captured.getvalue()
    assert REDACTED in out
    for leaked in (SECRET, SLACK, "dbpass99", "zzzz-yyyy-xxxx-wwww", "payload.sig", "Sup3r"):
        assert leaked not in out


def test_secrets_in_exceptions_are_redacted(captured: io.StringIO) -> None:
    try:
        raise RuntimeError(f"login failed with {SECRET}")
    except RuntimeError:
        logging.getLogger("monitor.test").exception("polling crashed")
    assert SECRET not in captured.getvalue() and "polling crashed" in captured.getvalue()


def test_json_format_is_redacted_too() -> None:
    stream = io.StringIO()
    configure("INFO", "json", secrets=[SECRET], stream=stream)
    try:
        logging.getLogger("monitor.test").info(
            "state %s", SECRET, extra={"ctx_account": f"acct {SECRET}"}
        )
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue())
    assert (
        SECRET not in stream.getvalue()
        and line["level"] == "INFO"
        and line["account"] == f"acct {REDACTED}"
    )


def test_secret_environment_values_are_found(tmp_path: Path) -> None:
    secret_file = tmp_path / "smtp"
    secret_file.write_text("from-a-file-secret\n")
    env = {
        "SMTP_PASSWORD": "pw-from-env",
        "SMTP_PASSWORD_FILE": str(secret_file),
        "HOME": "/root",
        "SLACK_BOT_TOKEN": SLACK,
    }
    assert sorted(secrets_from_environment(env)) == sorted(
        ["pw-from-env", "from-a-file-secret", SLACK]
    )
