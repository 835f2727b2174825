"""Account options: each connector declares what it reads, the config refuses the rest, the README documents all."""

from __future__ import annotations

import re
from importlib import import_module
from pathlib import Path

import pytest
import yaml

from connectors.registry import connector_class, manifest
from monitor.config import ConfigError, load_config
from monitor.constants import Platform
from tests.conftest import EXAMPLE_CONFIG, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
READ = re.compile(r"""options\.get\(\s*"(\w+)"|for name in \(([^)]*)\):\s*\n\s*if options""")


def read_by(platform: Platform) -> set[str]:
    """The option names the connector's source (every module of its package) reads."""
    package = import_module(f"connectors.{platform.value}")
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in sorted(Path(package.__path__[0]).glob("*.py"))
    )
    names: set[str] = set()
    for single, several in READ.findall(source):
        names |= {single} if single else set(re.findall(r'"(\w+)"', several))
    return names


@pytest.mark.parametrize("platform", list(Platform))
def test_every_option_read_is_declared_and_known_to_the_config(platform: Platform) -> None:
    declared = connector_class(platform).OPTIONS
    assert read_by(platform) == declared
    assert manifest(platform).options == declared


@pytest.mark.parametrize("platform", list(Platform))
def test_every_option_is_in_the_readme(platform: Platform) -> None:
    documented = {
        name
        for line in README.splitlines()
        if line.startswith(f"| {manifest(platform).label} |")
        for name in re.findall(r"`(\w+)`", line.split("|")[2])
    }
    assert documented == connector_class(platform).OPTIONS


def test_a_misspelt_option_is_a_located_error(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    reddit = next(a for a in data["accounts"] if a["platform"] == "reddit")
    reddit["options"]["subreddit"] = reddit["options"].pop("subreddits")  # the typo
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    [problem] = [p for p in caught.value.problems if "option" in p.message]
    assert problem.field.endswith("options.subreddit") and problem.line is not None
    assert "reddit has no option 'subreddit'" in problem.message
    assert "subreddits" in problem.message  # the known names are listed
