# SPDX-License-Identifier: Apache-2.0
"""Hot reload: swap on change, keep the old set on failure, count it and raise an internal alert."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ruleengine.engine import EngineOptions
from ruleengine.output import AlertRecord
from ruleengine.reload import INTERNAL_RULE, RuleReloader, RulesLoadFailed

RULE = (
    "- rule: {name}\n  desc: d\n  condition: evt.type = open and proc.name = x\n  output: o %proc.name\n"
    "  priority: WARNING\n"
)


def failures() -> float:
    return REGISTRY.get_sample_value("lanner_rules_reload_failures_total") or 0.0


def bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_swap_and_failure(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(name="one"))
    alerts: list[AlertRecord] = []
    swapped: list[object] = []
    rl = RuleReloader(lambda: [str(f)], EngineOptions(), on_alert=alerts.append, hostname="h", on_swap=swapped.append)
    first = rl.current()
    assert [r.name for r in first.rules] == ["one"]
    assert rl.check_now() is None  # nothing changed

    bump(f, RULE.format(name="two"))
    assert rl.check_now() is True
    assert [r.name for r in rl.current().rules] == ["two"]
    assert swapped == [rl.current()]

    before = failures()
    good = rl.current()
    bump(f, RULE.format(name="three").replace("proc.name = x", "proc.name = "))
    assert rl.check_now() is False
    assert rl.current() is good
    assert failures() == before + 1
    assert len(alerts) == 1
    a = alerts[0]
    assert a.rule == INTERNAL_RULE and a.source == "internal" and a.hostname == "h"
    assert "r.yaml:3:" in a.message and a.output_fields["error_count"] == 1

    bump(f, RULE.format(name="four"))
    assert rl.check_now() is True and [r.name for r in rl.current().rules] == ["four"]


def test_touch_without_content_change_does_not_reload(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(name="one"))
    rl = RuleReloader(lambda: [str(f)], EngineOptions())
    engine = rl.current()
    bump(f, RULE.format(name="one"))
    assert rl.check_now() is None and rl.current() is engine


def test_new_file_in_set_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(RULE.format(name="a"))
    rl = RuleReloader(lambda: sorted(str(p) for p in tmp_path.glob("*.yaml")), EngineOptions())
    (tmp_path / "b.yaml").write_text(RULE.format(name="b"))
    assert rl.check_now() is True
    assert [r.name for r in rl.current().rules] == ["a", "b"]


def test_initial_failure_raises(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("- rule: x\n")
    with pytest.raises(RulesLoadFailed, match="error"):
        RuleReloader(lambda: [str(f)], EngineOptions())


async def test_background_poll_swaps(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(RULE.format(name="one"))
    rl = RuleReloader(lambda: [str(f)], EngineOptions(), interval_s=0.01)
    task = asyncio.create_task(rl.run())
    try:
        bump(f, RULE.format(name="two"))
        for _ in range(500):
            if [r.name for r in rl.current().rules] == ["two"]:
                break
            await asyncio.sleep(0.01)
        assert [r.name for r in rl.current().rules] == ["two"]
    finally:
        task.cancel()
