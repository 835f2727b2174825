"""Reading secrets from the environment or from files, never from the repo."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from monitor.config_models import SecretRef


class SecretMissing(LookupError):
    """A secret named in the configuration is not available."""


def read_env_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``NAME`` from the environment, else the contents of the file named by ``NAME_FILE``."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise SecretMissing(
                f"{name}_FILE points at {path!r}, which cannot be read: {exc.strerror}"
            ) from exc
    return None


def resolve_secret(
    ref: SecretRef, *, base_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The value of ``ref``; raises SecretMissing saying where it should be (never the value)."""
    if ref.env:
        value = read_env_secret(ref.env, environ)
        if not value:
            raise SecretMissing(f"{ref.describe()} is not set")
        return value
    assert ref.file is not None  # guaranteed by SecretRef's validator
    path = Path(ref.file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretMissing(f"secret file {path} cannot be read: {exc.strerror}") from exc
    if not value:
        raise SecretMissing(f"secret file {path} is empty")
    return value


def mask(value: str | None) -> str:
    """A printable stand-in for a secret."""
    return "" if not value else "********"


def configured_secret_values(
    refs: Iterable[SecretRef],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The values of every reference that resolves (for the log redactor); missing ones are skipped."""
    values = []
    for ref in refs:
        try:
            values.append(resolve_secret(ref, base_dir=base_dir, environ=environ))
        except SecretMissing:
            continue
    return values
