"""Connector manifests: declared once, read by the registry, config, logging and the digest."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml

import connectors.manifest as manifest_module
from connectors.registry import ConnectorUnavailable, connector_class, manifest, manifests
from monitor.config import ConfigError, load_config
from monitor.constants import Platform
from monitor.digest.render import platform as platform_label
from monitor.logs import QUIET_LOGGERS
from tests.conftest import EXAMPLE_CONFIG, REPO


def without(module: str) -> Any:
    """A find_spec that says ``module`` is not installed."""

    def find(name: str, package: str | None = None) -> Any:
        return None if name == module else find_spec(name, package)

    return find


@pytest.mark.parametrize("platform", list(Platform))
def test_the_manifest_is_what_the_connector_declares(platform: Platform) -> None:
    declared = manifest(platform)
    cls = connector_class(platform)
    assert (declared.platform, cls.PLATFORM) == (platform, platform)
    assert declared.capabilities == cls.CAPABILITIES
    assert declared.options == cls.OPTIONS
    assert declared.credentials == cls.REQUIRED_CREDENTIALS | cls.OPTIONAL_CREDENTIALS
    assert declared.missing_libraries() == ()


@pytest.mark.parametrize("platform", list(Platform))
def test_logging_quietens_every_platform_library_logger(platform: Platform) -> None:
    for name in manifest(platform).loggers:
        assert QUIET_LOGGERS[name] == logging.WARNING


def test_the_platform_loggers_come_from_the_manifests() -> None:
    assert manifest(Platform.MASTODON).loggers == ("mastodon",)
    assert manifest(Platform.REDDIT).loggers == ("prawcore",)
    assert {"mastodon", "prawcore"} <= set(QUIET_LOGGERS)


@pytest.mark.parametrize("platform", list(Platform))
def test_the_digest_names_each_platform_by_its_label(platform: Platform) -> None:
    assert platform_label(platform.value) == manifest(platform).label


@pytest.mark.parametrize("platform", list(Platform))
def test_each_platform_has_a_pip_extra_that_the_default_install_keeps(
    platform: Platform,
) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = project["optional-dependencies"][manifest(platform).extra]
    assert extra
    assert set(extra) <= set(project["optional-dependencies"]["all"])
    assert set(extra) <= set(project["dependencies"])  # same pins: `pip install -e .` has all


def test_reading_the_manifests_imports_no_platform_library() -> None:
    code = (
        "import sys; from connectors.registry import manifests; manifests(); "
        "import monitor.config, monitor.logs; "
        "print(sorted({'atproto', 'mastodon', 'praw'} & set(sys.modules)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert run.stdout.strip() == "[]"


def test_a_missing_library_is_a_clear_error_when_the_connector_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(manifest_module, "find_spec", without("praw"))
    with pytest.raises(ConnectorUnavailable, match=r"school-social-monitor\[reddit\]"):
        connector_class(Platform.REDDIT)


def test_a_missing_library_is_a_located_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    path = tmp_path / "monitor.yaml"
    monkeypatch.setattr(manifest_module, "find_spec", without("praw"))
    # the example's reddit account is disabled: nothing needs praw
    [index] = [i for i, a in enumerate(data["accounts"]) if a["platform"] == "reddit"]
    assert data["accounts"][index]["enabled"] is False
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_config(path, environ={})
    data["accounts"][index]["enabled"] = True
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    [problem] = [p for p in caught.value.problems if "needs praw" in p.message]
    assert problem.field == f"accounts[{index}].platform" and problem.line is not None
    assert "pip install 'school-social-monitor[reddit]'" in problem.message


def test_every_registered_platform_is_a_platform() -> None:
    assert list(manifests()) == list(Platform)


def test_the_web_reads_a_platforms_capabilities_from_its_manifest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.web.views import platform_capabilities

    expected = frozenset(c.value for c in manifest(Platform.REDDIT).capabilities)
    assert platform_capabilities("reddit") == expected
    # without praw the page still says what Reddit allows (the manifest needs no library)
    monkeypatch.setattr(manifest_module, "find_spec", without("praw"))
    assert platform_capabilities("reddit") == expected
    assert platform_capabilities("myspace") is None
