"""The deployment files say what the README promises (no Docker engine runs here to build them)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_compose_has_app_and_postgres_with_health_checks_and_volumes() -> None:
    spec = compose()
    app, db = spec["services"]["app"], spec["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in spec["volumes"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["env_file"] == ".env"
    assert "monitor db upgrade" in " ".join(app["command"])
    assert any(v.startswith("models:") for v in app["volumes"])
    # the generated audit key outlives the container (issue 13): a new key each time would
    # leave the log unverifiable with the key at hand
    assert "appdata:/var/lib/monitor/data" in [v.split("#")[0].strip() for v in app["volumes"]]
    assert "appdata" in spec["volumes"]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])


def test_compose_keeps_secrets_out_and_the_database_private() -> None:
    spec = compose()
    app, db = spec["services"]["app"], spec["services"]["db"]
    assert "ports" not in db  # PostgreSQL is reachable only from the app's network
    assert all(str(p).startswith("127.0.0.1:") for p in app["ports"])  # behind a proxy
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert spec["secrets"]["postgres_password"]["file"] == "./secrets/postgres_password"
    for service in (app, db):
        for value in (service.get("environment") or {}).values():
            assert not re.search(r"(?i)password\s*[:=]|://[^@/]+:[^@/]+@", str(value))
    assert "./monitor.yaml:/etc/monitor/monitor.yaml:ro" in app["volumes"]
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and "secrets/" in ignored


def test_stop_is_clean_signals_reach_monitor_and_it_has_time() -> None:
    app = compose()["services"]["app"]
    script = app["command"][-1]
    assert "exec monitor run" in script  # monitor is PID 1 and receives SIGTERM
    grace = re.fullmatch(r"(\d+)s", app["stop_grace_period"])
    assert grace and int(grace.group(1)) >= 30
    [cmd] = [args for word, args in dockerfile_instructions() if word == "CMD"]
    assert "exec monitor run" in cmd and "monitor db upgrade" in cmd


def test_dockerfile_is_slim_cpu_and_non_root() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim AS app")
    runs = " ".join(args for word, args in instructions if word == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in runs
    # torch first from the CPU index, then the project (which pins the same torch)
    assert runs.index("torch==2.13.0") < runs.index('pip install ".[scale]"')  # scaled workers too
    users = [args for word, args in instructions if word == "USER"]
    assert users == ["monitor"] and "useradd --system --uid 10001" in runs
    volumes = next(args for word, args in instructions if word == "VOLUME")
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert '"/var/lib/monitor/models"' in volumes
    assert (
        "HF_HOME=/var/lib/monitor/models/" in env and "TORCH_HOME=/var/lib/monitor/models/" in env
    )
    assert any(word == "HEALTHCHECK" for word, _ in instructions)


def test_everything_the_dockerfile_copies_exists() -> None:
    for word, args in dockerfile_instructions():
        if word == "COPY":
            *sources, _target = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), source


def test_the_readme_install_uses_files_that_exist() -> None:
    section = README.split("### Install on a fresh Linux server with Docker", 1)[1]
    commands = section.split("```sh", 1)[1].split("```", 1)[0]
    for name in ("config/example.yaml", ".env.example", "docker-compose.yml"):
        assert (REPO / name).exists()
    assert "cp config/example.yaml monitor.yaml" in commands  # no multi-gigabyte install first
    assert "secrets/postgres_password" in commands and "docker compose up -d" in commands


def test_env_example_names_only_placeholders() -> None:
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert (
                value in ("", "true", "587")
                or "example" in value
                or "change-me" in value
                or "office365" in value
            ), name
