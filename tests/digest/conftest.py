"""A local SMTP server (aiosmtpd, real smtplib on the client side) for the digest tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from monitor.notify.email import EmailSender

SMTP_USER = "digest@trust.example"
SMTP_PASSWORD = "a long test password"
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every accepted message; refuses chosen recipients."""

    received: list[Received] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)  # 450: try later
    unknown: set[str] = field(default_factory=set)  # 550: never
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.busy:
            return "450 4.2.1 Mailbox busy, try later"
        if address in self.unknown:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.changed:
            self.received.append(
                Received(
                    list(envelope.rcpt_tos),
                    envelope.original_content or b"",
                    bool(session.authenticated),
                )
            )
            self.changed.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int) -> list[Received]:
        """Poll (with a timeout) until ``count`` messages have arrived."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, WAIT), (
                f"{len(self.received)} message(s) arrived, expected {count}"
            )
            return list(self.received)

    def per_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.received:
            for address in message.rcpt_tos:
                counts[address] = counts.get(address, 0) + 1
        return counts


def authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # handled=False: aiosmtpd answers 535 itself on failure
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_port(mailbox: Mailbox) -> Iterator[int]:
    """aiosmtpd on a free loopback port, AUTH required (plain text: loopback only)."""
    port = free_port()  # port 0 would break the controller's readiness probe
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def email_sender(smtp_port: int) -> EmailSender:
    """The real EmailSender (smtplib) pointed at the local server."""
    return EmailSender(
        "127.0.0.1",
        smtp_port,
        SMTP_USER,
        SecretStr(SMTP_PASSWORD),
        "Trust Monitor <digest@trust.example>",
        starttls=False,
        timeout=5.0,
    )
