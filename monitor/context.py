"""What a command needs: settings, the validated configuration and the database."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
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


def database_problem(url: str, exc: BaseException) -> str:
    """One line saying which database could not be opened and why; never the password."""
    parsed = make_url(url)
    where = parsed.render_as_string(hide_password=True)
    if isinstance(exc, DBAPIError):
        reason = " ".join(str(exc.orig).split()) if exc.orig is not None else type(exc).__name__
    elif isinstance(exc, OSError):
        reason = " ".join(str(part) for part in (exc.strerror, exc.filename) if part)
    else:
        reason = type(exc).__name__
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    return f"database: error: cannot open {where}: {reason or type(exc).__name__}"


def open_database(settings: Settings, *, upgrade: bool = True) -> Engine:
    """The engine, connected (and migrated unless ``upgrade`` is false), or exit 2 in one line."""
    url = settings.effective_database_url()
    try:
        engine = make_engine(url)
        if upgrade:
            upgrade_schema(engine)
        else:
            engine.connect().close()
    except (DBAPIError, OSError) as exc:
        typer.echo(database_problem(url, exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    return engine


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
        """The database engine (schema brought up to date on first use); exit 2 if unreachable."""
        return open_database(self.settings)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory bound to the engine."""
        return session_factory(self.engine)
