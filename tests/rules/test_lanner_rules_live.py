# SPDX-License-Identifier: Apache-2.0
"""Lanner's default rules against events from the real kernel: run real commands on the host, collect them with
the collector's eBPF source, evaluate rules/lanner_rules.yaml and check which rules fire and what the alert says.

This closes the gap the YAML rule tests leave open: those build events from Falco field names, these prove that the
collector fills the fields the rules read (flags, fd names, users, login uid, euid of set-uid programs, sockets).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.source import KernelSource
from lanner.model import Event
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.fields import EventContext
from tests.support.kernel_source import WAIT_S, collect, drain, kernel_source

pytestmark = pytest.mark.bpf

RULES = Path(__file__).resolve().parents[2] / "rules" / "lanner_rules.yaml"
# (rule name, rendered output) for each matching event
Alerts = list[tuple[str, str]]


@pytest.fixture(scope="module")
def engine() -> Engine:
    res = load_rules([str(RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    # As in production: the kernel traces and passes only what these rules need.
    yield from kernel_source(spec_rules=[str(RULES)])


def exited(pid: int) -> Callable[[list[Event]], bool]:
    return lambda evs: any(e.proc.pid == pid and e.type == "procexit" for e in evs)


def alerts_of(engine: Engine, events: list[Event], pids: set[int]) -> Alerts:
    out: Alerts = []
    for ev in events:
        if ev.proc.pid not in pids:
            continue
        ctx = EventContext(ev)
        for m in engine.process(ctx):
            out.append((m.name, m.render(ctx, "test-host").output))
    return out


def run(cmd: list[str], **kw: object) -> int:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    p.wait(timeout=60)
    return int(p.pid)


def test_root_cat_etc_shadow_on_the_host_alerts(source: KernelSource, engine: Engine) -> None:
    drain(source)
    pid = run(["cat", "/etc/shadow"])
    alerts = alerts_of(engine, collect(source, exited(pid)), {pid})
    assert [name for name, _ in alerts] == ["Credential file read by untrusted program"], alerts
    output = alerts[0][1]
    for part in ("file=/etc/shadow", "process=cat", "cmdline=cat /etc/shadow", "user=root", "uid=0", "container=host"):
        assert part in output, output


def test_reading_passwd_and_binaries_is_quiet(source: KernelSource, engine: Engine) -> None:
    drain(source)
    pids = {run(["cat", "/etc/passwd"]), run(["sha256sum", "/usr/bin/cat"])}
    events = collect(source, lambda evs: all(exited(p)(evs) for p in pids))
    assert alerts_of(engine, events, pids) == []


def test_planting_a_file_in_usr_local_bin_alerts(source: KernelSource, engine: Engine) -> None:
    target = Path("/usr/local/bin") / f".lanner-rules-test-{os.getpid()}"
    drain(source)
    try:
        cp = run(["cp", "/bin/true", str(target)])
        mv_src = Path("/tmp") / f"lanner-rules-mv-{os.getpid()}"
        shutil.copy("/bin/true", mv_src)
        mv = run(["mv", str(mv_src), str(target)])
        events = collect(source, lambda evs: exited(cp)(evs) and exited(mv)(evs))
    finally:
        target.unlink(missing_ok=True)
    alerts = alerts_of(engine, events, {cp, mv})
    assert [name for name, _ in alerts] == ["Write to system binary directory"] * 2, alerts
    assert f"file={target}" in alerts[0][1] and "process=cp" in alerts[0][1]
    assert f"newpath={target}" in alerts[1][1] and "process=mv" in alerts[1][1]


def _host_address() -> str:
    """A non-loopback address of this host (the source address of the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        addr = str(s.getsockname()[0])
    if addr.startswith("127."):
        pytest.skip("no non-loopback IPv4 address")
    return addr


def test_bash_dev_tcp_connection_alerts(source: KernelSource, engine: Engine) -> None:
    addr = _host_address()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind((addr, 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        drain(source)
        pid = run(["bash", "-c", f"echo hello > /dev/tcp/{addr}/{port}"])
        events = collect(source, exited(pid))
    alerts = alerts_of(engine, events, {pid})
    assert [name for name, _ in alerts] == ["Network connection from shell or netcat"], alerts
    output = alerts[0][1]
    assert f"server_ip={addr} server_port={port}" in output and "process=bash" in output, output


def test_bash_dev_tcp_to_loopback_is_quiet(source: KernelSource, engine: Engine) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        drain(source)
        pid = run(["bash", "-c", f"echo hello > /dev/tcp/127.0.0.1/{port}"])
        events = collect(source, exited(pid))
    assert any(e.type == "connect" and e.proc.pid == pid for e in events), "no connect event collected"
    assert alerts_of(engine, events, {pid}) == []


def test_setuid_copy_run_in_a_user_session_alerts(source: KernelSource, engine: Engine, tmp_path: Path) -> None:
    # A set-uid-root copy of sleep (slow enough for the collector to read its euid from /proc), run as nobody
    # inside a "login session" of uid 1000: the shell sets its audit login uid, then drops to nobody.
    if os.statvfs(tmp_path).f_flag & os.ST_NOSUID:
        pytest.skip("the temporary directory is mounted nosuid")
    planted = tmp_path / "rootsleep"
    shutil.copy("/usr/bin/sleep", planted)
    os.chmod(planted, 0o4755)
    os.chmod(tmp_path, 0o755)
    # Under `sudo make test`, sudo is an ancestor of this test, and the rule rightly exempts sudo's descendants.
    # So the session starts detached, as a login would: a shell started in the background of one that exits at
    # once (its pid is $1) waits until a reaper has adopted it, then sets its login uid and runs the planted program.
    status = tmp_path / "status"
    session = tmp_path / "session.sh"
    session.write_text(
        'while kill -0 "$1" 2>/dev/null; do sleep 0.02; done\n'
        "sh -c 'echo 1000 > /proc/self/loginuid || exit 3; "
        f"exec setpriv --reuid=65534 --regid=65534 --clear-groups {planted} 1'\n"
        f"echo $? > {status}\n"
    )
    drain(source)
    # Poll while the program runs: the collector reads the euid and login uid of a new image from /proc.
    subprocess.run(["sh", "-c", f"setsid sh {session} $$ </dev/null >/dev/null 2>&1 &"], check=True, timeout=10)
    # The exec chain sh -> setpriv -> rootsleep keeps one pid; find it by name.
    events = collect(source, lambda evs: any(e.proc.comm == "rootsleep" and e.type == "procexit" for e in evs))
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (status.exists() and status.read_text().strip()):
        time.sleep(0.05)
    code = status.read_text().strip()
    if code == "3":
        pytest.skip("cannot set the audit login uid here")
    assert code == "0", code
    pids = {e.proc.pid for e in events if e.proc.comm == "rootsleep"}
    assert pids, "rootsleep not seen"
    execs = [e for e in events if e.proc.pid in pids and e.type == "execve" and e.proc.comm == "rootsleep"]
    alerts = [(n, o) for ev in execs for n, o in alerts_of(engine, [ev], pids)]
    assert [n for n, _ in alerts] == ["Root shell or program via setuid outside sudo"], alerts
    assert "process=rootsleep" in alerts[0][1] and "uid=0" in alerts[0][1] and "loginuid=1000" in alerts[0][1]
