# SPDX-License-Identifier: Apache-2.0
"""Issue 10 item 4: a rule whose output could exceed the alert size limits gets a located load warning (the
limits still cut its alerts at run time, so it loads and runs); ordinary rules, Falco's included, get none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lanner.alert_limits import DEFAULT_LIMITS
from ruleengine.engine import EngineOptions, load_rules

from .helpers import load

ROOT = Path(__file__).resolve().parents[2]
RULE = """\
- rule: huge
  desc: d
  condition: evt.type = open
  output: "{output}"
  priority: WARNING
"""


def warnings(output: str) -> list[str]:
    return [w.format() for w in load(RULE.format(output=output)).warnings if w.code == "LOAD_OUTPUT_TOO_LARGE"]


def test_an_output_of_many_tokens_is_warned_about_at_its_location() -> None:
    found = warnings(" ".join(["%fd.name"] * 1000))
    assert len(found) == 1
    # file:line:col of the output value; the message says what the limit is and what will happen.
    assert found[0].startswith("rules.yaml:4:11: warning: LOAD_OUTPUT_TOO_LARGE (Rule output may exceed")
    assert f"more than max_output_chars ({DEFAULT_LIMITS.max_output_chars})" in found[0]
    assert "1000 field tokens" in found[0] and "[rule 'huge']" in found[0]
    # It still loads and runs: the limits cut its alerts.
    assert load(RULE.format(output="%fd.name " * 1000)).engine is not None


def test_a_huge_literal_text_and_too_many_fields() -> None:
    assert warnings("x" * (DEFAULT_LIMITS.max_output_chars + 1))
    many = " ".join(f"%proc.aname[{i}]" for i in range(1, DEFAULT_LIMITS.max_fields + 2))
    assert any(f"more than max_fields ({DEFAULT_LIMITS.max_fields})" in w for w in warnings(many))


def test_ordinary_outputs_are_not_warned_about() -> None:
    assert warnings("Shadow read (user=%user.name cmd=%proc.cmdline file=%fd.name pid=%proc.pid)") == []
    assert warnings(" ".join(["%evt.num"] * 600)) == []  # 600 numbers stay under 16 KiB
    result = load_rules(
        [str(ROOT / "rules"), str(ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml")], EngineOptions()
    )
    assert not [w.format() for w in result.warnings if w.code == "LOAD_OUTPUT_TOO_LARGE"]


def test_rules_validate_prints_the_warning(tmp_path: Path) -> None:
    rules = tmp_path / "huge.yaml"
    rules.write_text(RULE.format(output="%proc.cmdline " * 200))
    out = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "rules", "validate", str(rules)], capture_output=True, text=True, cwd=ROOT
    )
    text = out.stdout + out.stderr
    assert f"{rules}:4:11: warning: LOAD_OUTPUT_TOO_LARGE" in text, text
