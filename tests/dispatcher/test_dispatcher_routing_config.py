# SPDX-License-Identifier: Apache-2.0
"""Routing filters, the output registry and config validation (pure, no services)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dispatcher.config import load, output_specs
from dispatcher.driver import DriverOptions
from dispatcher.model import Alert, Priority
from dispatcher.outputs.file import FileConfig
from dispatcher.registry import RegistryError, register_output, registered_outputs, unregister_output
from dispatcher.routing import Route
from lanner.config import ConfigError

A = Alert(rule="Terminal shell", priority=Priority.WARNING, source="syscall", tags=("container", "shell"))


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (Route(), True),
        (Route.build("warning"), True),
        (Route.build("error"), False),
        (Route.build("debug", rules=["Terminal shell"]), True),
        (Route.build(rules=["Other"]), False),
        (Route.build(tags=["shell", "network"]), True),
        (Route.build(tags=["network"]), False),
        (Route.build(sources=["k8s_audit"]), False),
        (Route.build("notice", ["Terminal shell"], ["container"], ["syscall"]), True),
    ],
)
def test_route(route: Route, expected: bool) -> None:
    assert route.matches(A) is expected


def test_registry_refuses_duplicates() -> None:
    assert {"stdout", "file"} <= set(registered_outputs())

    @dataclass(frozen=True, slots=True)
    class Cfg:
        x: int = 1

    @register_output("dup-test")
    class One:
        Config: ClassVar[type[Any]] = Cfg

    try:
        with pytest.raises(RegistryError, match="registered twice"):

            @register_output("dup-test")
            class Two:
                Config: ClassVar[type[Any]] = Cfg
    finally:
        unregister_output("dup-test")


def test_outputs_split_driver_and_own_keys(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "dispatcher:\n"
        "  stream: s1\n"
        "  outputs:\n"
        "    stdout: {enabled: false}\n"
        "    file: {enabled: true, path: /tmp/x.jsonl, keep_alive: true, min_priority: warning, tags: [a]}\n"
        "    file:audit: {path: /tmp/audit.jsonl, rules: [R]}\n"
    )
    cfg, specs = load(str(f), env={})
    assert cfg.stream == "s1"
    assert [s.name for s in specs] == ["file", "file:audit"]
    assert specs[0].config == FileConfig(path="/tmp/x.jsonl", keep_alive=True)
    assert specs[0].driver.route == Route.build("warning", tags=["a"])
    assert specs[1].driver.rules == ("R",)


def test_env_overrides_reach_outputs(tmp_path: Path) -> None:
    cfg, specs = load(
        None, env={"LANNER_DISPATCHER__OUTPUTS__FILE__PATH": "/tmp/e.jsonl", "LANNER_DISPATCHER__DEDUP_WINDOW_S": "5"}
    )
    assert cfg.dedup_window_s == 5.0
    assert {s.name: s.config for s in specs}["file"].path == "/tmp/e.jsonl"


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"nosuch": {}}, r"dispatcher\.outputs\.nosuch: unknown output type"),
        ({"file": {"pth": "x"}}, r"dispatcher\.outputs\.file\.pth: unknown key \(did you mean 'path'\?\)"),
        ({"file": {"min_priority": "loud"}}, r"dispatcher\.outputs\.file: unknown priority 'loud'"),
        ({"file": {"concurrency": 0}}, r"concurrency: must be at least 1"),
        ({"file": {"keep_alive": "yes"}}, r"dispatcher\.outputs\.file\.keep_alive: expected true or false"),
    ],
)
def test_bad_output_config_names_the_key(outputs: dict[str, Any], message: str) -> None:
    from dispatcher.config import DispatcherConfig

    with pytest.raises(ConfigError, match=message):
        output_specs(DispatcherConfig(outputs=outputs), "lanner.yaml")


def test_default_is_stdout_only() -> None:
    _, specs = load(None, env={})
    assert [s.name for s in specs] == ["stdout"]
    assert specs[0].driver == DriverOptions()
