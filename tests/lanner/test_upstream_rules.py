# SPDX-License-Identifier: Apache-2.0
"""Where the tests look for the upstream Falco rules, and the one message when they are nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import upstream_rules as ur


def test_env_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for p in ur.PINNED:
        (tmp_path / p.name).write_text("[]\n")
    monkeypatch.setenv(ur.ENV, str(tmp_path))
    assert ur.locate() == tmp_path.resolve()


def test_missing_everywhere_names_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "falco_rules.yaml").write_text("[]\n")
    monkeypatch.setenv(ur.ENV, str(tmp_path))
    with pytest.raises(ur.NotFound) as exc:
        ur.locate()
    msg = str(exc.value)
    assert "missing k8s_audit_rules.yaml" in msg
    assert "make upstream-rules" in msg and "LANNER_FALCO_RULES=/that/folder" in msg


def test_default_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ur.ENV, raising=False)
    monkeypatch.setattr(ur, "DEFAULT_DIR", tmp_path / "shared")
    monkeypatch.setattr(ur, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(ur.NotFound, match="does not hold them either"):
        ur.locate()
    (tmp_path / "cache").mkdir()
    for p in ur.PINNED:
        (tmp_path / "cache" / p.name).write_text("[]\n")
    assert ur.locate() == tmp_path / "cache"
