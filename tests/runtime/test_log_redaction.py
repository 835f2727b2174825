"""Secrets never reach the logs: the redaction filter against attempts to slip them through."""

from __future__ import annotations

import html
import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from monitor.logs import QUIET_LOGGERS, REDACTED, configure, secrets_from_environment
from tests.conftest import REPO

SECRET = "hunter2-Sup3r&Secret/pw"
SLACK = "xoxb-1234567890-abcdefghijklmnop"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() replaces the root handlers: put pytest's own back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
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


UNICODE = "pässwörd Ω&/+ <x>"  # spaces, non-ASCII, URL, form and HTML specials


@pytest.fixture
def hard() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("DEBUG", "json", secrets=[UNICODE, SECRET], stream=stream)
    yield stream


HARDER = [
    ("url, lower-case escapes %s", (quote(UNICODE, safe="").lower(),)),
    ("url, upper-case escapes %s", (quote(UNICODE, safe=""),)),
    ("form body pw=%s", (quote_plus(UNICODE),)),
    ("html %s", (html.escape(UNICODE),)),
    ("bytes %r", (UNICODE.encode(),)),
    ("ascii json %s", (json.dumps({"x": UNICODE}),)),
    ("utf-8 json %s", (json.dumps({"x": UNICODE}, ensure_ascii=False),)),
    ("repr of a list %r", ([UNICODE],)),
    ("split across arguments %s%s", (UNICODE[:5], UNICODE[5:])),
    ("smtp url %s", ("smtp://monitor:s3cr3t-mail-pw@smtp.example.org:587",)),
    (
        "bluesky session %s",
        ({"accessJwt": "eyJhbGciOiJFUzI1NksifQ.eyJzdWIiOiJkaWQifQ.c2lnbmF0dXJl"},),
    ),
]
LEAKS = (
    UNICODE,
    "pässwörd",
    "p%C3%A4ss",
    "p%c3%a4ss",
    "p\\xc3\\xa4ss",
    "p\\u00e4ss",
    "s3cr3t-mail-pw",
    "c2lnbmF0dXJl",
)


@pytest.mark.parametrize(("message", "args"), HARDER)
def test_harder_attempts_are_redacted(
    hard: io.StringIO, message: str, args: tuple[object, ...]
) -> None:
    logging.getLogger("monitor.test").warning(message, *args)
    out = hard.getvalue()
    assert REDACTED in out
    for leaked in LEAKS:
        assert leaked not in out, leaked


def test_chained_causes_notes_stacks_and_extras_are_redacted(hard: io.StringIO) -> None:
    log = logging.getLogger("monitor.test")
    try:
        try:
            raise ValueError(f"bad password {UNICODE}")
        except ValueError as inner:
            outer = RuntimeError("login failed")
            outer.add_note(f"while sending {SECRET}")
            raise outer from inner
    except RuntimeError:
        log.exception("polling crashed", extra={"ctx_request": {"auth": SECRET}}, stack_info=True)
    out = hard.getvalue()
    assert "polling crashed" in out and "ValueError" in out
    for leaked in (UNICODE, "pässwörd", SECRET, "Sup3r"):
        assert leaked not in out, leaked


def test_warnings_and_uncaught_thread_errors_go_through_the_filter() -> None:
    stream = io.StringIO()
    saved = (sys.excepthook, threading.excepthook)
    try:
        configure("INFO", "text", secrets=[SECRET], stream=stream, hooks=True)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"deprecated login with {SECRET}", UserWarning, stacklevel=1)

        def crash() -> None:
            raise RuntimeError(f"thread died holding {SECRET}")

        thread = threading.Thread(target=crash, name="poller")
        thread.start()
        thread.join()
    finally:
        sys.excepthook, threading.excepthook = saved
        logging.captureWarnings(False)
    out = stream.getvalue()
    assert "deprecated login with" in out and "uncaught exception in thread poller" in out
    assert SECRET not in out and "Sup3r" not in out


def test_account_credentials_from_the_config_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credential variables need no secret-sounding name, and secret files count too."""
    from monitor.commands.run import _start_logging
    from monitor.config import load_config
    from monitor.context import AppContext
    from monitor.settings import Settings

    (tmp_path / "reddit_password").write_text("file-held-reddit-pw\n")
    config = (REPO / "config" / "example.yaml").read_text()
    config = config.replace("/run/secrets/riverside_reddit_password", "reddit_password")
    config = config.replace("enabled: false", "enabled: true")
    (tmp_path / "monitor.yaml").write_text(config)
    monkeypatch.setenv("OAKFIELD_MASTODON_TOKEN", "mastodon-token-value")
    monkeypatch.setenv("RIVERSIDE_REDDIT_CLIENT_ID", "reddit-client-id-value")
    monkeypatch.setenv("RIVERSIDE_REDDIT_CLIENT_SECRET", "reddit-client-secret-value")
    loaded = load_config(tmp_path / "monitor.yaml")
    settings = Settings(
        database_url="postgresql://monitor:db-password-value@db:5432/monitor",
        smtp_password="smtp-password-value",
    )
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    _start_logging(AppContext(settings=settings), loaded)
    try:
        secrets = [
            "file-held-reddit-pw",
            "mastodon-token-value",
            "reddit-client-id-value",
            "reddit-client-secret-value",
            "db-password-value",
            "smtp-password-value",
        ]
        logging.getLogger("connectors.reddit").error("login with %s", " and ".join(secrets))
    finally:
        sys.excepthook, threading.excepthook = sys.__excepthook__, threading.__excepthook__
        logging.captureWarnings(False)
    out = stream.getvalue()
    assert "login with" in out
    for secret in secrets:
        assert secret not in out, secret
