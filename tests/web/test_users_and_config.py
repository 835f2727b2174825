"""`monitor user add|reset` and the `web` configuration section."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config_models import Web
from monitor.storage import tables as t

runner = CliRunner()
GOOD = "a long enough password"


def test_user_add_then_reset_stores_argon2_hashes_and_audits(
    cli_env: Path, sessions: sessionmaker[Session]
) -> None:
    added = runner.invoke(app, ["user", "add", "aokafor"], input=f"{GOOD}\n{GOOD}\n")
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["user", "add", "aokafor"], input=f"{GOOD}\n{GOOD}\n")
    assert again.exit_code == 1 and "already has a local account" in again.output
    reset = runner.invoke(app, ["user", "reset", "aokafor", "--totp"], input=f"{GOOD}!\n{GOOD}!\n")
    assert reset.exit_code == 0 and "otpauth://totp/" in reset.output
    short = runner.invoke(app, ["user", "reset", "aokafor"], input="short\nshort\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    nobody = runner.invoke(app, ["user", "reset", "nobody"], input=f"{GOOD}\n{GOOD}\n")
    assert nobody.exit_code == 1
    with sessions() as session:
        login = session.scalars(select(t.LocalLogin)).one()
        assert login.password_hash.startswith("$argon2id$") and GOOD not in login.password_hash
        assert login.totp_secret
        actions = [e.action for e in session.scalars(select(t.AuditEvent))]
        assert "web.account_added" in actions and "web.account_reset" in actions


@pytest.mark.parametrize(
    ("web", "problem"),
    [
        ({"local_accounts": False}, "nobody could sign in"),
        ({"oidc": {"issuer": "https://id.test", "client_id": "x"}}, "needs web.public_url"),
        (
            {
                "public_url": "https://m.test",
                "oidc": {"issuer": "https://id.test/", "client_id": "x"},
            },
            "trailing slash",
        ),
        ({"public_url": "m.test"}, r"not an http\(s\) URL"),
        ({"session_idle": "13h"}, "cannot be longer"),
    ],
)
def test_web_config_problems(web: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Web.model_validate(web)


def test_secure_cookies_follow_the_public_url() -> None:
    assert Web.model_validate({"public_url": "https://m.test"}).cookies_secure
    assert not Web.model_validate({"public_url": "http://127.0.0.1:8080"}).cookies_secure
    assert Web.model_validate({"secure_cookies": True}).cookies_secure
