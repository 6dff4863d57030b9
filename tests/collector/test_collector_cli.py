# SPDX-License-Identifier: Apache-2.0
"""Command line and start-up errors: clear messages with the fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import preflight
from collector.config import CollectorConfig, load_config
from lanner.cli import main
from lanner.config import ConfigError


def test_preflight_names_each_fix(tmp_path: Path) -> None:
    found = preflight.problems(release="0.0.0-lanner-test", tracefs=str(tmp_path / "tracing"))
    text = "\n".join(found)
    assert f"mount -t tracefs tracefs {tmp_path / 'tracing'}" in text
    assert "/lib/modules/0.0.0-lanner-test/build" in text
    assert "ln -sfn" in text or "apt-get install linux-headers-0.0.0-lanner-test" in text


def test_config_validation(tmp_path: Path) -> None:
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text("collector:\n  ring_buffer_pages: 3\n")
    with pytest.raises(ConfigError, match="ring_buffer_pages must be a power of two"):
        load_config(str(cfg))
    cfg.write_text("collector:\n  families: [process, files]\n")
    with pytest.raises(ConfigError, match="unknown"):
        load_config(str(cfg))
    cfg.write_text("collector:\n  batch_sise: 3\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(str(cfg))
    assert load_config(None) == CollectorConfig() or load_config(None).enricher_target


def test_cli_reports_config_error_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text("collector:\n  linger_ms: -1\n")
    assert main(["collector", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "linger_ms" in err and "Traceback" not in err
    assert main(["collector", "events", "--config", str(cfg)]) == 2


def test_cli_replay_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text(f"collector:\n  replay_path: {tmp_path / 'nope.jsonl'}\n")
    assert main(["collector", "events", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "nope.jsonl" in err and "Traceback" not in err


def test_cli_events_plays_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.jsonl"
    rec.write_text(
        '{"type": "openat", "source": "syscall", "proc": {"pid": "7", "comm": "cat"},'
        ' "fd": {"num": "3", "path": "/etc/shadow", "openFlags": 0}}\n'
    )
    cfg = tmp_path / "lanner.yaml"
    cfg.write_text(f"collector:\n  replay_path: {rec}\n")
    assert main(["collector", "events", "--config", str(cfg), "--count", "1"]) == 0
    out = capsys.readouterr().out
    assert "openat" in out and "proc=cat[7]" in out and "path=/etc/shadow" in out
