# SPDX-License-Identifier: Apache-2.0
"""Bad input at start-up gets a clear, located message and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def lanner(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanner.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_up_rejects_unknown_config_key_before_starting_anything(tmp_path: Path) -> None:
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text("enricher:\n  redis_urll: redis://x\n")
    r = lanner("up", "--config", str(cfg), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2
    assert f"{cfg}: enricher.redis_urll: unknown key (did you mean 'redis_url'?)" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state" / "redis").exists(), "nothing may start on a bad config"


@pytest.mark.parametrize("service", ["collector", "enricher", "ruleengine", "dispatcher"])
def test_each_service_rejects_unknown_key(tmp_path: Path, service: str) -> None:
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text(f"{service}:\n  no_such_key: 1\n")
    r = lanner(service, "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    assert f"{service}.no_such_key: unknown key" in r.stderr
    assert "Traceback" not in r.stderr


def test_up_rejects_unreadable_rules_file(tmp_path: Path) -> None:
    r = lanner("up", "--rules", str(tmp_path / "missing.yaml"), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2
    assert f"cannot read rules file {tmp_path / 'missing.yaml'}" in r.stderr
    assert "Traceback" not in r.stderr


def test_ruleengine_refuses_rules_with_errors_and_names_the_location(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: x\n  desc: x\n  condition: proc.nmae = a\n  output: x\n  priority: info\n")
    r = lanner("ruleengine", "--rules", str(rules))
    assert r.returncode == 2
    assert f"{rules}:3:14: error: LOAD_ERR_COMPILE_CONDITION" in r.stderr
    assert "proc.nmae" in r.stderr and "Traceback" not in r.stderr


def test_ruleengine_unreadable_rules_file(tmp_path: Path) -> None:
    r = lanner("ruleengine", "--rules", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2
    assert "cannot read rules file" in r.stderr and "missing.yaml" in r.stderr
