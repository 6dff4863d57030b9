# SPDX-License-Identifier: Apache-2.0
"""The enricher's config section: defaults, env overrides, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from enricher.config import EnricherConfig, load_config
from lanner.config import ConfigError, load_section


def test_defaults() -> None:
    cfg = load_section("enricher", EnricherConfig, None, env={})
    assert cfg.bind == "127.0.0.1:7702" and cfg.ruleengine_target == "127.0.0.1:7703"
    assert cfg.redis_url == "redis://127.0.0.1:6390/0"
    assert cfg.cri_sockets[0] == "unix:///run/containerd/containerd.sock"


def test_env_overrides() -> None:
    env = {"LANNER_ENRICHER__CRI_SOCKETS": "[unix:///run/crio/crio.sock]", "LANNER_ENRICHER__WAIT_MS": "0"}
    cfg = load_section("enricher", EnricherConfig, None, env=env)
    assert cfg.cri_sockets == ("unix:///run/crio/crio.sock",) and cfg.wait_ms == 0.0


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("enricher:\n  redis_ur: x\n", "enricher.redis_ur: unknown key (did you mean 'redis_url'?)"),
        ("enricher:\n  cri_sockets: [tcp://x]\n", "only unix:// endpoints are supported"),
        ("enricher:\n  cache_ttl_s: 0\n", "cache_ttl_s must be > 0"),
        ("enricher:\n  wait_ms: fast\n", "enricher.wait_ms: expected a number"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "lanner.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and message in str(err.value)
