"""Every configuration field and every environment setting is documented in the README."""

from __future__ import annotations

import re
import tomllib

from pydantic import BaseModel

from monitor.config_models import Config
from monitor.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def field_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for candidate in re.findall(r"[A-Z]\w+", repr(info.annotation)):
            sub = getattr(
                __import__("monitor.config_models", fromlist=[candidate]), candidate, None
            )
            if isinstance(sub, type) and issubclass(sub, BaseModel) and sub is not model:
                names |= field_names(sub)
    return names


def test_every_config_field_is_in_the_readme() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.DOTALL)
    in_code = re.findall(r"`([^`\n]+)`", prose)
    missing = sorted(
        n for n in field_names(Config) if not any(re.search(rf"\b{n}\b", c) for c in in_code)
    )
    assert missing == []


def test_every_environment_setting_is_in_the_readme() -> None:
    missing = sorted(n.upper() for n in Settings.model_fields if n.upper() not in README)
    # test-only settings are deliberately undocumented for users
    assert [m for m in missing if m not in {"SLACK_BASE_URL", "HF_HOME"}] == []


def readme_setup_commands() -> tuple[list[str], str]:
    """Step 1 split at ``&&`` and step 2 as written, from the README's Set-up block."""
    block = README.split("## Set-up", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [
        line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")
    ]
    install, tests = lines
    return [part.strip() for part in install.split("&&")], tests


def test_ci_installs_exactly_as_the_readme_says() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install, tests = readme_setup_commands()
    assert install[-2:] == [".venv/bin/monitor init", ".venv/bin/monitor run"]
    position = 0
    for command in install[:-2]:  # everything but starting the service, in the same order
        found = ci.find(command.replace(" install ", " install -q "), position)
        assert found > position, command
        position = found
    assert "rm -rf .venv" in ci[: ci.find("python3 -m venv .venv")]  # a fresh environment
    # the README's test command, on SQLite and then on PostgreSQL
    quiet = tests.replace(" install ", " install -q ")
    assert quiet in ci and ci.index("unset DATABASE_URL") < ci.index(quiet)
    assert re.search(
        r'DATABASE_URL="\$\{CI_DATABASE_URL:-postgresql\+psycopg://[^}]+/test\}" \.venv/bin/pytest',
        ci,
    )
    for step in (".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy"):
        assert step in ci
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci


def test_the_example_shows_every_config_field() -> None:
    """config/example.yaml is the complete, commented example a trust copies (set or commented)."""
    example = (REPO / "config" / "example.yaml").read_text(encoding="utf-8")
    missing = sorted(
        name
        for name in field_names(Config)
        if not re.search(rf"(^[\s#-]*|[{{,]\s*)\b{name}\s*:", example, flags=re.MULTILINE)
    )
    assert missing == []


def test_the_package_metadata() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"monitor": "monitor.cli:main"}
    deps = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower(): d for d in project["dependencies"]}
    assert deps["torch"] == "torch==2.13.0"  # any other torch pulls a multi-gigabyte CUDA build
    assert re.fullmatch(r"apscheduler>=3\.\d+,<4", deps["apscheduler"])
    assert re.fullmatch(r"sqlalchemy>=2\.0,<2\.\d+", deps["sqlalchemy"])
    for name in ("atproto", "mastodon.py", "praw", "alembic", "detoxify", "slack-sdk"):
        assert name in deps, name
