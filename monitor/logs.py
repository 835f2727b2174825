"""Logging: one line per state change, JSON optional, secrets redacted before anything is written."""

from __future__ import annotations

import html
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

from connectors.registry import manifests

REDACTED = "[REDACTED]"
# Token shapes worth catching even when nobody registered the value.
TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/app tokens
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),  # Slack app-level tokens
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),  # Authorization headers
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWTs (sessions)
    re.compile(
        r"(?i)((?:password|passwd|secret|token|app_password|access_token|client_secret)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]{3,})"
    ),
    re.compile(
        r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)"
    ),  # passwords in any URL: postgresql://, smtp://, https://user:pw@ ...
)
# A pattern with groups keeps group 1 (and 3, if any) around the secret in group 2.
_SECRET_GROUP = 2
# Environment variables whose values are secrets (any name containing one of these words).
SECRET_NAME_WORDS = ("PASSWORD", "TOKEN", "SECRET", "APP_PASSWORD", "API_KEY")
MIN_SECRET_LENGTH = 4


def _spellings(secret: str) -> set[str]:
    """The ways a secret is printed: as is, in JSON, a URL or form, a repr, bytes, HTML."""
    quoted = quote(secret, safe="")
    spellings = {
        secret,
        json.dumps(secret)[1:-1],  # inside JSON (non-ASCII escaped)
        json.dumps(secret, ensure_ascii=False)[1:-1],  # inside JSON (as UTF-8)
        quoted,  # in a URL path or query
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted),  # lower-case escapes
        quote_plus(secret, safe=""),  # in a form body
        repr(secret)[1:-1],  # in a repr()
        repr(secret.encode("utf-8"))[2:-1],  # in a repr() of bytes
        html.escape(secret),  # in HTML
    }
    return {s for s in spellings if len(s) >= MIN_SECRET_LENGTH}


class SecretRedactor(logging.Filter):
    """Replaces known secret values and token-shaped text in every record, args included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register secret values to redact wherever they appear."""
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                self._secrets.update(_spellings(secret))
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret removed."""
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in TOKEN_PATTERNS:
            if pattern.groups >= _SECRET_GROUP:
                text = pattern.sub(
                    lambda m: (
                        m.group(1) + REDACTED + (m.group(3) if m.re.groups > _SECRET_GROUP else "")
                    ),
                    text,
                )
            else:
                text = pattern.sub(REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (message, arguments, exception text)."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key.startswith("ctx_") and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables (and *_FILE contents) whose names say they are secret."""
    env = os.environ if environ is None else environ
    values = []
    for name, value in env.items():
        upper = name.upper()
        if not any(word in upper for word in SECRET_NAME_WORDS):
            continue
        if upper.endswith("_FILE"):
            try:
                with open(value, encoding="utf-8") as handle:  # noqa: PTH123 - path from the environment
                    values.append(handle.read().strip())
            except OSError:
                continue
        else:
            values.append(value)
    return values


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, context fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key.startswith("ctx_"):
                data[key[4:]] = value
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """Redacts the finished line too: whatever a formatter adds (extras, tracebacks) is covered."""

    def __init__(self, inner: logging.Formatter, redactor: SecretRedactor) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line with every secret removed."""
        return self._redactor.redact(self._inner.format(record))


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _log_uncaught() -> None:
    """Uncaught exceptions (main thread and others) and warnings go through the redacting log."""
    log = logging.getLogger("monitor.uncaught")

    def main_hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        log.critical("uncaught exception", exc_info=(kind, value, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.critical(
            "uncaught exception in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
    logging.captureWarnings(True)


# Loggers configure() quietens: libraries that log request URLs or headers at DEBUG stay at
# WARNING (the HTTP and Slack libraries here, each platform's own from its connector
# manifest); "skipped: maximum number of running instances" is expected when a running job
# is nudged, so the scheduler's own logger says only errors.
QUIET_LOGGERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "urllib3",
            "httpx",
            "httpcore",
            "slack_sdk",
            "apscheduler.executors",
            *(name for declared in manifests().values() for name in declared.loggers),
        ),
        logging.WARNING,
    ),
    "apscheduler.scheduler": logging.ERROR,
}


def configure(
    level: str = "INFO",
    fmt: str = "text",
    *,
    secrets: Iterable[str] = (),
    stream: Any = None,
    hooks: bool = False,
) -> SecretRedactor:
    """Set up the root logger with redaction (``hooks``: uncaught errors and warnings too)."""
    redactor = SecretRedactor([*secrets_from_environment(), *secrets])
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = JsonFormatter() if fmt.lower() == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(RedactingFormatter(inner, redactor))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if hooks:
        _log_uncaught()
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)
    return redactor
