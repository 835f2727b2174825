"""Posting case alerts to Slack with slack-sdk; every failure becomes a DeliveryError."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from monitor.notify.errors import DeliveryError
from monitor.notify.escape import escape_mrkdwn
from monitor.notify.messages import CaseMessage, blocks_for, fallback_text
from monitor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30  # seconds, per HTTP request
THREAD_REPLY_LIMIT = 3000

# Slack error codes that no retry can fix: the token, the channel or the message is wrong.
PERMANENT_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
        "ekm_access_denied",
        "access_denied",
        "two_factor_setup_required",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "is_inactive",
        "user_not_found",
        "user_not_visible",
        "user_disabled",
        "cannot_dm_bot",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_arg_name",
        "too_many_attachments",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "method_deprecated",
        "deprecated_endpoint",
        "unknown_method",
    }
)


METADATA_EVENT = "school_monitor_alert"
HISTORY_PAGE = 200  # messages per conversations.history / conversations.replies page
MAX_PAGES = 10  # how far back ``find_keys`` looks (busy channels: 2,000 messages)


def _metadata(key: str | None, also: Sequence[str] = ()) -> dict[str, Any]:
    """Message metadata carrying the outbox key(s) (Slack keeps it with the message)."""
    if key is None:
        return {}
    payload: dict[str, Any] = {"alert_key": key}
    if also:
        payload["also"] = list(also)  # alerts merged into this message
    return {"metadata": {"event_type": METADATA_EVENT, "event_payload": payload}}


def _keys_of(message: Mapping[str, Any]) -> set[str]:
    """The outbox keys a stored message carries in its metadata."""
    metadata = message.get("metadata") or {}
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT:
        return set()
    payload = metadata.get("event_payload") or {}
    if not isinstance(payload, Mapping):
        return set()
    keys = {payload.get("alert_key")}
    also = payload.get("also")
    if isinstance(also, list):
        keys.update(also)
    return {key for key in keys if isinstance(key, str)}


@dataclass(frozen=True)
class SlackRef:
    """Where a posted message lives: its conversation and timestamp."""

    channel: str
    ts: str


@dataclass(frozen=True)
class SlackIdentity:
    """Who the bot token belongs to (from auth.test)."""

    team: str
    team_id: str
    user_id: str
    bot_id: str | None


def make_web_client(
    token: SecretStr | str, *, base_url: str | None = None, timeout: int = DEFAULT_TIMEOUT
) -> WebClient:
    """A WebClient with no automatic retries: the alert outbox owns retrying and must see 429s."""
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    url = base_url or WebClient.BASE_URL
    # Method names are joined onto the base URL: without the trailing slash "api/" is lost.
    url = url if url.endswith("/") else url + "/"
    return WebClient(
        token=value,
        base_url=url,
        timeout=timeout,
        # slack-sdk retries connection errors once by default; a retry after a dropped
        # response can post twice, and the outbox retries with backoff anyway.
        retry_handlers=[],
    )


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            if isinstance(value, list | tuple):
                return str(value[0]) if value else None
            return str(value)
    return None


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def translate_api_error(method: str, exc: SlackApiError) -> DeliveryError:
    """Our DeliveryError for a Slack API failure (rate limit, server trouble or a bad request)."""
    response = exc.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == HTTPStatus.TOO_MANY_REQUESTS or code in ("ratelimited", "rate_limited"):
        return DeliveryError(
            f"Slack {method} rate limited",
            retry_after=_retry_after(response.headers),
            code="ratelimited",
        )
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return DeliveryError(f"Slack {method} failed: HTTP {status}", code=f"http_{status}")
    if code in PERMANENT_ERRORS:
        return DeliveryError(f"Slack {method} refused: {code}", permanent=True, code=code)
    # internal_error, fatal_error, service_unavailable, request_timeout and anything new.
    return DeliveryError(f"Slack {method} failed: {code}", code=code)


class SlackSender:
    """Posts, updates and threads case alerts; raises DeliveryError, never slack-sdk errors."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: int = DEFAULT_TIMEOUT) -> SlackSender:
        """A sender using ``SLACK_BOT_TOKEN`` (and ``SLACK_BASE_URL`` in tests)."""
        if settings.slack_bot_token is None:
            raise DeliveryError("SLACK_BOT_TOKEN is not set", permanent=True, code="not_configured")
        client = make_web_client(
            settings.slack_bot_token, base_url=settings.slack_base_url, timeout=timeout
        )
        return cls(client)

    @property
    def client(self) -> WebClient:
        """The underlying WebClient (the Socket Mode listener shares it)."""
        return self._client

    def _call(
        self, method: str, call: Callable[..., SlackResponse], **kwargs: Any
    ) -> SlackResponse:
        try:
            return call(**kwargs)
        except SlackApiError as exc:
            raise translate_api_error(method, exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            # URLError, refused or reset connections, timeouts and dropped responses.
            raise DeliveryError(
                f"Slack {method} unreachable: {type(exc).__name__}", code="network"
            ) from exc
        except SlackClientError as exc:
            raise DeliveryError(
                f"Slack {method} failed: {type(exc).__name__}", code="client_error"
            ) from exc

    def auth_check(self) -> SlackIdentity:
        """Check the bot token before set-up (auth.test)."""
        data = self._call("auth.test", self._client.auth_test)
        return SlackIdentity(
            team=str(data.get("team", "")),
            team_id=str(data.get("team_id", "")),
            user_id=str(data.get("user_id", "")),
            bot_id=data.get("bot_id"),
        )

    def _message_args(self, message: CaseMessage) -> dict[str, Any]:
        return {
            "text": fallback_text(message),
            "blocks": blocks_for(message),
            # Never unfurl: a preview of a hostile link would show content in the channel.
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
            "parse": "none",
        }

    def post(
        self,
        channel: str,
        message: CaseMessage,
        *,
        key: str | None = None,
        also: Sequence[str] = (),
    ) -> SlackRef:
        """Post ``message`` to ``channel``; ``key`` (and ``also``) go in its metadata (``find``)."""
        data = self._call(
            "chat.postMessage",
            self._client.chat_postMessage,
            channel=channel,
            **self._message_args(message),
            **_metadata(key, also),
        )
        return SlackRef(channel=str(data["channel"]), ts=str(data["ts"]))

    def find(self, channel: str, key: str, *, oldest: float) -> SlackRef | None:
        """A top-level message posted here since ``oldest`` (epoch seconds) carrying ``key``.

        After a crash or a lost response between Slack accepting a post and the outbox
        recording it, this finds the message so it is adopted, not sent twice.
        """
        return self.find_keys(channel, [key], oldest=oldest).get(key)

    def find_keys(
        self,
        channel: str,
        keys: Collection[str],
        *,
        oldest: float,
        thread: SlackRef | None = None,
    ) -> dict[str, SlackRef]:
        """Which of ``keys`` messages since ``oldest`` carry: top level, or in ``thread``."""
        wanted = set(keys)
        found: dict[str, SlackRef] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            args: dict[str, Any] = {
                "channel": channel,
                "oldest": f"{oldest:.6f}",
                "limit": HISTORY_PAGE,
                "include_all_metadata": True,
            }
            if cursor:
                args["cursor"] = cursor
            if thread is None:
                data = self._call(
                    "conversations.history", self._client.conversations_history, **args
                )
            else:
                data = self._call(
                    "conversations.replies",
                    self._client.conversations_replies,
                    ts=thread.ts,
                    **args,
                )
            for stored in data.get("messages") or []:
                if thread is not None and stored.get("ts") == thread.ts:
                    continue  # conversations.replies lists the parent first
                for key in _keys_of(stored) & wanted:
                    found.setdefault(key, SlackRef(channel=channel, ts=str(stored["ts"])))
            if wanted <= set(found):
                break
            metadata = data.get("response_metadata") or {}
            cursor = metadata.get("next_cursor") if isinstance(metadata, Mapping) else None
            if not data.get("has_more") or not cursor:
                break
        return found

    def update(self, ref: SlackRef, message: CaseMessage) -> None:
        """Replace the message at ``ref`` with the new state of the case."""
        # chat.update defaults parse to "client", unlike chat.postMessage: say "none" again.
        self._call(
            "chat.update",
            self._client.chat_update,
            channel=ref.channel,
            ts=ref.ts,
            **self._message_args(message),
        )

    def reply_in_thread(
        self, ref: SlackRef, text: str, *, key: str | None = None, also: Sequence[str] = ()
    ) -> SlackRef:
        """Post ``text`` (plain, escaped) as a reply in the thread of the message at ``ref``."""
        data = self._call(
            "chat.postMessage",
            self._client.chat_postMessage,
            channel=ref.channel,
            thread_ts=ref.ts,
            text=escape_mrkdwn(text, limit=THREAD_REPLY_LIMIT) or "…",
            mrkdwn=False,
            unfurl_links=False,
            unfurl_media=False,
            link_names=False,
            parse="none",
            **_metadata(key, also),
        )
        return SlackRef(channel=str(data["channel"]), ts=str(data["ts"]))

    def post_text(
        self,
        channel: str,
        text: str,
        *,
        key: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> SlackRef:
        """Post a short plain notice (an operational alert without a case); ``blocks`` (built
        by this project, e.g. a post's Approve / Request changes buttons) go with it."""
        extra: dict[str, Any] = {"blocks": blocks} if blocks else {}
        data = self._call(
            "chat.postMessage",
            self._client.chat_postMessage,
            channel=channel,
            **_metadata(key),
            **extra,
            text=escape_mrkdwn(text, limit=THREAD_REPLY_LIMIT) or "…",
            mrkdwn=False,
            unfurl_links=False,
            unfurl_media=False,
            link_names=False,
            parse="none",
        )
        return SlackRef(channel=str(data["channel"]), ts=str(data["ts"]))

    def open_dm(self, user_id: str) -> str:
        """The id of the direct-message conversation with ``user_id`` (conversations.open)."""
        data = self._call("conversations.open", self._client.conversations_open, users=user_id)
        channel = data.get("channel")
        if not isinstance(channel, dict) or not channel.get("id"):
            raise DeliveryError("Slack conversations.open returned no channel", code="bad_response")
        return str(channel["id"])

    def dm(self, user_id: str, message: CaseMessage) -> SlackRef:
        """Send ``message`` to one person directly (the DSL for safeguarding)."""
        return self.post(self.open_dm(user_id), message)
