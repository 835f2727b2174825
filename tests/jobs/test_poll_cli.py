"""`monitor poll --once [--account KEY]` through the real CLI, against the local reddit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from monitor.cli import app
from monitor.storage import tables as t
from tests.conftest import EXAMPLE_CONFIG
from tests.connectors.harness_reddit import RedditHarness, reddit_harness_fixture

__all__ = ["reddit_harness_fixture"]  # the fixture, imported for pytest
pytestmark = pytest.mark.peer

runner = CliRunner()
SECRETS = {"client_id": "OAK_ID", "client_secret": "OAK_SECRET", "password": "OAK_PASSWORD"}


def write_config(folder: Path, harness: RedditHarness, *, broken: bool = False) -> Path:
    """The example configuration with the school's reddit account (and a broken one)."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    ref = harness.account()
    account: dict[str, Any] = {
        "key": "oak-reddit",
        "platform": "reddit",
        "handle": ref.handle,
        "school": "oakfield",
        "admins": ["cjones", "dmurphy"],
        "options": dict(ref.options),
        "credentials": {name: {"env": variable} for name, variable in SECRETS.items()},
    }
    data["accounts"] = [account]
    if broken:
        wrong = {**account, "key": "river-reddit", "school": "riverside"}
        wrong["handle"] = "RiversideAcademy"
        wrong["admins"] = ["ewright", "fali"]
        wrong["credentials"] = {**account["credentials"], "password": {"env": "WRONG_PASSWORD"}}
        data["accounts"].append(wrong)
    # no model download in tests: the rules alone assess what was found
    data["classifier"] = {
        "checkpoint": "/nonexistent/model.ckpt",
        "huggingface_config_path": "/x",
        "concern": {"enabled": False},
    }
    path = folder / "monitor.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def poll(config: Path, harness: RedditHarness, *args: str) -> Result:
    ref = harness.account()
    env = {variable: ref.credentials[name] for name, variable in SECRETS.items()}
    env |= {"WRONG_PASSWORD": "not the password", "COLUMNS": "220"}
    return runner.invoke(app, ["poll", "--once", "--config", str(config), *args], env=env)


def row(output: str, key: str) -> list[str]:
    """The cells of the table row for ``key``."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if key in cells:
            return [c for c in cells if c]
    raise AssertionError(f"no row for {key} in:\n{output}")


def items(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(t.Item)) or 0


def test_poll_once_stores_and_shows_what_it_found_once(
    cli_env: Path, sessions: sessionmaker[Session], reddit_harness: RedditHarness
) -> None:
    h = reddit_harness
    post = h.own_post("Parents' evening is on Thursday")
    h.reply(post, "Can I book a slot online?")
    config = write_config(cli_env, h)

    first = poll(config, h)
    assert first.exit_code == 0, first.output
    key, new, streams, status = row(first.output, "oak-reddit")
    assert (key, new, status) == ("oak-reddit", "2", "ok")
    assert "posts 1" in streams and "replies 1" in streams
    assert items(sessions) == 2

    again = poll(config, h, "--account", "oak-reddit")
    assert again.exit_code == 0, again.output
    assert row(again.output, "oak-reddit")[1] == "0"
    assert items(sessions) == 2  # nothing stored twice

    unknown = poll(config, h, "--account", "nope")
    assert unknown.exit_code == 2 and "oak-reddit" in unknown.output


def test_poll_once_reports_failures_and_waits_out_a_rate_limit(
    cli_env: Path, sessions: sessionmaker[Session], reddit_harness: RedditHarness
) -> None:
    h = reddit_harness
    config = write_config(cli_env, h, broken=True)

    broken = poll(config, h)
    assert broken.exit_code == 1, broken.output
    assert row(broken.output, "oak-reddit")[-1] == "ok"
    assert row(broken.output, "river-reddit")[-1].startswith("auth:")

    only = poll(config, h, "--account", "oak-reddit")  # one account: the broken one is not tried
    assert only.exit_code == 0 and "river-reddit" not in only.output

    h.fail_next("ratelimit")
    limited = poll(config, h, "--account", "oak-reddit")
    assert limited.exit_code == 1 and "rate_limited" in row(limited.output, "oak-reddit")[-1]
    before = h.request_count()
    waiting = poll(config, h, "--account", "oak-reddit")
    assert waiting.exit_code == 1
    assert row(waiting.output, "oak-reddit")[-1].startswith("paused until")
    # a new process connects (3 requests) but never polls into the platform's retry time
    assert h.request_count() - before <= 3
