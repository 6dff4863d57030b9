# SPDX-License-Identifier: Apache-2.0
"""``.scap`` captures: what Lanner writes reads back through ``sysdig -r`` (the oracle) with the same events, and
Lanner's reader gives the events sysdig prints for the same capture."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lanner.cli import main
from ruleengine.events_json import event_from_fields
from ruleengine.replay_input import EventReader
from ruleengine.scap import ppm_open_flags, render_ppm_open_flags, write_scap
from tests.ruleengine.fields_util import value

SYSDIG = shutil.which("sysdig")
FIELDS = ("evt.type", "proc.name", "proc.pid", "fd.name", "evt.arg.flags", "evt.rawtime", "proc.exepath")

OPENS = [
    {
        "evt.type": "openat",
        "proc.name": "cat",
        "proc.pid": 4242,
        "proc.exepath": "/usr/bin/cat",
        "proc.args": ["/etc/shadow"],
        "proc.cwd": "/root/",
        "fd.name": "/etc/shadow",
        "fd.num": 3,
        "evt.arg.flags": "O_RDONLY|O_CLOEXEC",
        "evt.rawres": 3,
        "evt.rawtime": 1_700_000_000_000_000_001,
    },
    {
        "evt.type": "openat",
        "proc.name": "nginx",
        "proc.pid": 77,
        "proc.exepath": "/usr/sbin/nginx",
        "fd.name": "/var/log/nginx/access.log",
        "fd.num": 5,
        "evt.arg.flags": "O_WRONLY|O_CREAT|O_APPEND",
        "evt.rawres": 5,
        "evt.rawtime": 1_700_000_000_000_000_002,
    },
    {
        "evt.type": "open",
        "proc.name": "python3",
        "proc.pid": 900,
        "proc.exepath": "/usr/bin/python3",
        "fd.name": "/tmp/x",
        "fd.num": 4,
        "evt.arg.flags": "O_RDWR|O_TRUNC",
        "evt.rawres": 4,
        "evt.rawtime": 1_700_000_000_000_000_003,
    },
    {"evt.type": "execve", "proc.name": "ls", "proc.pid": 901},  # not written: only file opens are
]

# CI installs sysdig (scripts/setup-host.sh) and must never skip this
needs_sysdig = pytest.mark.skipif(
    SYSDIG is None and not os.environ.get("CI"), reason="sysdig is installed by scripts/setup-host.sh"
)


# Falco's published capture files (falcosecurity/libs test resources) are not part of this repository: they are
# read from the shared data folder beside it when it has them (LANNER_SCAP_CAPTURES overrides the place).
CAPTURES = Path(
    os.environ.get("LANNER_SCAP_CAPTURES", Path(__file__).resolve().parents[3] / "shared" / "scap-captures")
)
PUBLISHED = sorted(p.name for p in CAPTURES.glob("*.scap")) if CAPTURES.is_dir() else []


def sysdig_events(path: Path, fields: tuple[str, ...] = FIELDS) -> list[tuple[str, ...]]:
    assert SYSDIG is not None
    fmt = "\t".join(f"%{f}" for f in fields)
    cmd = [SYSDIG, "-r", str(path), "-p", fmt, "evt.type in (open, openat) and evt.dir=<"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line.strip()]


def lanner_events(path: Path, fields: tuple[str, ...] = FIELDS) -> list[tuple[str, ...]]:
    return [tuple(str(value(ev, f)) for f in fields) for ev in EventReader(str(path), warn=lambda m: None)]


if PUBLISHED:  # defined only where the captures are: there is nothing to skip without them

    @needs_sysdig
    @pytest.mark.parametrize("name", PUBLISHED)
    def test_falcos_published_captures_give_the_events_sysdig_prints(name: str) -> None:
        # old captures: gzip, V1 event blocks, a PL_V5 process list, processes known from clone/execve events
        fields = (
            "evt.type",
            "proc.name",
            "proc.pid",
            "thread.tid",
            "fd.name",
            "evt.arg.flags",
            "evt.rawtime",
            "fd.num",
        )
        seen = sysdig_events(CAPTURES / name, fields)
        assert seen, "sysdig printed no file opens"
        assert lanner_events(CAPTURES / name, fields) == seen


def test_open_flags_in_the_drivers_encoding() -> None:
    assert render_ppm_open_flags(ppm_open_flags(0o2000000)) == "O_RDONLY|O_CLOEXEC"
    assert render_ppm_open_flags(ppm_open_flags(0o1 | 0o100 | 0o2000)) == "O_APPEND|O_CREAT|O_WRONLY"


@needs_sysdig
def test_a_capture_lanner_writes_reads_back_through_sysdig(tmp_path: Path) -> None:
    cap = tmp_path / "lanner.scap"
    assert write_scap(str(cap), [event_from_fields(r) for r in OPENS]) == (3, 1)
    seen = sysdig_events(cap)
    assert [(e[0], e[1], e[2], e[3]) for e in seen] == [
        ("openat", "cat", "4242", "/etc/shadow"),
        ("openat", "nginx", "77", "/var/log/nginx/access.log"),
        ("openat", "python3", "900", "/tmp/x"),
    ]
    assert [e[4] for e in seen] == ["O_RDONLY|O_CLOEXEC", "O_APPEND|O_CREAT|O_WRONLY", "O_TRUNC|O_RDWR"]
    assert [e[5] for e in seen] == ["1700000000000000001", "1700000000000000002", "1700000000000000003"]
    # Lanner's reader gives the events sysdig prints for the same capture, plain or gzip
    assert lanner_events(cap) == seen
    gz = tmp_path / "lanner.scap.gz"
    gz.write_bytes(gzip.compress(cap.read_bytes()))
    assert lanner_events(gz) == seen


def test_record_and_replay_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in OPENS))
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- rule: shadow\n  desc: d\n  condition: evt.type in (open, openat) and fd.name = /etc/shadow\n"
        "  output: shadow by %proc.name\n  priority: WARNING\n"
    )
    cap = tmp_path / "out.scap"
    assert main(["record", str(events), "--format", "scap", "-o", str(cap)]) == 0
    assert main(["replay", str(cap), "--rules", str(rules)]) == 0
    out = capsys.readouterr()
    assert out.out.count("shadow by cat") == 1, out
    bad = tmp_path / "bad.scap"
    bad.write_bytes(cap.read_bytes()[:60])
    assert main(["replay", str(bad), "--rules", str(rules)]) == 1
    assert "cannot read the capture" in capsys.readouterr().err
