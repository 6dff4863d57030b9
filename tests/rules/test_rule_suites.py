# SPDX-License-Identifier: Apache-2.0
"""Runs every rule test file under tests/rules/ through the rule test harness, one pytest case per YAML test.

Each rules file is loaded once per (files, rule_matching) by the shared Harness; each YAML file is run once and
its outcomes are cached, so the pytest cases only look up their own result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ruleengine import harness as rh
from ruleengine.harness import Harness

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_RULES = REPO / "rules" / "lanner_rules.yaml"
# fixtures/ folders hold rules files that tests load, not tests.
SUITES = sorted(p for p in HERE.rglob("*.yaml") if p.is_file() and "fixtures" not in p.relative_to(HERE).parts)


def _test_names(path: Path) -> list[str]:
    """Test names in a file, read at collection time; a file that does not parse yields one '<file>' case."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ["<file>"]
    if not isinstance(doc, list) or not doc:
        return ["<file>"]
    names = []
    for i, item in enumerate(doc):
        name = item.get("test") if isinstance(item, dict) else None
        names.append(str(name) if name else f"<test #{i + 1}>")
    return names


CASES = [
    pytest.param(
        path,
        name,
        id=f"{path.relative_to(HERE)}::{name}",
        marks=[pytest.mark.upstream_rules] if "LANNER_FALCO_RULES" in path.read_text(encoding="utf-8") else [],
    )
    for path in SUITES
    for name in _test_names(path)
]


@pytest.fixture(scope="module")
def harness() -> Harness:
    """One harness for the whole module, so compiled rule sets are shared between files."""
    return Harness([str(DEFAULT_RULES)])


_results: dict[Path, list[rh.TestOutcome]] = {}


def _outcomes(harness: Harness, path: Path) -> list[rh.TestOutcome]:
    if path not in _results:
        _results[path] = harness.run_file(str(path))
    return _results[path]


def test_suites_exist() -> None:
    """Guards against the glob silently finding nothing (a moved folder would otherwise pass vacuously)."""
    assert any("lanner" in p.parts for p in SUITES), "no Lanner rule tests found"
    assert any("upstream" in p.parts for p in SUITES), "no upstream rule tests found"


@pytest.mark.parametrize(("path", "name"), CASES)
def test_rule_suite(harness: Harness, path: Path, name: str) -> None:
    """The named test of a rule test file passes; on failure the harness' own report is shown."""
    outcomes = _outcomes(harness, path)
    mine = [o for o in outcomes if o.name == name]
    if not mine:
        # The harness could not even enumerate the file (YAML or structure error): report whatever it said.
        broken = [o for o in outcomes if not o.passed]
        detail = "\n".join(d for o in broken for d in o.details) or "test not run by the harness"
        pytest.fail(f"{path}: {name}: {detail}", pytrace=False)
    for o in mine:
        if not o.passed:
            pytest.fail(f"{o.file}:{o.line}: {o.name}\n" + "\n".join(o.details), pytrace=False)
