# SPDX-License-Identifier: Apache-2.0
"""Where the tests look for the upstream Falco rules, and the one message when they are nowhere."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
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


@pytest.fixture
def rules_server(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server standing in for raw.githubusercontent.com, serving two small rules files."""
    served = tmp_path / "served"
    served.mkdir()
    for p in ur.PINNED:
        (served / p.name).write_text(f"# {p.name}\n- list: x\n  items: []\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _pin_to(base: str, served: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pins = tuple(
        dataclasses.replace(
            p, url=f"{base}/{p.name}", sha256=hashlib.sha256((served / p.name).read_bytes()).hexdigest()
        )
        for p in ur.PINNED
    )
    monkeypatch.setattr(ur, "PINNED", pins)
    monkeypatch.delenv(ur.ENV, raising=False)
    monkeypatch.setattr(ur, "DEFAULT_DIR", tmp_path / "no-shared")
    monkeypatch.setattr(ur, "CACHE_DIR", tmp_path / "cache")


def test_ensure_fetches_when_the_rules_are_nowhere(
    rules_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin_to(rules_server, tmp_path / "served", monkeypatch, tmp_path)
    assert ur.ensure() == tmp_path / "cache"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in ur.PINNED)
    assert ur.locate() == tmp_path / "cache"  # found from now on, without the network


def test_fetch_refuses_a_file_that_is_not_the_pinned_one(
    rules_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin_to(rules_server, tmp_path / "served", monkeypatch, tmp_path)
    monkeypatch.setattr(ur, "PINNED", (dataclasses.replace(ur.PINNED[0], sha256="0" * 64),))
    with pytest.raises(ur.NotFound, match="expected 0000"):
        ur.ensure()
    assert not (tmp_path / "cache" / ur.PINNED[0].name).exists()
