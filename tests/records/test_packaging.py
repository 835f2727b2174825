"""The package data lists real files only, and every data file the code reads is listed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE_DATA = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "setuptools"
]["package-data"]
CODE_OR_DOCS = {".py", ".pyc", ".md"}


@pytest.mark.parametrize(
    ("package", "pattern"),
    [(package, pattern) for package, patterns in PACKAGE_DATA.items() for pattern in patterns],
)
def test_every_package_data_pattern_names_real_files(package: str, pattern: str) -> None:
    assert [p for p in (REPO / package).glob(pattern) if p.is_file()], (
        f"{package}: {pattern!r} matches nothing"
    )


@pytest.mark.parametrize("package", sorted(PACKAGE_DATA))
def test_every_data_file_is_packaged(package: str) -> None:
    root = REPO / package
    listed = {p for pattern in PACKAGE_DATA[package] for p in root.glob(pattern)}
    data = {
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in CODE_OR_DOCS and "__pycache__" not in p.parts
    }
    missing = sorted(str(Path(p).relative_to(root)) for p in data - listed)
    assert not missing, f"{package}: not in package-data: {missing}"


def test_the_export_templates_are_packaged_and_autoescaped() -> None:
    from monitor.exports.bundle import TEMPLATES, render

    assert {p.name for p in TEMPLATES.iterdir()} >= {"evidence.html", "subject.html"}
    assert TEMPLATES.relative_to(REPO / "monitor").as_posix() + "/*" in PACKAGE_DATA["monitor"]
    page = render(
        "_head.html", title="<script>alert(1)</script>"
    )  # a page title from outside is escaped
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_packaged_example_is_the_config_example() -> None:
    """`monitor init` writes the packaged copy; the README and the tests read config/'s."""
    packaged = (REPO / "monitor" / "example.yaml").read_bytes()
    assert packaged == (REPO / "config" / "example.yaml").read_bytes(), (
        "monitor/example.yaml differs from config/example.yaml: copy config/example.yaml over it"
    )
