"""The Bluesky peer harness itself: free ports, one start per run, one failure with its cause.

No network is started here: start.sh is replaced by small scripts.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.connectors import harness_bluesky as hb


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = hb.free_ports()
    assert set(ports) == set(hb.PORT_NAMES)
    assert len(set(ports.values())) == len(ports)
    for port in ports.values():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", int(port)))  # free: nothing else holds it


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "start.sh"
    script.write_text("#!/usr/bin/env bash\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_start_passes_free_ports_and_reports_the_cause_without_npm_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hb, "RUN_DIR", tmp_path / "run")  # nothing running from there
    seen = tmp_path / "env.txt"
    script = _script(
        tmp_path,
        f'echo "$PLC_PORT $PDS_PORT $BSKY_PORT $OZONE_PORT $PG_PORT" > {seen}\n'
        + 'for n in $(seq 1 200); do echo "npm warn deprecated pkg$n@1.0.0"; done\n'
        + 'echo "network process died; last log lines:" >&2\n'
        + 'echo "Error: listen EADDRINUSE: address already in use 127.0.0.1:2583" >&2\n'
        + "exit 1\n",
    )
    with pytest.raises(hb.NetworkStartFailed) as failed:
        hb.BlueskyNetwork.start(script)
    message = str(failed.value)
    assert "EADDRINUSE" in message and "exited with 1" in message
    assert "npm warn" not in message  # the cause is not buried in npm's warnings
    ports = seen.read_text().split()
    assert len(ports) == 5 and len(set(ports)) == 5
    assert all(p.isdigit() and p not in {"2582", "2583", "2584", "2587", "55432"} for p in ports)


def test_a_start_that_fails_is_not_retried_for_every_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[int] = []

    def start() -> Any:
        starts.append(1)
        raise hb.NetworkStartFailed("start.sh exited with 1: the real cause")

    cleanups: list[Any] = []

    class Config:
        def add_cleanup(self, fn: Any) -> None:
            cleanups.append(fn)

    monkeypatch.setattr(hb, "_PEER", None)
    monkeypatch.setattr(hb, "_PEER_FAILURE", None)
    config: Any = Config()
    with pytest.raises(pytest.fail.Exception, match="the real cause"):
        hb.shared_peer(config, start)
    for _ in range(3):  # later tests: at once, no new start
        with pytest.raises(pytest.fail.Exception, match="did not start earlier"):
            hb.shared_peer(config, start)
    assert len(starts) == 1
    for cleanup in cleanups:  # the end of the run forgets the failure
        cleanup()
    assert hb._PEER_FAILURE is None


def test_the_scripts_read_every_port_from_the_environment() -> None:
    start = (hb.PEER_DIR / "start.sh").read_text()
    network = (hb.PEER_DIR / "network.mjs").read_text()
    for name in hb.PORT_NAMES:
        assert f"{name}:-" in start or f"{name}=" in start, name
    for name in ("PLC_PORT", "PDS_PORT", "BSKY_PORT", "OZONE_PORT"):
        assert f"port('{name}'" in network, name
    assert os.access(hb.PEER_DIR / "start.sh", os.X_OK)
