"""The policy index in monitor/rules/README.md names a real row, function and test for every rule."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from monitor.constants import Category
from monitor.rules.routing import ROUTES
from tests.conftest import REPO

INDEX = REPO / "monitor" / "rules" / "README.md"
RULES = [f"R{n}" for n in range(1, 16)]  # R16 is the scheduler, not yet built
ROW = re.compile(r"^\|\s*(R\d+|NN\d+)\s*\|(.*)\|(.*)\|(.*)\|\s*$")
CODE = re.compile(r"`([^`]+)`")


def index() -> dict[str, tuple[list[str], list[str]]]:
    """Rule id -> (the names in its rows-and-functions cell, the tests it names)."""
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            rule, _, names, tests = match.groups()
            assert rule not in rows, f"{rule} has two rows"
            rows[rule] = (CODE.findall(names), CODE.findall(tests))
    return rows


def resolve(name: str) -> object:
    """The object ``name`` means: ``ROUTES[X]``, ``module.NAME`` in rules, or ``monitor.x.NAME``."""
    if route := re.fullmatch(r"ROUTES\[([A-Z_]+)\]", name):
        return ROUTES[Category[route.group(1)]]
    module, _, attribute = name.rpartition(".")
    if not module.startswith(("monitor.", "connectors.")):
        module = f"monitor.rules.{module}"
    return getattr(importlib.import_module(module), attribute)


def test_every_rule_has_a_row_with_rules_and_tests() -> None:
    rows = index()
    missing = [rule for rule in RULES if rule not in rows]
    assert not missing, f"no row in {INDEX.name} for {missing}"
    for rule in RULES:
        names, tests = rows[rule]
        assert names and tests, f"{rule} names no rule or no test"
    assert set(rows) >= {"NN1", "NN2", "NN3"}  # the non-negotiables


def test_the_scheduler_is_indexed_now_that_it_is_built() -> None:
    line = next(x for x in INDEX.read_text(encoding="utf-8").splitlines() if x.startswith("| R16 "))
    assert "not yet built" not in line
    names, tests = index()["R16"]
    assert "posting.may_approve" in names and tests


NAMED = sorted({(rule, n) for rule, (names, _) in index().items() for n in names})
TESTS = sorted({(rule, t) for rule, (_, tests) in index().items() for t in tests})


@pytest.mark.parametrize(("rule", "name"), NAMED)
def test_each_named_rule_exists(rule: str, name: str) -> None:
    try:
        resolve(name)
    except (AttributeError, ImportError, KeyError) as exc:
        pytest.fail(f"{rule} names {name}, which does not exist ({exc!r})")


@pytest.mark.parametrize(("rule", "test"), TESTS)
def test_each_named_test_exists(rule: str, test: str) -> None:
    path, _, function = test.partition("::")
    source = REPO / path
    assert source.is_file(), f"{rule} names {path}, which does not exist"
    assert re.search(rf"^def {re.escape(function)}\(", source.read_text(encoding="utf-8"), re.M), (
        f"{rule} names {test}, which does not exist"
    )


def test_the_index_resolver_catches_a_wrong_name() -> None:
    # the checks above can fail: a misspelt function, routing row or module is refused
    for wrong in ("engine.no_such_rule", "ROUTES[NO_SUCH_CATEGORY]", "nosuchmodule.X"):
        with pytest.raises((AttributeError, ImportError, KeyError)):
            resolve(wrong)
    assert Path(INDEX).is_file()
