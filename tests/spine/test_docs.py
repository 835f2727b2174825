"""Every configuration field and every environment setting is documented in the README."""

from __future__ import annotations

import re

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
