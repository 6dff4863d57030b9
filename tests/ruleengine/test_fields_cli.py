# SPDX-License-Identifier: Apache-2.0
"""`lanner fields`: the catalogue listing."""

from __future__ import annotations

import argparse
import json

import pytest

from ruleengine.fields_cli import add_commands


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_text_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fields", "--source", "syscall"]) == 0
    out = capsys.readouterr().out
    assert "Event source: syscall" in out and "k8s_audit" not in out
    assert "proc.aname[N]" in out and "thread.cap_effective" in out and "fd.snet" in out
    assert "FILTER ONLY" in out and "DEPRECATED" in out


def test_json_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fields", "--source", "k8s_audit", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    verb = next(d for d in doc if d["name"] == "ka.verb")
    assert verb["type"] == "string" and verb["source"] == "k8s_audit"
    assert run(["fields", "--names"]) == 0
    names = capsys.readouterr().out.split()
    assert "proc.name" in names and "ka.verb" in names


def test_unknown_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fields", "--source", "nope"]) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err
