"""The deployment files say what the README promises (no Docker engine runs here to build them)."""

from __future__ import annotations

import yaml

from tests.conftest import REPO


def test_compose_has_app_and_postgres_with_health_checks_and_volumes() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    app, db = compose["services"]["app"], compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in compose["volumes"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["env_file"] == ".env"
    assert "monitor db upgrade" in " ".join(app["command"])
    assert any(v.startswith("models:") for v in app["volumes"])
    assert "/readyz" in " ".join(app["healthcheck"]["test"])


def test_dockerfile_is_slim_cpu_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "torch==2.13.0" in text and "whl/cpu" in text
    assert "\nUSER monitor\n" in text
    assert "/var/lib/monitor/models" in text and "HEALTHCHECK" in text


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
