"""Process settings from the environment (secrets also from ``*_FILE`` files)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.secrets import read_env_secret

SECRET_FIELDS = ("slack_bot_token", "slack_app_token", "smtp_password")


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=False)

    monitor_config: Path = Field(default=Path("monitor.yaml"))
    monitor_data_dir: Path = Field(default=Path("data"))
    database_url: str | None = Field(default=None, repr=False)  # may hold a password
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
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

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: object) -> object:
        # Docker/Kubernetes secrets: SMTP_PASSWORD_FILE=/run/secrets/smtp and friends.
        if isinstance(data, dict):
            for name in SECRET_FIELDS:
                if not data.get(name):
                    value = read_env_secret(name.upper())
                    if value:
                        data[name] = value
        return data

    def effective_database_url(self) -> str:
        """``DATABASE_URL``, else a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.monitor_data_dir / 'monitor.db').resolve()}"


def load_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
