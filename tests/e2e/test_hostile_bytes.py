# SPDX-License-Identifier: Apache-2.0
"""Issue 10, attacks 1 and 2, against `lanner up` on the real kernel: bytes a process chooses (argv, env, file
names that are not UTF-8, control bytes, empty arguments next to the NUL separators, 4096-byte paths, 10k
arguments) travel through every hop beside a real attack, `cat /etc/shadow`. The attack's alert must arrive and
no service may restart.

Each attack process both carries the hostile bytes and reads /etc/shadow, so the alerting event and the hostile
ones leave the kernel together and share a batch at every hop.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import AlertCollector

pytestmark = [pytest.mark.e2e, pytest.mark.bpf]

RULE = "Credential file read by untrusted program"
NAME_MAX = 255


def run(argv: list[bytes], env: dict[bytes, bytes] | None = None) -> int:
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait(timeout=60)
    return int(p.pid)


def shadow_alert(subscriber: AlertCollector, pid: int) -> dict[str, object]:
    alert = subscriber.wait_for(
        lambda a: a.rule == RULE and json.loads(a.output_fields_json).get("proc.pid") == pid, timeout=60
    )
    fields: dict[str, object] = json.loads(alert.output_fields_json)
    assert fields["fd.name"] == "/etc/shadow"
    return fields


@pytest.fixture
def no_restarts(lanner_up: Path) -> Iterator[None]:
    yield
    stderr = (lanner_up / "up.stderr").read_text(errors="replace")
    assert "restarting" not in stderr, stderr[-3000:]
    for log in (lanner_up / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert "background task failed" not in text, (log.name, text[-3000:])


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hostile"
    d.mkdir()
    return d


def test_nobody_with_an_invalid_utf8_argument_does_not_crash_the_collector(
    subscriber: AlertCollector, no_restarts: None
) -> None:
    # The reproducer: any user could kill the collector with one byte.
    run([b"runuser", b"-u", b"nobody", b"--", b"/bin/true", b"\xff"])
    pid = run([b"cat", b"/etc/shadow", b"\xff\xfe"])
    fields = shadow_alert(subscriber, pid)
    assert fields["proc.cmdline"] == "cat /etc/shadow \ufffd\ufffd"


def test_file_name_that_is_not_utf8_does_not_hide_the_read_beside_it(
    subscriber: AlertCollector, no_restarts: None, bad_dir: Path
) -> None:
    bad = os.fsencode(bad_dir) + b"/name-\xff\xfe-\x01\x7f"
    Path(os.fsdecode(bad)).write_text("x")
    pid = run([b"cat", bad, b"/etc/shadow", bad])
    shadow_alert(subscriber, pid)


def test_environment_that_is_not_utf8(subscriber: AlertCollector, no_restarts: None) -> None:
    env = {b"PATH": b"/usr/bin:/bin", b"K\xff": b"\xfe\x01\x1b[31m", b"E": b""}
    pid = run([b"cat", b"/etc/shadow"], env=env)
    shadow_alert(subscriber, pid)


def test_control_and_empty_arguments_next_to_the_nul_separators(subscriber: AlertCollector, no_restarts: None) -> None:
    pid = run([b"cat", b"", b"\x01", b"/etc/shadow", b"", b"\xff", b"\x1b]0;x\x07", b"a\r\nb", b""])
    fields = shadow_alert(subscriber, pid)
    assert "/etc/shadow" in str(fields["proc.cmdline"])


def test_paths_of_4096_bytes(subscriber: AlertCollector, no_restarts: None, bad_dir: Path) -> None:
    # A path of PATH_MAX - 1 bytes (the longest the kernel takes) and one of PATH_MAX (ENAMETOOLONG), made of
    # components that are not UTF-8.
    base = os.fsencode(bad_dir)
    component = b"\xff" * (NAME_MAX - 1)
    longest = base
    while len(longest) + 1 + len(component) < 4095:
        longest += b"/" + component
    longest += b"/" + b"a" * (4095 - len(longest) - 1)
    assert len(longest) == 4095
    too_long = longest + b"b"
    pid = run([b"cat", longest, too_long, b"/etc/shadow", longest])
    shadow_alert(subscriber, pid)


def test_ten_thousand_arguments(subscriber: AlertCollector, no_restarts: None) -> None:
    args = [b"/nonexistent/\xff%d" % i for i in range(10_000)]
    pid = run([b"cat", b"/etc/shadow", *args])
    fields = shadow_alert(subscriber, pid)
    assert str(fields["proc.cmdline"]).startswith("cat /etc/shadow /nonexistent/\ufffd0")
