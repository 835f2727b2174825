"""Process settings from the environment (secrets also from ``*_FILE`` files)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.secrets import SecretMissing, read_env_secret

SECRET_FIELDS = (
    "slack_bot_token",
    "slack_app_token",
    "smtp_password",
    "database_url",
    "monitor_audit_key",
    "web_session_secret",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """The environment has bad values; ``problems`` names each variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=False)

    monitor_config: Path = Field(default=Path("monitor.yaml"))
    monitor_data_dir: Path = Field(default=Path("data"))
    database_url: str | None = Field(default=None, repr=False)  # may hold a password
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_base_url: str | None = None  # only for tests against a local Slack server
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True
    hf_home: Path | None = None
    monitor_audit_key: SecretStr | None = None  # the audit log's HMAC key (see audit_key.py)
    # signs the web session cookie; unset: a random key per process (sign-ins end on restart)
    web_session_secret: SecretStr | None = None
    # the scaled mode (see README "Beyond one server"): unset, `monitor run` is one process
    monitor_broker_url: str | None = Field(default=None, repr=False)  # amqp://user:pw@host:5672/
    monitor_redis_url: str | None = Field(default=None, repr=False)  # redis://host:6379/0
    monitor_scale_prefix: str = "monitor"  # queue and key namespace (one per deployment)
    monitor_rate_budgets: str = ""  # e.g. "reddit=6000/60" where a platform raised a limit
    monitor_egress: str = "default"  # names the address Bluesky's per-IP budget counts

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: object) -> object:
        # Docker/Kubernetes secrets: SMTP_PASSWORD_FILE=/run/secrets/smtp and friends.
        if isinstance(data, dict):
            for name in SECRET_FIELDS:
                if not data.get(name):
                    try:
                        value = read_env_secret(name.upper())
                    except SecretMissing as exc:
                        raise ValueError(str(exc)) from exc  # reported with the others
                    if value:
                        data[name] = value
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: object) -> str:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> str:
        return str(value).strip().lower()

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        if value:
            try:
                make_url(value)
            except ArgumentError:
                # never echo the value: it may hold the database password
                raise ValueError(
                    "is not a database URL (e.g. postgresql://user:password@host:5432/monitor)"
                ) from None
        return value

    @model_validator(mode="after")
    def _email_has_a_sender(self) -> Settings:
        if self.smtp_host and not self.smtp_from:
            raise ValueError("SMTP_FROM must be set when SMTP_HOST is (the sender of every email)")
        return self

    def effective_database_url(self) -> str:
        """``DATABASE_URL``, else a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.monitor_data_dir / 'monitor.db').resolve()}"

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (for the log redactor), the database password too."""
        values = [
            secret.get_secret_value()
            for secret in (
                self.slack_bot_token,
                self.slack_app_token,
                self.smtp_password,
                self.monitor_audit_key,
                self.web_session_secret,
            )
            if secret is not None
        ]
        if self.database_url:
            password = make_url(self.database_url).password
            if password:
                values.append(str(password))
        for url in (self.monitor_broker_url, self.monitor_redis_url):
            password = urlsplit(url).password if url else None
            if password:
                values.append(password)
        return values


def load_settings() -> Settings:
    """Settings from the current environment; SettingsError names every bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            names = [str(part).upper() for part in err["loc"] if isinstance(part, str)]
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{names[0]}: {message}" if names else message)
        raise SettingsError(problems) from None
