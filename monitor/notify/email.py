"""Sending alert and digest emails with smtplib: STARTTLS, login, text + HTML + inline images."""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, getaddresses, make_msgid

from pydantic import SecretStr

from monitor.notify.errors import DeliveryError
from monitor.notify.escape import clean_text, truncate
from monitor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds, per SMTP command
SUBJECT_LIMIT = 200
_CID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Image types recognised from their first bytes (inline images are charts and logos).
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def _image_subtype(data: bytes) -> str | None:
    for magic, subtype in _IMAGE_MAGIC:
        if data.startswith(magic):
            return subtype
    return None


def _address(value: str) -> str:
    # One bare address; anything that could smuggle a header or a second address is refused.
    if any(ch in value for ch in "\r\n\0"):
        raise DeliveryError(
            "email address contains a line break", permanent=True, code="bad_address"
        )
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise DeliveryError("one email address expected", permanent=True, code="bad_address")
    address = pairs[0][1]
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or " " in address:
        raise DeliveryError(f"not an email address: {value!r}", permanent=True, code="bad_address")
    return address


# A 5xx SMTP reply is final; 4xx is a temporary refusal by definition (RFC 5321).
PERMANENT_REPLIES = range(500, 600)


def _smtp_code_error(step: str, code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = truncate(" ".join(text.split()), 200)
    # 4xx is a temporary refusal by definition (RFC 5321); 5xx is final.
    return DeliveryError(
        f"SMTP {step} refused: {code} {text}", permanent=code in PERMANENT_REPLIES, code=str(code)
    )


class EmailSender:
    """Sends one email per call over a fresh SMTP connection; raises DeliveryError on failure."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: SecretStr | None,
        sender: str,
        *,
        starttls: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._sender = sender
        self._sender_address = _address(sender)
        self._starttls = starttls
        self._timeout = timeout
        # None: the system's CA store with hostname checking; tests pass their own CA.
        self._ssl_context = ssl_context

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> EmailSender:
        """A sender from ``SMTP_*`` settings."""
        if not settings.smtp_host or not settings.smtp_from:
            raise DeliveryError(
                "SMTP_HOST and SMTP_FROM must be set", permanent=True, code="not_configured"
            )
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_from,
            starttls=settings.smtp_starttls,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        # The password never appears here (nor in any log line of this module).
        return (
            f"EmailSender(host={self._host!r}, port={self._port}, username={self._username!r}, "
            f"password={'********' if self._password else None}, sender={self._sender!r}, "
            f"starttls={self._starttls})"
        )

    def message_id(self, idempotency_key: str | None = None) -> str:
        """A fresh Message-ID, or the same one every time for the same ``idempotency_key``."""
        domain = self._sender_address.rpartition("@")[2]
        if idempotency_key is None:
            return make_msgid(domain=domain)
        # A repeat after a crash mid-send carries the same Message-ID, so mail systems and
        # clients (Gmail, Exchange) recognise it as the same message, not a second one.
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
        return f"<{digest}.alert@{domain}>"

    def build(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        inline_images: Mapping[str, bytes] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> EmailMessage:
        """The message ``send`` would send: text, or text + HTML with inline images by cid."""
        recipients = [_address(value) for value in to]
        if not recipients:
            raise DeliveryError("no recipients", permanent=True, code="bad_address")
        images = dict(inline_images or {})
        if images and html is None:
            raise DeliveryError(
                "inline images need an HTML body", permanent=True, code="bad_message"
            )
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = self._sender
        message["To"] = ", ".join(recipients)
        # Subjects may quote platform text: one clean line, never a header injection.
        message["Subject"] = truncate(" ".join(clean_text(subject).split()), SUBJECT_LIMIT)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self.message_id(idempotency_key)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to alerts
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
            html_part = next(
                part for part in message.iter_parts() if part.get_content_type() == "text/html"
            )
            for cid, data in images.items():
                subtype = _image_subtype(data)
                if not _CID.match(cid):
                    raise DeliveryError(
                        f"bad Content-ID {cid!r}", permanent=True, code="bad_message"
                    )
                if subtype is None:
                    raise DeliveryError(
                        f"inline image {cid!r} is not PNG, JPEG or GIF",
                        permanent=True,
                        code="bad_message",
                    )
                # Turns the HTML part into multipart/related: html first, then the images.
                html_part.add_related(
                    data,
                    maintype="image",
                    subtype=subtype,
                    cid=f"<{cid}>",
                    disposition="inline",
                    filename=f"{cid}.{subtype}",
                )
        return message

    def send(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        inline_images: Mapping[str, bytes] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Send one message to ``to``; returns its Message-ID (stable per ``idempotency_key``)."""
        message = self.build(
            to, subject, text, html, inline_images, idempotency_key=idempotency_key
        )
        recipients = [_address(value) for value in to]
        try:
            refused = self._deliver(message, recipients)
        except smtplib.SMTPAuthenticationError as exc:
            error = _smtp_code_error("login", exc.smtp_code, exc.smtp_error)
            raise error from None  # the exception chain could carry the AUTH exchange
        except smtplib.SMTPNotSupportedError as exc:
            # No STARTTLS or no AUTH offered: never fall back to sending credentials in clear.
            raise DeliveryError(
                f"SMTP server {self._host} does not support {exc}",
                permanent=True,
                code="unsupported",
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = bool(codes) and all(code in PERMANENT_REPLIES for code in codes)
            raise DeliveryError(
                f"SMTP server refused all {len(codes)} recipient(s)",
                permanent=permanent,
                code=str(codes[0]) if codes else None,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # Sender refused, data refused, HELO refused, connect refused: by reply code.
            raise _smtp_code_error("command", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise DeliveryError(
                f"SMTP server {self._host} disconnected", code="disconnected"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"TLS certificate of {self._host} not trusted: {exc.verify_message}",
                permanent=True,
                code="tls_verify",
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused connections, timeouts, DNS failures, TLS and protocol hiccups.
            raise DeliveryError(
                f"SMTP server {self._host}:{self._port} unreachable: {type(exc).__name__}",
                code="network",
            ) from exc
        message_id = str(message["Message-ID"])
        if refused:
            log.warning(
                "Email %s: %d of %d recipient(s) refused: %s",
                message_id,
                len(refused),
                len(recipients),
                ", ".join(sorted(refused)),
            )
        log.info("Email %s sent to %d recipient(s)", message_id, len(recipients) - len(refused))
        return message_id

    def _deliver(
        self, message: EmailMessage, recipients: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.set_debuglevel(0)  # debug output would print the AUTH exchange
            smtp.ehlo()
            if self._starttls:
                context = self._ssl_context or ssl.create_default_context()
                smtp.starttls(context=context)
                smtp.ehlo()
            if self._username:
                password = self._password.get_secret_value() if self._password else ""
                smtp.login(self._username, password)
            return smtp.send_message(message, from_addr=self._sender_address, to_addrs=recipients)
