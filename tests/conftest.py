# SPDX-License-Identifier: Apache-2.0
"""Every test directory: with ``CI=true`` a skip is a failure; and where the upstream Falco rules are.

A test skips when something it needs is missing here (bcc, root, Docker, containerd, Redis, a tool). On a
developer's machine that is a fair answer; in CI it would let a run pass without testing anything, so there
the skip fails, with its reason and where the missing piece should come from.

Tests that need the upstream Falco rules (``tests/support/upstream_rules.py``) take the ``falco_rules`` fixture or
carry the ``upstream_rules`` mark. When any such test is collected and the rules are in none of the documented
places, the run stops before it starts, with one message naming both ways to provide them (instead of a hundred
failures about a missing file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import upstream_rules

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not CI or not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped with CI=true, where nothing may be missing: {reason}\n"
        "(scripts/setup-host.sh installs what the tests need, and the fixtures start it)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a whole module skipped at import (``pytest.importorskip``, module-level ``pytest.skip``)."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if CI and report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"module skipped with CI=true, where nothing may be missing: {reason}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "upstream_rules: needs the upstream Falco rules (LANNER_FALCO_RULES)")
    try:
        # Rule test files name them as ${LANNER_FALCO_RULES}/...; export the resolved folder for them.
        os.environ[upstream_rules.ENV] = str(upstream_rules.locate())
    except upstream_rules.NotFound:
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needed = any(
        "falco_rules" in getattr(item, "fixturenames", ()) or item.get_closest_marker("upstream_rules")
        for item in items
    )
    if needed:
        try:
            upstream_rules.locate()
        except upstream_rules.NotFound as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def falco_rules() -> Path:
    """The folder with the upstream falco_rules.yaml and k8s_audit_rules.yaml."""
    return upstream_rules.locate()
