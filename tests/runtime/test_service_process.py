"""The service as a process: health endpoints, clean SIGTERM, and a standby taking over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(db_url: str, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db_url,
        "MONITOR_CONFIG": str(EXAMPLE_CONFIG),
    }
    env["MONITOR_DATA_DIR"] = str(tmp_path / "data")
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SMTP_HOST"):
        env.pop(name, None)
    return env


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_run_serves_health_and_stops_cleanly(
    db_url: str, migrated_engine: object, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--port", str(port)],
            cwd=tmp_path,
            env=environment(db_url, tmp_path),
            stdout=out,
            stderr=out,
        )
    try:

        def ready() -> bool:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.HTTPError:
                return False
            return answer.status_code == 200 and answer.json()["worker"]["role"] == "leader"

        assert wait_for(ready, 90), log.read_text()[-3000:]

        def polled() -> bool:
            # the example's account is polled from the first start (it fails here: no network)
            with migrated_engine.connect() as conn:  # type: ignore[attr-defined]
                return bool(
                    conn.exec_driver_sql(
                        "SELECT count(*) FROM account_health WHERE last_attempt_at IS NOT NULL"
                    ).scalar()
                )

        assert wait_for(polled, 60), log.read_text()[-3000:]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "now leads" in text and "Traceback" not in text


def test_a_standby_worker_takes_over_when_the_leader_dies(
    db_url: str, migrated_engine: object, tmp_path: Path
) -> None:
    env = environment(db_url, tmp_path)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "monitor", "worker"],
                    cwd=tmp_path,
                    env=env,
                    stdout=out,
                    stderr=out,
                )
            )
        if log is logs[0]:
            assert wait_for(lambda: "now leads" in logs[0].read_text(), 90), logs[0].read_text()[
                -3000:
            ]
    try:
        assert wait_for(lambda: "standby" in logs[1].read_text(), 90), logs[1].read_text()[-3000:]
        assert "now leads" not in logs[1].read_text()  # never two leaders
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=30)
        killed_at = time.monotonic()
        assert wait_for(lambda: "now leads" in logs[1].read_text(), 60), logs[1].read_text()[-3000:]
        assert time.monotonic() - killed_at < 60  # takes over within a minute
        procs[1].send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly too
        assert procs[1].wait(timeout=60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def test_web_alone_serves_health_and_stops_on_ctrl_c(
    db_url: str, migrated_engine: object, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "web", "--port", str(port)],
            cwd=tmp_path,
            env=environment(db_url, tmp_path),
            stdout=out,
            stderr=out,
        )
    try:

        def ready() -> bool:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.HTTPError:
                return False
            return answer.status_code == 200

        assert wait_for(ready, 60), log.read_text()[-3000:]
        body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
        assert body["status"] == "ready" and "worker" not in body  # no worker in this process
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()
