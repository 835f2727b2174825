"""A fleet for the scaled mode's peer tests and bench: many accounts on the local reddit, a
leader and scaled workers as separate processes, each run under its own queue and key prefix.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.servers.reddit_server import RedditServer

REPO = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "app-secret"
PASSWORD = "school-password"
PUBLIC = "parent_one"
QUEUE_SUFFIXES = ("", ".DQ", ".XQ")


def reachable(url_host: str, port: int) -> bool:
    """Whether something listens at ``url_host:port``."""
    try:
        with socket.create_connection((url_host, port), timeout=1.0):
            return True
    except OSError:
        return False


def services_up() -> bool:
    """RabbitMQ and Redis both answer (the defaults of this machine)."""
    return reachable("127.0.0.1", 5672) and reachable("127.0.0.1", 6379)


def new_prefix() -> str:
    """A queue and key namespace of this run alone (CI runs beside others never collide)."""
    return f"t{uuid.uuid4().hex[:12]}"


@dataclass
class Fleet:
    """``count`` school accounts on one local reddit, each with its own subreddit, post and app."""

    server: RedditServer
    count: int
    posts: dict[str, str] = field(default_factory=dict)  # account key -> its post's fullname

    def __post_init__(self) -> None:
        state = self.server.state
        state.add_user(PUBLIC, "public-password")
        for i in range(self.count):
            key = self.key(i)
            state.add_app(f"app-{key}", SECRET)
            state.add_user(f"school{i:03d}", PASSWORD)
            state.add_subreddit(f"sub{i:03d}", moderators=[f"school{i:03d}"])
            self.posts[key] = state.submit(
                f"school{i:03d}", f"sub{i:03d}", "News", "Hello"
            ).fullname

    @staticmethod
    def key(i: int) -> str:
        return f"acct{i:03d}"

    def comment(self, key: str, text: str) -> str:
        """A member of the public replies to ``key``'s post; returns the t1 fullname."""
        return self.server.state.comment(PUBLIC, self.posts[key], text).fullname

    def env(self) -> dict[str, str]:
        """The credentials' environment variables."""
        env = {"SCALE_SECRET": SECRET, "SCALE_PASSWORD": PASSWORD}
        env.update({f"SCALE_CLIENT_{i:03d}": f"app-{self.key(i)}" for i in range(self.count)})
        return env

    def write_config(
        self,
        path: Path,
        *,
        poll_interval: str,
        worker: dict[str, str],
        classifier: dict[str, Any] | None = None,
    ) -> Path:
        accounts = [
            {
                "key": self.key(i),
                "platform": "reddit",
                "handle": f"school{i:03d}",
                "school": "oakwood",
                "admins": ["mod", "head"],
                "approved_by": "head",
                "linked_email": "office@oakwood.example.sch.uk",
                "poll_interval": poll_interval,
                "watch_mentions": False,
                "options": {
                    "subreddits": [f"sub{i:03d}"],
                    "user_agent": "scale tests",
                    "oauth_url": self.server.url,
                    "reddit_url": self.server.url,
                    "short_url": self.server.url,
                    "timeout": 5.0,
                },
                "credentials": {
                    "client_id": {"env": f"SCALE_CLIENT_{i:03d}"},
                    "client_secret": {"env": "SCALE_SECRET"},
                    "password": {"env": "SCALE_PASSWORD"},
                },
            }
            for i in range(self.count)
        ]
        config = {
            "organisation": {"name": "Scale Test Trust"},
            "schools": [{"key": "oakwood", "name": "Oakwood Academy"}],
            "staff": [
                {"id": "dsl", "name": "Dee Lead", "roles": ["dsl"], "slack_user_id": "U0DSL"},
                {
                    "id": "mod",
                    "name": "Dan Mod",
                    "roles": ["moderator", "comms", "it_admin"],
                    "slack_user_id": "U0DAN",
                },
                {
                    "id": "head",
                    "name": "Amy Head",
                    "roles": ["principal", "slt"],
                    "slack_user_id": "U0AMY",
                },
            ],
            "accounts": accounts,
            "classifier": classifier
            or {
                "checkpoint": "/nonexistent/model.ckpt",
                "huggingface_config_path": "/nonexistent",
                "concern": {"enabled": False},  # rules only: no model at all
            },
            "routing": {"slack_default_channel": "C0ALERTS", "slack_it_channel": "C0ALERTS"},
            "worker": worker,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


def scale_env(base: dict[str, str], prefix: str) -> dict[str, str]:
    """The environment of a scaled deployment under ``prefix``."""
    return {
        **base,
        "PYTHONPATH": str(REPO),
        "MONITOR_BROKER_URL": BROKER_URL,
        "MONITOR_REDIS_URL": REDIS_URL,
        "MONITOR_SCALE_PREFIX": prefix,
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "INFO",
    }


class Proc:
    """One ``monitor`` process with its own log."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self._seen = 0

    def start(self) -> None:
        self._seen = len(self.text())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", *self.args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.pids.append(self.proc.pid)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def since_start(self) -> str:
        """What was logged since the last start."""
        return self.text()[self._seen :]

    def ready(self, marker: str) -> bool:
        """Whether ``marker`` was logged since the last start."""
        return marker in self.since_start()

    def wait_for(self, marker: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(marker):
                return
            assert self.proc is not None and self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"{self.args}: never logged {marker!r}\n{self.text()[-3000:]}")

    def kill(self) -> float:
        """SIGKILL; returns the time it was sent."""
        assert self.proc is not None
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        return at

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def clean_namespace(prefix: str) -> None:
    """Delete this run's queues and Redis keys."""
    import pika
    import redis

    from monitor.scale.broker import QUEUES

    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        channel = connection.channel()
        for name in QUEUES:
            for suffix in QUEUE_SUFFIXES:
                channel.queue_delete(f"{prefix}.{name}{suffix}")
    finally:
        connection.close()
    client: Any = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def leader_and_workers(
    fleet: Fleet,
    config: Path,
    *,
    db_url: str,
    slack_url: str,
    trace: Path,
    prefix: str,
    workers: int,
    threads: int,
) -> tuple[Proc, list[Proc]]:
    """A leader and ``workers`` scaled workers (not started) for ``fleet``, alerting to the
    local Slack at ``slack_url``, tracing their leases to ``trace``; logs beside ``trace``."""
    from monitor.scale.lease import TRACE_ENV
    from tests.servers.slack_server import BOT_TOKEN

    base = {
        **os.environ,
        **fleet.env(),
        "MONITOR_CONFIG": str(config),
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_BASE_URL": slack_url,
        TRACE_ENV: str(trace),
    }
    env = scale_env(base, prefix)
    env.pop("SLACK_APP_TOKEN", None)
    folder = trace.parent
    leader = Proc(["worker"], env, folder / "leader.log")
    scaled = [
        Proc(["worker", "--scale", "--threads", str(threads)], env, folder / f"worker{i}.log")
        for i in range(workers)
    ]
    return leader, scaled
