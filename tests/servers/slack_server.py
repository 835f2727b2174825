"""A local Slack Web API and Socket Mode server for tests, answering as Slack does.

No Slack emulator exists, so this one follows Slack's published method reference
(docs.slack.dev; the machine-readable copy in slack-ruby/slack-api-ref):

- ``POST /api/<method>`` with JSON or form bodies; the token comes from
  ``Authorization: Bearer`` or a ``token`` parameter. Every answer is HTTP 200 JSON
  ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``, except rate limits
  (HTTP 429, ``Retry-After`` header, ``{"ok": false, "error": "ratelimited"}``).
- ``auth.test``, ``chat.postMessage`` (with ``thread_ts`` and ``metadata``), ``chat.update``,
  ``conversations.open``, ``conversations.history`` and ``conversations.replies`` (newest or
  oldest first as Slack orders them, paged with ``cursor``) with a bot token (``xoxb-``);
  ``apps.connections.open`` with an app-level token (``xapp-``) returns
  ``{"ok": true, "url": "ws://127.0.0.1:PORT/link/..."}``.
- Block Kit payloads are checked against the documented limits (header 150 characters,
  section text 3,000, 10 fields of 2,000, 25 action elements, button text 75, value
  2,000, 50 blocks) and refused with ``invalid_blocks`` and json-pointer messages.
- The Socket Mode WebSocket sends ``hello``, then envelopes the test injects
  (``{"envelope_id", "type": "interactive", "accepts_response_payload": false,
  "payload": {"type": "block_actions", ...}}``), and records the client's acks.

It records every message, counts every request and injects faults (the next N calls
answer 429, 5xx, a Slack error, or drop the connection without a response; or carry the
call out and then lose the response, or carry it out and hold the response back until
released, which lets a test kill the client mid-delivery).
Waiting is done on a condition variable (``wait_for``), never by sleeping.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server as WsServer
from websockets.sync.server import ServerConnection, serve

BOT_TOKEN = "xoxb-1-local-test-bot-token"
APP_TOKEN = "xapp-1-A0LOCAL-1-local-test-app-token"
TEAM_ID = "T0LOCAL"
TEAM_NAME = "Local School"
APP_ID = "A0LOCAL"
BOT_ID = "B0LOCAL"
BOT_USER_ID = "U0BOT"
DEFAULT_CHANNELS = {"C0ALERTS": True, "C0SAFE": True, "C0OUTSIDE": False}
DEFAULT_USERS = ("U0DSL", "U0DAN", "U0AMY")
TEXT_TRUNCATE_AT = 40_000  # chat.postMessage: "no more than 40,000 characters or risk truncation"

BOT_METHODS = (
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "conversations.open",
    "conversations.history",
    "conversations.replies",
)
APP_METHODS = ("apps.connections.open",)
FAULT_KINDS = ("ratelimited", "server_error", "error", "drop", "lose_response", "hold")
HOLD_LIMIT = 60.0  # seconds a held response waits for release() before it is sent anyway


@dataclass
class Message:
    """A message as the server stores it (blocks get a ``block_id`` as in Slack)."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    params: dict[str, Any]
    edits: list[dict[str, Any]] = field(default_factory=list)  # earlier versions

    def button(self, action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The actions block and the button with ``action_id``; KeyError if absent."""
        for block in self.blocks or []:
            if block.get("type") != "actions":
                continue
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return block, element
        raise KeyError(f"no button {action_id!r} in message {self.ts}")


@dataclass(frozen=True)
class Request:
    """One HTTP request as received."""

    method: str
    params: dict[str, Any]
    token: str | None
    status: int  # what the server answered (0 for a dropped connection)
    error: str | None


@dataclass(frozen=True)
class Ack:
    """A Socket Mode acknowledgement sent by the client."""

    envelope_id: str
    payload: Any
    session: int


@dataclass
class _Fault:
    kind: str
    remaining: int
    method: str | None
    retry_after: int
    error: str
    status: int


class _Session:
    def __init__(self, number: int, conn: ServerConnection) -> None:
        self.number = number
        self.conn = conn


class BlockErrors:
    """Collects Block Kit validation errors with json pointers, like Slack's messages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def text_object(self, obj: Any, pointer: str, *, limit: int, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.add("must be an object", pointer)
            return
        kind = obj.get("type")
        allowed = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
        if kind not in allowed:
            self.add(f"must be one of {sorted(allowed)}", f"{pointer}/type")
            return
        extra = set(obj) - {"type", "text", "emoji" if kind == "plain_text" else "verbatim"}
        for key in sorted(extra):
            self.add("unsupported property", f"{pointer}/{key}")
        text = obj.get("text")
        if not isinstance(text, str):
            self.add("must be a string", f"{pointer}/text")
        elif len(text) < 1:
            self.add("must be more than 0 characters", f"{pointer}/text")
        elif len(text) > limit:
            self.add(f"must be less than {limit + 1} characters", f"{pointer}/text")

    def button(self, element: dict[str, Any], pointer: str, action_ids: set[str]) -> None:
        self.text_object(element.get("text"), f"{pointer}/text", limit=75, plain_only=True)
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 1 <= len(action_id) <= 255:
                self.add("must be 1-255 characters", f"{pointer}/action_id")
            elif action_id in action_ids:
                self.add("action_id already exists", f"{pointer}/action_id")
            else:
                action_ids.add(action_id)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            self.add("must be a string of at most 2000 characters", f"{pointer}/value")
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            self.add("must be a string of at most 3000 characters", f"{pointer}/url")
        if element.get("style") not in (None, "primary", "danger"):
            self.add("must be primary or danger", f"{pointer}/style")
        confirm = element.get("confirm")
        if confirm is not None:
            limits = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
            for key, limit in limits.items():
                self.text_object(
                    confirm.get(key),
                    f"{pointer}/confirm/{key}",
                    limit=limit,
                    plain_only=key != "text",
                )

    def blocks(self, blocks: Any) -> None:
        if not isinstance(blocks, list):
            self.add("must be an array", "/blocks")
            return
        if len(blocks) > 50:
            self.add("must provide no more than 50 items", "/blocks")
        block_ids: set[str] = set()
        action_ids: set[str] = set()
        for index, block in enumerate(blocks):
            pointer = f"/blocks/{index}"
            if not isinstance(block, dict):
                self.add("must be an object", pointer)
                continue
            self._block_id(block, pointer, block_ids)
            kind = block.get("type")
            check = self._BLOCK_CHECKS.get(kind) if isinstance(kind, str) else None
            if check is not None:
                check(self, block, pointer, action_ids)
            elif kind not in ("divider", "image", "rich_text", "markdown"):
                self.add(f"unknown block type {kind!r}", f"{pointer}/type")

    def _block_id(self, block: dict[str, Any], pointer: str, block_ids: set[str]) -> None:
        block_id = block.get("block_id")
        if block_id is None:
            return
        if not isinstance(block_id, str) or len(block_id) > 255:
            self.add("must be at most 255 characters", f"{pointer}/block_id")
        elif block_id in block_ids:
            self.add("block_id already exists", f"{pointer}/block_id")
        block_ids.add(str(block_id))

    def _header(self, block: dict[str, Any], pointer: str, _action_ids: set[str]) -> None:
        self.text_object(block.get("text"), f"{pointer}/text", limit=150, plain_only=True)

    def _section(self, block: dict[str, Any], pointer: str, _action_ids: set[str]) -> None:
        if "text" not in block and "fields" not in block:
            self.add("must provide either text or fields", pointer)
        if "text" in block:
            self.text_object(block["text"], f"{pointer}/text", limit=3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                self.add("must provide 1-10 items", f"{pointer}/fields")
            else:
                for number, item in enumerate(fields):
                    self.text_object(item, f"{pointer}/fields/{number}", limit=2000)

    def _context(self, block: dict[str, Any], pointer: str, _action_ids: set[str]) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            self.add("must provide 1-10 items", f"{pointer}/elements")
            return
        for number, item in enumerate(elements):
            if isinstance(item, dict) and item.get("type") == "image":
                continue
            self.text_object(item, f"{pointer}/elements/{number}", limit=3000)

    def _actions(self, block: dict[str, Any], pointer: str, action_ids: set[str]) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            self.add("must provide 1-25 items", f"{pointer}/elements")
            return
        for number, item in enumerate(elements):
            item_pointer = f"{pointer}/elements/{number}"
            if not isinstance(item, dict) or item.get("type") != "button":
                self.add("only buttons are supported here", item_pointer)
            else:
                self.button(item, item_pointer, action_ids)

    # Block Kit's block types with their own rules (the others need only their type).
    _BLOCK_CHECKS: ClassVar[dict[str, Callable[[Any, dict[str, Any], str, set[str]], None]]] = {
        "header": _header,
        "section": _section,
        "context": _context,
        "actions": _actions,
    }


class SlackServer:
    """The local Slack: start(), point a WebClient at ``base_url``, inspect, stop()."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        channels: Mapping[str, bool] | None = None,
        users: Iterable[str] = DEFAULT_USERS,
        ts_base: float | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        # channel id -> whether the bot is a member
        self._channels: dict[str, bool] = dict(DEFAULT_CHANNELS if channels is None else channels)
        self._users = set(users)
        self._dms: dict[str, str] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[Message] = []
        self._requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._released = threading.Event()
        self._held = 0
        self._acks: list[Ack] = []
        self._tickets: set[str] = set()
        self._sessions: dict[int, _Session] = {}
        self._session_numbers = itertools.count(1)
        self._sessions_opened = 0
        self._ts_counter = itertools.count(1)
        # message timestamps count up from here: Slack's clock (tests with a fixed "now" set it)
        self._ts_base = int(time.time() if ts_base is None else ts_base)
        self._http: ThreadingHTTPServer | None = None
        self._ws: WsServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> SlackServer:
        """Listen on free loopback ports (HTTP and WebSocket)."""
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._ws = serve(self._ws_session, "127.0.0.1", 0)
        http_server = self._http
        # A short poll interval keeps stop() quick (shutdown waits for the next poll).
        targets = (lambda: http_server.serve_forever(poll_interval=0.05), self._ws.serve_forever)
        for target in targets:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        self.release()
        self.close_sockets()
        if self._ws is not None:
            self._ws.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The HTTP port."""
        assert self._http is not None, "server not started"
        return int(self._http.server_address[1])

    @property
    def base_url(self) -> str:
        """What WebClient(base_url=...) needs (SLACK_BASE_URL)."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def ws_port(self) -> int:
        """The Socket Mode WebSocket port."""
        assert self._ws is not None, "server not started"
        return int(self._ws.socket.getsockname()[1])

    # -- inspection -------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` holds (re-checked on every change) or ``timeout``."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    @property
    def messages(self) -> list[Message]:
        """Every stored message, in posting order."""
        with self._lock:
            return list(self._messages)

    def message(self, channel: str, ts: str) -> Message:
        """The message at ``channel``/``ts``; KeyError if there is none."""
        with self._lock:
            for message in self._messages:
                if message.channel == channel and message.ts == ts:
                    return message
        raise KeyError((channel, ts))

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread, oldest first."""
        with self._lock:
            return [m for m in self._messages if m.channel == channel and m.thread_ts == thread_ts]

    @property
    def requests(self) -> list[Request]:
        """Every request received, in order."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None) -> int:
        """How many requests arrived (for ``method`` only, if given)."""
        with self._lock:
            return sum(1 for r in self._requests if method is None or r.method == method)

    @property
    def acks(self) -> list[Ack]:
        """Socket Mode acknowledgements received, in order."""
        with self._lock:
            return list(self._acks)

    @property
    def sessions_opened(self) -> int:
        """How many Socket Mode connections were accepted so far."""
        with self._lock:
            return self._sessions_opened

    @property
    def connected_sessions(self) -> int:
        """How many Socket Mode connections are open now."""
        with self._lock:
            return len(self._sessions)

    def dm_channel(self, user_id: str) -> str:
        """The DM conversation id conversations.open gives for ``user_id``."""
        return "D" + user_id.removeprefix("U").removeprefix("W")

    # -- faults -----------------------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        retry_after: int = 30,
        error: str = "internal_error",
        status: int = 500,
    ) -> None:
        """Make the next ``count`` calls (of ``method``, else of any method) fail as ``kind``."""
        # kind: "ratelimited" (429 + Retry-After), "server_error" (``status``, HTML body),
        # "error" (HTTP 200 {"ok": false, "error": error}), "drop" (closed, no response);
        # "lose_response" (carried out, then closed without a response: the client cannot
        # know it worked), "hold" (carried out, the response held back until ``release()``).
        if kind not in FAULT_KINDS:
            raise ValueError(kind)
        with self._lock:
            self._faults.append(_Fault(kind, count, method, retry_after, error, status))

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method):
                    fault.remaining -= 1
                    return fault
        return None

    @property
    def held(self) -> int:
        """How many responses are being held back now ("hold" faults)."""
        with self._lock:
            return self._held

    def release(self) -> None:
        """Send every held response now and hold no more (the client may be gone by then)."""
        self._released.set()

    # -- Socket Mode ------------------------------------------------------------------

    def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "interactive",
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Send an envelope to the newest open connection; returns its envelope_id."""
        # An earlier envelope_id with retry_attempt > 0 re-delivers it, as Slack does when
        # it saw no acknowledgement in time.
        envelope_id = envelope_id or secrets.token_hex(8)
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        with self._lock:
            if not self._sessions:
                raise RuntimeError("no Socket Mode connection is open")
            session = self._sessions[max(self._sessions)]
        session.conn.send(json.dumps(envelope))
        return envelope_id

    def click(self, message: Message, action_id: str, *, user_id: str = "U0DAN") -> str:
        """Press the button ``action_id`` of ``message`` as ``user_id``; returns the envelope id."""
        block, button = message.button(action_id)
        return self.send_envelope(self.block_actions_payload(message, block, button, user_id))

    def block_actions_payload(
        self, message: Message, block: dict[str, Any], button: dict[str, Any], user_id: str
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for a click on ``button``, shaped as Slack sends it."""
        action_ts = f"{time.time():.6f}"
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        }
        stored: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": message.text or "",
            "ts": message.ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "blocks": message.blocks or [],
        }
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
            stored["thread_ts"] = message.thread_ts
        action = {
            "action_id": button["action_id"],
            "block_id": block["block_id"],
            "text": button["text"],
            "type": "button",
            "action_ts": action_ts,
        }
        for key in ("value", "style"):
            if key in button:
                action[key] = button[key]
        return {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user_id.lower(),
                "name": user_id.lower(),
                "team_id": TEAM_ID,
            },
            "api_app_id": APP_ID,
            "token": "local-verification-token",
            "container": container,
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(6)}",
            "team": {"id": TEAM_ID, "domain": "local-school"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": message.channel.lower()},
            "message": stored,
            "state": {"values": {}},
            "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/1/{secrets.token_hex(8)}",
            "actions": [action],
        }

    def close_sockets(self) -> None:
        """Close every Socket Mode connection from the server side (as Slack does on refresh)."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):
                session.conn.close()

    def _ws_session(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        query = dict(parse_qsl(urlsplit(conn.request.path).query))
        with self._lock:
            valid = (
                query.get("ticket") in self._tickets
                and urlsplit(conn.request.path).path == "/link/"
            )
            if valid:
                self._tickets.discard(query["ticket"])
        if not valid:
            conn.close(code=1008, reason="invalid ticket")
            return
        number = next(self._session_numbers)
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {
                "host": "applink-local",
                "build_number": 1,
                "approximate_connection_time": 3600,
            },
            "connection_info": {"app_id": APP_ID},
        }
        conn.send(json.dumps(hello))
        with self._changed:
            self._sessions[number] = _Session(number, conn)
            self._sessions_opened += 1
            self._changed.notify_all()
        try:
            for raw in conn:
                try:
                    data = json.loads(raw)
                except (TypeError, ValueError):
                    continue
                if isinstance(data, dict) and "envelope_id" in data:
                    with self._changed:
                        self._acks.append(
                            Ack(str(data["envelope_id"]), data.get("payload"), number)
                        )
                        self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                self._sessions.pop(number, None)
                self._changed.notify_all()

    # -- Web API ----------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{self._ts_base}.{next(self._ts_counter):06d}"

    def handle(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, str], bytes | None]:
        """Answer one Web API call: (HTTP status, headers, body); body None drops the connection."""
        fault = self._take_fault(method)
        status, headers, body, error = (
            200,
            {"Content-Type": "application/json; charset=utf-8"},
            None,
            None,
        )
        if fault is not None and fault.kind == "drop":
            self._record(method, params, token, 0, "dropped")
            return 0, {}, None
        if fault is not None and fault.kind == "ratelimited":
            status, error = 429, "ratelimited"
            headers["Retry-After"] = str(fault.retry_after)
            result: dict[str, Any] = {"ok": False, "error": "ratelimited"}
        elif fault is not None and fault.kind == "server_error":
            self._record(method, params, token, fault.status, f"http_{fault.status}")
            html = f"<html><body><h1>{fault.status} Server Error</h1></body></html>".encode()
            return fault.status, {"Content-Type": "text/html; charset=utf-8"}, html
        elif fault is not None and fault.kind in ("lose_response", "hold"):
            result = self._dispatch(method, params, token)  # done, whatever the client hears
            self._record(method, params, token, 0, fault.kind)
            if fault.kind == "lose_response":
                return 0, {}, None
            with self._changed:
                self._held += 1
                self._changed.notify_all()
            self._released.wait(HOLD_LIMIT)
            with self._changed:
                self._held -= 1
                self._changed.notify_all()
            return status, headers, json.dumps(result).encode("utf-8")
        elif fault is not None:
            result = {"ok": False, "error": fault.error}
        else:
            result = self._dispatch(method, params, token)
        error = None if result.get("ok") else str(result.get("error"))
        self._record(method, params, token, status, error)
        body = json.dumps(result).encode("utf-8")
        return status, headers, body

    def _record(
        self, method: str, params: dict[str, Any], token: str | None, status: int, error: str | None
    ) -> None:
        with self._changed:
            self._requests.append(Request(method, params, token, status, error))
            self._changed.notify_all()

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method in APP_METHODS:
            if token.startswith("xapp-"):
                return None if secrets.compare_digest(token, self.app_token) else "invalid_auth"
            return "not_allowed_token_type" if token == self.bot_token else "invalid_auth"
        if token.startswith("xapp-"):
            return "not_allowed_token_type" if token == self.app_token else "invalid_auth"
        return None if secrets.compare_digest(token, self.bot_token) else "invalid_auth"

    def _dispatch(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "apps.connections.open": self._connections_open,
        }
        if method not in handlers:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return {"ok": False, "error": auth_error}
        with self._lock:
            return handlers[method](params)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://local-school.slack.com/",
            "team": TEAM_NAME,
            "user": "school_monitor",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _channel_error(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or channel not in self._channels:
            return "channel_not_found"
        if not self._channels[channel]:
            return "not_in_channel"
        return None

    def _content(
        self, params: dict[str, Any]
    ) -> tuple[str | None, list[dict[str, Any]] | None, dict[str, Any] | None]:
        # (text, blocks, error response)
        text = params.get("text")
        blocks = params.get("blocks")
        if isinstance(blocks, str):  # form-encoded requests send blocks as a JSON string
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return None, None, {"ok": False, "error": "invalid_blocks_format"}
        if blocks is not None:
            checker = BlockErrors()
            checker.blocks(blocks)
            if checker.errors:
                return (
                    None,
                    None,
                    {
                        "ok": False,
                        "error": "invalid_blocks",
                        "errors": checker.errors,
                        "response_metadata": {"messages": [f"[ERROR] {e}" for e in checker.errors]},
                    },
                )
            blocks = [dict(block) for block in blocks]
            for block in blocks:  # Slack assigns a block_id to every stored block
                block.setdefault("block_id", secrets.token_urlsafe(4))
        if (text is None or text == "") and not blocks:
            return None, None, {"ok": False, "error": "no_text"}
        if isinstance(text, str) and len(text) > TEXT_TRUNCATE_AT:
            text = text[:TEXT_TRUNCATE_AT]
        return text, blocks, None

    def _message_json(self, message: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": message.ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": message.text or "",
            "team": TEAM_ID,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": "School Monitor",
                "team_id": TEAM_ID,
            },
        }
        if message.blocks:
            data["blocks"] = message.blocks
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
            data["parent_user_id"] = BOT_USER_ID
        metadata = message.params.get("metadata")
        if isinstance(metadata, str):  # form-encoded requests send it as a JSON string
            metadata = json.loads(metadata)
        if isinstance(metadata, dict):
            data["metadata"] = metadata
        return data

    def _page(
        self, found: list[Message], params: dict[str, Any], *, with_metadata: bool
    ) -> dict[str, Any]:
        # Slack pages with an opaque cursor; here it is the offset, base64-free but opaque enough.
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        cursor = str(params.get("cursor") or "")
        start = int(cursor.removeprefix("off:")) if cursor.startswith("off:") else 0
        page = found[start : start + limit]
        out = []
        for message in page:
            data = self._message_json(message)
            if not with_metadata:
                data.pop("metadata", None)
            out.append(data)
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": f"off:{start + limit}" if more else ""},
        }

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        # As Slack: newest first, only top-level messages (thread replies live in
        # conversations.replies), metadata only with include_all_metadata.
        channel = params.get("channel")
        if channel not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            m
            for m in reversed(self._messages)
            if m.channel == channel and m.thread_ts is None and float(m.ts) > oldest
        ]
        return {**self._page(found, params, with_metadata=with_metadata), "pin_count": 0}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        # As Slack: the parent first, then its replies oldest first; metadata only with
        # include_all_metadata; thread_not_found for a ts that is not a message here.
        channel = params.get("channel")
        if channel not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = params.get("ts")
        parent = next((m for m in self._messages if m.channel == channel and m.ts == ts), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        replies = [
            m
            for m in self._messages
            if m.channel == channel and m.thread_ts == ts and float(m.ts) > oldest
        ]
        return self._page([parent, *replies], params, with_metadata=with_metadata)

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        channel_error = self._channel_error(channel)
        if channel_error:
            return {"ok": False, "error": channel_error}
        text, blocks, error = self._content(params)
        if error:
            return error
        thread_ts = params.get("thread_ts") or None
        message = Message(str(channel), self._next_ts(), text, blocks, thread_ts, dict(params))
        self._messages.append(message)
        self._changed.notify_all()
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        channel_error = self._channel_error(channel)
        if channel_error:
            return {"ok": False, "error": channel_error}
        target = next(
            (m for m in self._messages if m.channel == channel and m.ts == params.get("ts")), None
        )
        if target is None:
            return {"ok": False, "error": "message_not_found"}
        text, blocks, error = self._content(params)
        if error:
            return error
        target.edits.append({"text": target.text, "blocks": target.blocks, "params": target.params})
        target.text, target.blocks, target.params = text, blocks, dict(params)
        self._changed.notify_all()
        return {
            "ok": True,
            "channel": target.channel,
            "ts": target.ts,
            "text": target.text or "",
            "message": self._message_json(target),
        }

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = params.get("users")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        ids = [user.strip() for user in str(users).split(",") if user.strip()]
        if len(ids) != 1:
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        user = ids[0]
        if user not in self._users:
            return {"ok": False, "error": "user_not_found"}
        dm = self.dm_channel(user)
        already_open = user in self._dms
        self._dms[user] = dm
        self._channels[dm] = True
        if already_open:
            return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": dm}}
        return {"ok": True, "channel": {"id": dm}}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)
        return {
            "ok": True,
            "url": f"ws://127.0.0.1:{self.ws_port}/link/?ticket={ticket}&app_id={APP_ID}",
        }


def _parse_params(handler: BaseHTTPRequestHandler) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(urlsplit(handler.path).query))
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if raw and content_type == "application/json":
        body = json.loads(raw.decode("utf-8"))
        if isinstance(body, dict):
            params.update(body)
    elif raw:
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    return params


def _handler_for(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if not path.startswith("/api/"):
                self.send_error(404)
                return
            try:
                params = _parse_params(self)
            except ValueError:
                params = {"_unparseable": True}
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
            token = token or (str(params.pop("token")) if params.get("token") else None)
            params.pop("token", None)
            status, headers, body = server.handle(path.removeprefix("/api/"), params, token)
            if body is None:
                # A dropped connection: no status line, no body, just a closed socket.
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            # a held response may find its client gone (killed by the test): nothing to answer
            with contextlib.suppress(OSError):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = do_POST

    return Handler


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[SlackServer]:
    """A started SlackServer, stopped afterwards."""
    server = SlackServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()
