# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lanner.config import ConfigError, load_section


@dataclass(frozen=True, slots=True)
class Output:
    enabled: bool = False
    path: str = "alerts.jsonl"


@dataclass(frozen=True, slots=True)
class Sample:
    bind: str = "127.0.0.1:1"
    batch_size: int = 256
    linger_ms: float = 5.0
    exclude_pids: tuple[int, ...] = ()
    file: Output = field(default_factory=Output)


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "lanner.yaml"
    p.write_text(text)
    return str(p)


def test_defaults_without_file() -> None:
    assert load_section("enricher", Sample, None, env={}) == Sample()


def test_reads_section_and_nested(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  batch_size: 10\n  file: {enabled: true}\n")
    cfg = load_section("enricher", Sample, path, env={})
    assert cfg.batch_size == 10 and cfg.file.enabled and cfg.file.path == "alerts.jsonl"


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  batch_sise: 10\n")
    with pytest.raises(
        ConfigError, match=r"lanner.yaml: enricher.batch_sise: unknown key \(did you mean 'batch_size'\?\)"
    ):
        load_section("enricher", Sample, path, env={})


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  file: {pth: x}\n")
    with pytest.raises(ConfigError, match=r"enricher.file.pth: unknown key"):
        load_section("enricher", Sample, path, env={})


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  batch_size: lots\n")
    with pytest.raises(ConfigError, match=r"enricher.batch_size: expected an integer, got 'lots'"):
        load_section("enricher", Sample, path, env={})


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "enrichr:\n  batch_size: 1\n")
    with pytest.raises(ConfigError, match=r"enrichr: unknown section"):
        load_section("enricher", Sample, path, env={})


def test_invalid_yaml_has_location(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  batch_size: [1\n")
    with pytest.raises(ConfigError, match=r"lanner.yaml:\d+:\d+: invalid YAML"):
        load_section("enricher", Sample, path, env={})


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_section("enricher", Sample, str(tmp_path / "missing.yaml"), env={})


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "enricher:\n  batch_size: 10\n")
    env = {
        "LANNER_ENRICHER__BATCH_SIZE": "20",
        "LANNER_ENRICHER__EXCLUDE_PIDS": "[1, 2]",
        "LANNER_ENRICHER__FILE__PATH": "/tmp/x",
        "LANNER_COLLECTOR__BATCH_SIZE": "99",
    }
    cfg = load_section("enricher", Sample, path, env=env)
    assert cfg.batch_size == 20 and cfg.exclude_pids == (1, 2) and cfg.file.path == "/tmp/x"


def test_env_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"environment.*enricher.nope: unknown key"):
        load_section("enricher", Sample, None, env={"LANNER_ENRICHER__NOPE": "1"})
