# SPDX-License-Identifier: Apache-2.0
"""Every test directory: with ``CI=true`` a skip is a failure.

A test skips when something it needs is missing here (bcc, root, Docker, containerd, Redis, a tool). On a
developer's machine that is a fair answer; in CI it would let a run pass without testing anything, so there
the skip fails, with its reason and where the missing piece should come from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
