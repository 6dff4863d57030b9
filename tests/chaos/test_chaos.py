# SPDX-License-Identifier: Apache-2.0
"""The CI part of the chaos suite: every stage killed once under marker load (``make chaos`` runs it longer).

Asserts, per stage killed: every marker is either in both outputs (file and HTTP) or inside the losses the drop
alerts counted (unaccounted = 0), no marker reached an output as two different alerts (duplicates = 0), and the
two outputs agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.chaoslib import format_table, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
STAGES = ["dispatcher", "ruleengine", "enricher", "collector", "redis"]


def test_each_stage_killed_under_load_loses_nothing_silently(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for eBPF")
    rows = run_chaos(tmp_path / "stack", STAGES, rate=50.0, marks_per_phase=50)
    table = format_table(rows)
    print(table)
    assert [r.stage for r in rows] == STAGES
    for row in rows:
        assert row.sent > 0 and row.delivered > 0, table
        assert row.unaccounted == 0, table
        assert row.duplicates == 0, table
        assert row.only_in_one_output == 0, table
