"""What a command needs: settings, the validated configuration and the database."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import ConfigError, LoadedConfig, load_config
from monitor.settings import Settings, SettingsError, load_settings
from monitor.storage import migrate
from monitor.storage.db import make_engine, session_factory

EXIT_CONFIG = 2
MIGRATION_LOCK_KEY = 0x5C4A0D18


def config_path_option(path: Path | None, settings: Settings) -> Path:
    """The config file to use: the argument, else MONITOR_CONFIG, else ./monitor.yaml."""
    return path if path is not None else settings.monitor_config


def load_or_exit(path: Path) -> LoadedConfig:
    """Load the configuration or print every problem and exit with code 2."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        errors = sum(1 for p in exc.problems if not p.warning)
        typer.echo(f"{errors} error(s) in the configuration; nothing was changed.", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    for warning in loaded.warnings:
        typer.echo(str(warning), err=True)
    return loaded


def upgrade_schema(engine: Engine) -> None:
    """Migrate to the newest schema; on PostgreSQL one process at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            try:
                migrate.upgrade(engine)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
    else:
        migrate.upgrade(engine)


@dataclass
class AppContext:
    """Lazily opened resources shared by a command."""

    settings: Settings

    @classmethod
    def from_env(cls) -> AppContext:
        """A context from the process environment; bad variables are listed and exit 2."""
        try:
            return cls(settings=load_settings())
        except SettingsError as exc:
            for problem in exc.problems:
                typer.echo(f"environment: error: {problem}", err=True)
            typer.echo(f"{len(exc.problems)} error(s) in the environment.", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc

    @cached_property
    def engine(self) -> Engine:
        """The database engine (schema brought up to date on first use)."""
        engine = make_engine(self.settings.effective_database_url())
        upgrade_schema(engine)
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory bound to the engine."""
        return session_factory(self.engine)
