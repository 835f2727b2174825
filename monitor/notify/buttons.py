"""Slack button clicks over Socket Mode: acknowledge, hand to the handler, answer in the thread."""

from __future__ import annotations

import http.client
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from monitor.notify.errors import DeliveryError
from monitor.notify.messages import ACTION_PREFIX, BUTTON_ACTIONS
from monitor.notify.slack import SlackRef, SlackSender, make_web_client, translate_api_error
from monitor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL = 5.0  # seconds; the client reconnects when pings go unanswered
SEEN_ENVELOPES = 1000  # envelope ids remembered to drop Slack's re-deliveries


@dataclass(frozen=True)
class ButtonClick:
    """One click on a case button: who, what, which case, on which message."""

    slack_user_id: str
    action: str  # one of messages.BUTTON_ACTIONS
    case_id: int
    channel: str
    message_ts: str
    content_hash: str | None = None  # a post's buttons: the content the approver saw


POST_ACTION_PREFIX = "post:"
SHA256_HEX = 64  # characters of the approved text's digest
POST_BUTTON_ACTIONS = ("post_approve", "post_changes")


ButtonHandler = Callable[[ButtonClick], str]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse(payload: Mapping[str, Any]) -> list[tuple[ButtonClick, str]]:
    # Each case button click with the thread its answer belongs in.
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user") or {}
    container = payload.get("container") or {}
    channel_info = payload.get("channel") or {}
    message = payload.get("message") or {}
    user_id = _text(user.get("id"))
    channel = _text(channel_info.get("id")) or _text(container.get("channel_id"))
    message_ts = _text(message.get("ts")) or _text(container.get("message_ts"))
    if user_id is None or channel is None or message_ts is None:
        return []
    # A button on a reply answers in that reply's thread, not in a new one.
    thread_ts = _text(message.get("thread_ts")) or _text(container.get("thread_ts")) or message_ts
    clicks: list[tuple[ButtonClick, str]] = []
    for action in payload.get("actions") or []:
        action_id = _text(action.get("action_id")) or ""
        name = action_id.removeprefix(ACTION_PREFIX)
        value = _text(action.get("value")) or ""
        if action_id.startswith(POST_ACTION_PREFIX):
            post_click = _post_click(action_id, value, user_id, channel, message_ts)
            if post_click is not None:
                clicks.append((post_click, thread_ts))
            continue
        if not action_id.startswith(ACTION_PREFIX) or name not in BUTTON_ACTIONS:
            continue
        if not (value.isascii() and value.isdigit()):
            continue
        click = ButtonClick(user_id, name, int(value), channel, message_ts)
        clicks.append((click, thread_ts))
    return clicks


def _post_click(
    action_id: str, value: str, user_id: str, channel: str, message_ts: str
) -> ButtonClick | None:
    """A post's Approve / Request changes click: value ``<draft id>:<content hash>``."""
    name = "post_" + action_id.removeprefix(POST_ACTION_PREFIX)
    draft, _, digest = value.partition(":")
    if name not in POST_BUTTON_ACTIONS or not (draft.isascii() and draft.isdigit()):
        return None
    if len(digest) != SHA256_HEX or not all(c in "0123456789abcdef" for c in digest):
        return None
    return ButtonClick(user_id, name, int(draft), channel, message_ts, digest)


def parse_block_actions(payload: Mapping[str, Any]) -> list[ButtonClick]:
    """The case button clicks in a ``block_actions`` payload (other actions are ignored)."""
    return [click for click, _ in _parse(payload)]


class ButtonListener:
    """Receives case button clicks from Slack over Socket Mode until stopped."""

    def __init__(
        self,
        *,
        app_token: SecretStr | str,
        web_client: WebClient,
        handler: ButtonHandler,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        concurrency: int = 4,
    ) -> None:
        self._app_token = app_token if isinstance(app_token, SecretStr) else SecretStr(app_token)
        self._web_client = web_client
        self._sender = SlackSender(web_client)
        self._handler = handler
        self._ping_interval = ping_interval
        self._concurrency = concurrency
        self._client: SocketModeClient | None = None
        self._lock = threading.Lock()
        # Slack re-delivers an envelope whose ack it did not see; each is handled once.
        self._seen: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_settings(
        cls, settings: Settings, handler: ButtonHandler, **kwargs: Any
    ) -> ButtonListener:
        """A listener using ``SLACK_APP_TOKEN`` and ``SLACK_BOT_TOKEN`` (``SLACK_BASE_URL`` in tests)."""
        if settings.slack_app_token is None or settings.slack_bot_token is None:
            raise DeliveryError(
                "SLACK_APP_TOKEN and SLACK_BOT_TOKEN must be set for Slack buttons",
                permanent=True,
                code="not_configured",
            )
        client = make_web_client(settings.slack_bot_token, base_url=settings.slack_base_url)
        return cls(app_token=settings.slack_app_token, web_client=client, handler=handler, **kwargs)

    def __repr__(self) -> str:
        return f"ButtonListener(connected={self.is_connected()})"

    def start(self) -> None:
        """Open the Socket Mode connection (apps.connections.open, then the WebSocket)."""
        with self._lock:
            if self._client is not None:
                raise RuntimeError("the button listener is already running")
            client = SocketModeClient(
                app_token=self._app_token.get_secret_value(),
                web_client=self._web_client,
                ping_interval=self._ping_interval,
                concurrency=self._concurrency,
                logger=log.getChild("socket_mode"),
            )
            client.socket_mode_request_listeners.append(self._on_request)
            try:
                client.connect()
            except SlackApiError as exc:
                client.close()
                raise translate_api_error("apps.connections.open", exc) from exc
            except (OSError, http.client.HTTPException, SlackClientError) as exc:
                client.close()
                raise DeliveryError(
                    f"Slack Socket Mode unreachable: {type(exc).__name__}", code="network"
                ) from exc
            self._client = client
            log.info("Slack button listener connected")

    def stop(self) -> None:
        """Close the connection and the client's threads; safe to call twice."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
            log.info("Slack button listener stopped")

    def is_connected(self) -> bool:
        """True while the WebSocket is open."""
        client = self._client
        return client is not None and client.is_connected()

    def __enter__(self) -> ButtonListener:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        # Acknowledge first: Slack re-delivers an envelope not acknowledged within 3 seconds.
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        except Exception:  # a closed socket: Slack re-delivers, the handler must be idempotent
            log.warning("Could not acknowledge Slack envelope %s", request.envelope_id)
        if request.type != "interactive" or self._already_seen(request.envelope_id):
            return
        for click, thread_ts in _parse(request.payload):
            self._dispatch(click, thread_ts)

    def _already_seen(self, envelope_id: str) -> bool:
        with self._lock:
            if envelope_id in self._seen:
                return True
            self._seen[envelope_id] = None
            while len(self._seen) > SEEN_ENVELOPES:
                self._seen.popitem(last=False)
            return False

    def _dispatch(self, click: ButtonClick, thread_ts: str) -> None:
        try:
            outcome = self._handler(click)
        except Exception:
            log.exception("Button handler failed for %s on case %s", click.action, click.case_id)
            label = click.action.replace("_", " ")
            outcome = (
                f"Could not record {label} for case {click.case_id}. "
                "Please try again or use the dashboard."
            )
        if not outcome:
            return
        try:
            self._sender.reply_in_thread(SlackRef(click.channel, thread_ts), outcome)
        except DeliveryError as exc:
            log.warning("Could not post the button outcome for case %s: %s", click.case_id, exc)
