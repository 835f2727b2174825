"""EmailSender with the real smtplib against aiosmtpd (STARTTLS with a test CA, AUTH)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from monitor.notify.email import EmailSender
from monitor.notify.errors import DeliveryError
from monitor.settings import Settings

USER = "alerts@hillside.sch.uk"
PASSWORD = "correct horse battery staple"
WAIT = 10.0
# A real 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201ffa3d5b6"
    "b50000000049454e44ae426082"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class Mailbox:
    """The aiosmtpd handler: stores every accepted message and can refuse recipients."""

    received: list[Received] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)  # answered 450 (temporary)
    unknown: set[str] = field(default_factory=set)  # answered 550 (permanent)
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
        content = envelope.original_content or b""
        with self.changed:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    content,
                    session.ssl is not None,
                    bool(session.authenticated),
                )
            )
            self.changed.notify_all()
        return "250 Message accepted for delivery"


def authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # handled=False: aiosmtpd answers 535 itself; True would leave the client waiting.
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class LocalCA:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A self-signed certificate for 127.0.0.1, made for this test run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return LocalCA(cert_path, key_path)


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, *, tls: LocalCA | None) -> Iterator[int]:
    """aiosmtpd on a free loopback port; with ``tls``: STARTTLS, then AUTH, required; else neither."""
    port = free_port()
    options: dict[str, Any] = {"authenticator": authenticator}
    if tls is not None:
        options.update(
            tls_context=tls.server_context(),
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
        )
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_port(mailbox: Mailbox, test_ca: LocalCA) -> Iterator[int]:
    with smtp_server(mailbox, tls=test_ca) as port:
        yield port


def sender(port: int, test_ca: LocalCA, *, password: str = PASSWORD, **kwargs: Any) -> EmailSender:
    options: dict[str, Any] = {"ssl_context": test_ca.client_context(), "timeout": 5.0} | kwargs
    timeout = options.pop("timeout")
    return EmailSender(
        "127.0.0.1",
        port,
        USER,
        SecretStr(password),
        "Hillside Monitor <alerts@hillside.sch.uk>",
        starttls=True,
        timeout=timeout,
        **options,
    )


def parse(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.peer
def test_multipart_with_inline_image_arrives_intact(
    mailbox: Mailbox, smtp_port: int, test_ca: LocalCA
) -> None:
    html = '<p>Weekly digest</p><img src="cid:chart" alt="chart">'
    message_id = sender(smtp_port, test_ca).send(
        ["head@hillside.sch.uk", "dsl@hillside.sch.uk"],
        "Weekly digest \u202e\r\nBcc: attacker@evil.example",
        "Weekly digest (text)",
        html,
        {"chart": PNG},
    )
    with mailbox.changed:
        assert mailbox.changed.wait_for(lambda: len(mailbox.received) == 1, WAIT)
    [got] = mailbox.received
    assert got.tls and got.authenticated
    assert got.mail_from == "alerts@hillside.sch.uk"
    assert got.rcpt_tos == ["head@hillside.sch.uk", "dsl@hillside.sch.uk"]
    message = parse(got.content)
    assert message["Message-ID"] == message_id
    assert message["Subject"] == "Weekly digest Bcc: attacker@evil.example"
    assert message["Bcc"] is None
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert text_part.get_content().strip() == "Weekly digest (text)"
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert 'src="cid:chart"' in html_part.get_content()
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<chart>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG


@pytest.mark.peer
def test_plain_text_email(mailbox: Mailbox, smtp_port: int, test_ca: LocalCA) -> None:
    sender(smtp_port, test_ca).send(
        ["dsl@hillside.sch.uk"], "Safeguarding alert", "Case 12 needs you"
    )
    with mailbox.changed:
        assert mailbox.changed.wait_for(lambda: len(mailbox.received) == 1, WAIT)
    message = parse(mailbox.received[0].content)
    assert message.get_content_type() == "text/plain"
    assert message["Auto-Submitted"] == "auto-generated"


@pytest.mark.peer
def test_wrong_password_is_permanent_and_never_logged(
    mailbox: Mailbox, smtp_port: int, test_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "hunter2-wrong-password"
    caplog.set_level(logging.DEBUG)
    email = sender(smtp_port, test_ca, password=wrong)
    with pytest.raises(DeliveryError) as caught:
        email.send(["dsl@hillside.sch.uk"], "x", "y")
    assert caught.value.permanent and caught.value.code == "535"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    for shown in (str(caught.value), repr(caught.value), repr(email), caplog.text):
        assert wrong not in shown and PASSWORD not in shown
    assert mailbox.received == []


@pytest.mark.peer
def test_recipient_refusals_by_reply_code(
    mailbox: Mailbox, smtp_port: int, test_ca: LocalCA
) -> None:
    mailbox.busy.add("busy@hillside.sch.uk")
    mailbox.unknown.add("gone@hillside.sch.uk")
    email = sender(smtp_port, test_ca)
    with pytest.raises(DeliveryError) as temporary:
        email.send(["busy@hillside.sch.uk"], "x", "y")
    assert temporary.value.retryable and temporary.value.code == "450"
    with pytest.raises(DeliveryError) as permanent:
        email.send(["gone@hillside.sch.uk"], "x", "y")
    assert permanent.value.permanent and permanent.value.code == "550"
    # One good recipient: the message goes; the refused one is logged, not retried.
    email.send(["gone@hillside.sch.uk", "dsl@hillside.sch.uk"], "x", "y")
    with mailbox.changed:
        assert mailbox.changed.wait_for(lambda: len(mailbox.received) == 1, WAIT)
    assert mailbox.received[0].rcpt_tos == ["dsl@hillside.sch.uk"]


@pytest.mark.peer
def test_untrusted_certificate_is_permanent(smtp_port: int, test_ca: LocalCA) -> None:
    email = sender(smtp_port, test_ca, ssl_context=ssl.create_default_context())
    with pytest.raises(DeliveryError) as caught:
        email.send(["dsl@hillside.sch.uk"], "x", "y")
    assert caught.value.permanent and caught.value.code == "tls_verify"


@pytest.mark.peer
def test_no_starttls_offered_refuses_to_log_in_in_clear(mailbox: Mailbox, test_ca: LocalCA) -> None:
    with smtp_server(mailbox, tls=None) as port, pytest.raises(DeliveryError) as caught:
        sender(port, test_ca).send(["dsl@hillside.sch.uk"], "x", "y")
    assert caught.value.permanent and caught.value.code == "unsupported"


@pytest.mark.peer
def test_connection_refused_is_retryable(test_ca: LocalCA) -> None:
    with pytest.raises(DeliveryError) as caught:
        sender(free_port(), test_ca).send(["dsl@hillside.sch.uk"], "x", "y")
    assert caught.value.retryable and caught.value.code == "network"


@pytest.mark.peer
def test_silent_server_times_out_retryably(test_ca: LocalCA) -> None:
    # A socket that accepts connections (the kernel backlog) but never greets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(DeliveryError) as caught:
            sender(port, test_ca, timeout=0.5).send(["dsl@hillside.sch.uk"], "x", "y")
    # smtplib turns the read timeout into SMTPServerDisconnected("... timed out").
    assert caught.value.retryable and caught.value.code == "disconnected"


@pytest.mark.parametrize(
    ("to", "html", "images", "code"),
    [
        ([], None, {}, "bad_address"),
        (["not-an-address"], None, {}, "bad_address"),
        (["a@b.example\r\nBcc: x@evil.example"], None, {}, "bad_address"),
        (["a@b.example, c@d.example"], None, {}, "bad_address"),
        (["a@b.example"], None, {"chart": PNG}, "bad_message"),
        (["a@b.example"], "<img src=cid:x>", {"x": b"<svg/>"}, "bad_message"),
        (["a@b.example"], "<img src=cid:x>", {"bad cid>": PNG}, "bad_message"),
    ],
)
def test_bad_messages_are_refused_before_connecting(
    test_ca: LocalCA, to: list[str], html: str | None, images: dict[str, bytes], code: str
) -> None:
    email = sender(free_port(), test_ca)  # nothing listens: refusal must come first
    with pytest.raises(DeliveryError) as caught:
        email.send(to, "subject", "text", html, images)
    assert caught.value.permanent and caught.value.code == code


def test_repr_masks_the_password(test_ca: LocalCA) -> None:
    email = sender(25, test_ca)
    assert PASSWORD not in repr(email) and "********" in repr(email)


@pytest.mark.peer
def test_settings_from_the_environment_give_starttls_and_login(
    mailbox: Mailbox,
    smtp_port: int,
    test_ca: LocalCA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = tmp_path / "smtp_password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    for name in ("SMTP_PASSWORD", "SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(smtp_port))
    monkeypatch.setenv("SMTP_USERNAME", USER)
    monkeypatch.setenv("SMTP_PASSWORD_FILE", str(secret))  # a Docker or Kubernetes secret
    monkeypatch.setenv("SMTP_FROM", "Hillside Monitor <alerts@hillside.sch.uk>")
    # the system's trust store, pointed at this run's CA the standard OpenSSL way
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.cert_path))
    caplog.set_level(logging.DEBUG)
    email = EmailSender.from_settings(Settings())
    email.send(["dsl@hillside.sch.uk"], "Safeguarding alert", "Case 12 needs you")
    with mailbox.changed:
        assert mailbox.changed.wait_for(lambda: len(mailbox.received) == 1, WAIT)
    [got] = mailbox.received
    assert got.tls and got.authenticated  # STARTTLS by default, then AUTH
    for shown in (repr(email), caplog.text):
        assert PASSWORD not in shown


def test_the_same_key_gives_the_same_message_id(test_ca: LocalCA) -> None:
    email = sender(25, test_ca)
    first = email.build(["a@b.example"], "s", "t", idempotency_key="case:1:case_opened:email:a")
    again = email.build(["a@b.example"], "s", "t", idempotency_key="case:1:case_opened:email:a")
    other = email.build(["a@b.example"], "s", "t", idempotency_key="case:2:case_opened:email:a")
    fresh = email.build(["a@b.example"], "s", "t")
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert str(first["Message-ID"]).endswith("@hillside.sch.uk>")
    assert fresh["Message-ID"] != email.build(["a@b.example"], "s", "t")["Message-ID"]
