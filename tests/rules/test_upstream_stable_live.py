# SPDX-License-Identifier: Apache-2.0
"""Falco's stable rules against the real kernel: each case performs the behaviour a rule describes, on the host or in
a real Docker container, collects it with the eBPF source, enriches it from Docker and checks the rule fires.

Stable rules with no live case here, and why, are listed in the syscalls helper's note (notes/syscalls.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.source import KernelSource
from lanner.model import Event
from ruleengine.engine import Engine
from tests.rules.test_upstream_rules_live import IMAGE, alerts
from tests.rules.test_upstream_rules_live import engine as engine
from tests.rules.test_upstream_rules_live import source as source
from tests.support.kernel_source import collect, drain, without_drops

pytestmark = pytest.mark.bpf

FORKS = frozenset({"clone", "clone3", "fork", "vfork"})


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="lanner-stable-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _run_tree(src: KernelSource, argv: list[str]) -> list[Event]:
    """Run ``argv``; the events of it and every process it started."""

    def attempt() -> list[Event]:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait(timeout=60)
        tree = {p.pid}
        out: list[Event] = []

        def done(evs: list[Event]) -> bool:
            for e in evs[len(out) :]:
                out.append(e)
                if e.proc.pid in tree and e.type in FORKS and e.res > 0:
                    tree.add(e.res)
            return any(e.type == "procexit" and e.proc.pid == p.pid for e in evs)

        collect(src, done)
        return [e for e in out if e.proc.pid in tree]

    return without_drops(src, attempt)


PTRACE = (
    "import ctypes, os, signal, time\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    time.sleep(5); os._exit(0)\n"
    "libc.ptrace(16, child, None, None)\n"  # PTRACE_ATTACH
    "os.waitpid(child, 0)\n"
    "libc.ptrace(17, child, None, None)\n"  # PTRACE_DETACH
    "os.kill(child, signal.SIGKILL); os.waitpid(child, 0)\n"
)

HOST_CASES: list[tuple[str, str]] = [
    ("Search Private Keys or Passwords", "find {d} -maxdepth 1 -name id_rsa"),
    ("Find AWS Credentials", "find {d} -maxdepth 1 -path {d}/.aws/credentials"),
    ("Remove Bulk Data from Disk", "echo secret > {d}/wipe && shred -u {d}/wipe"),
    ("Create Symlink Over Sensitive Files", "ln -sf /etc/shadow {d}/shadow-link"),
    ("Create Hardlink Over Sensitive Files", "ln -f /etc/shadow {d}/shadow-hard || true"),
    ("Execution from /dev/shm", "cp /bin/true /dev/shm/lanner-{u} && /dev/shm/lanner-{u}; rm -f /dev/shm/lanner-{u}"),
    (
        "Clear Log Activities",
        "python3 -c \"open('/var/log/lanner-{u}.log', 'w').close()\"; rm -f /var/log/lanner-{u}.log",
    ),
]
PY_CASES: list[tuple[str, str]] = [
    ("Directory traversal monitored file read", "open('{d}/../../etc/shadow').close()"),
    ("PTRACE attached to process", PTRACE),
    ("PTRACE anti-debug attempt", "import ctypes; ctypes.CDLL(None).ptrace(0, 0, None, None)"),
]
DIRECT_CASES: list[tuple[str, list[str]]] = [
    ("Read sensitive file untrusted", ["cat", "/etc/shadow"]),
]


@pytest.mark.parametrize(("rule", "script"), HOST_CASES, ids=[r for r, _ in HOST_CASES])
def test_host_behaviour_alerts(source: KernelSource, engine: Engine, scratch: Path, rule: str, script: str) -> None:
    cmd = script.format(d=scratch, u=uuid.uuid4().hex[:8])
    events = _run_tree(source, ["sh", "-c", cmd])
    found = alerts(engine, events, lambda e: True)
    assert rule in [n for n, _ in found], (cmd, sorted({n for n, _ in found}))


@pytest.mark.parametrize(("rule", "program"), PY_CASES, ids=[r for r, _ in PY_CASES])
def test_program_behaviour_alerts(source: KernelSource, engine: Engine, scratch: Path, rule: str, program: str) -> None:
    # Not started from a shell: some rules leave shells' own reads out.
    events = _run_tree(source, ["python3", "-c", program.format(d=scratch)])
    found = alerts(engine, events, lambda e: True)
    assert rule in [n for n, _ in found], sorted({n for n, _ in found})


SERVER_CASES: list[tuple[str, str]] = [
    ("Run shell untrusted", "import subprocess; subprocess.run(['sh', '-c', 'true'])"),
    # Trusted server programs may read sensitive files while they start (5 s); not later.
    ("Read sensitive file trusted after startup", "import time; time.sleep(5.5); open('/etc/shadow').close()"),
]


@pytest.mark.parametrize(("rule", "program"), SERVER_CASES, ids=[r for r, _ in SERVER_CASES])
def test_web_server_behaviour_alerts(
    source: KernelSource,
    engine: Engine,
    scratch: Path,
    rule: str,
    program: str,
) -> None:
    # A program running under a web server's name (the kernel names a process after the file it executed).
    nginx = scratch / "nginx"
    if not nginx.exists():
        nginx.symlink_to(os.path.realpath("/usr/bin/python3"))  # the interpreter itself, not a wrapper script
    found = alerts(engine, _run_tree(source, [str(nginx), "-c", program]), lambda e: True)
    assert rule in [n for n, _ in found], sorted({n for n, _ in found})


@pytest.mark.parametrize(("rule", "argv"), DIRECT_CASES, ids=[r for r, _ in DIRECT_CASES])
def test_command_alerts(source: KernelSource, engine: Engine, rule: str, argv: list[str]) -> None:
    found = alerts(engine, _run_tree(source, argv), lambda e: True)
    assert rule in [n for n, _ in found], sorted({n for n, _ in found})


# ---------------------------------------------------------------- in containers
@pytest.fixture(scope="module")
def sys_admin() -> Iterator[str]:
    # (--privileged containers cannot start on this sandboxed host: runc cannot apply every capability.)
    name = f"lanner-sysadmin-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--cap-add", "SYS_ADMIN", "--name", name, "local/bookworm", "sleep", "600"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def sys_module() -> Iterator[str]:
    name = f"lanner-sysmodule-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--cap-add", "SYS_MODULE", "--name", name, "local/bookworm", "sleep", "600"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def plain() -> Iterator[str]:
    name = f"lanner-plain-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, IMAGE, "sleep", "600"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _full_id(name: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def _in_container(src: KernelSource, name: str, argv: list[str], last: str, before: list[str]) -> list[Event]:
    """Run ``argv`` in the container (after ``before``, detached); its events until a process ``last`` exited."""
    cid = _full_id(name)

    def mine(e: Event) -> bool:
        return any(cid in line for line in e.proc.cgroups)

    def attempt() -> list[Event]:
        if before:
            # The helper is a listener: wait until the probes saw it listen, then drop its events.
            subprocess.run(["docker", "exec", "-d", name, *before], capture_output=True, timeout=120)
            collect(src, lambda evs: any(e.type == "listen" and mine(e) for e in evs))
            drain(src)
        subprocess.run(["docker", "exec", name, *argv], capture_output=True, timeout=120)
        events = collect(src, lambda evs: any(e.type == "procexit" and e.proc.comm == last and mine(e) for e in evs))
        return [e for e in events if mine(e)]

    return without_drops(src, attempt)


# Commands run directly, not through busybox sh: its applets re-exec /proc/self/exe and are named "exe".
CONTAINER_CASES: list[tuple[str, str, list[str], str, list[str]]] = [
    # (rule, container fixture, command, comm of the last process, helper started before)
    (
        "Netcat Remote Code Execution in Container",
        "plain",
        ["nc", "-e", "/bin/true", "127.0.0.1", "9100"],
        "nc",
        ["nc", "-l", "-p", "9100"],
    ),
    (
        "Packet socket created in container",
        "plain",
        ["arping", "-c", "1", "-w", "1", "-I", "eth0", "127.0.0.1"],
        "arping",
        [],
    ),
    ("Detect release_agent File Container Escapes", "sys_admin", ["touch", "/tmp/release_agent"], "touch", []),
]


def test_module_loading_in_a_container_alerts(source: KernelSource, engine: Engine, sys_module: str) -> None:
    # This kernel has no module support, so both calls fail (ENOSYS); the rule does not look at the result: an
    # attempt by a container holding CAP_SYS_MODULE is what it reports. init_module and finit_module have no
    # tracepoints here and are caught on the raw sys_enter tracepoint.
    program = "open(my $f, '<', '/etc/hostname'); my $u = 'x=1'; my $i = 'x'; syscall(313, fileno($f), $u, 0); "
    program += "syscall(175, $i, 1, $u)"  # perl's syscall() wants variables (literals are read-only)
    argv = ["perl", "-e", program]
    events = _in_container(source, sys_module, argv, "perl", [])
    loads = [e for e in events if e.type in ("init_module", "finit_module")]
    assert sorted(e.type for e in loads) == ["finit_module", "init_module"], sorted({e.type for e in events})
    assert all(e.res < 0 for e in loads)
    found = alerts(engine, loads, lambda e: True)
    rule = "Linux Kernel Module Injection Detected"
    assert [n for n, _ in found] == [rule, rule], found
    outputs = [o for _, o in found]
    assert any("evt_type=finit_module" in o and "res=ENOSYS" in o for o in outputs), outputs
    # The same calls from a host process: seen, but the rule is about containers.
    host = [e for e in _run_tree(source, argv) if e.type in ("init_module", "finit_module")]
    assert len(host) == 2 and not alerts(engine, host, lambda e: True)


def test_stdout_redirected_to_a_socket_in_a_container_alerts(
    source: KernelSource,
    engine: Engine,
    sys_admin: str,
) -> None:
    # A reverse shell's first step: a TCP connection put on stdout (bash's /dev/tcp, then dup2 onto fd 1), to a
    # listener on the host side of the container's bridge.
    gateway = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}", sys_admin],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    with socket.create_server((gateway, 0)) as listener:
        port = listener.getsockname()[1]
        argv = ["bash", "-c", f"exec 3<>/dev/tcp/{gateway}/{port}; exec 1>&3; true"]
        events = _in_container(source, sys_admin, argv, "bash", [])
    found = alerts(engine, events, lambda e: True)
    assert "Redirect STDOUT/STDIN to Network Connection in Container" in [n for n, _ in found], [
        (e.type, e.res, e.proc.comm) for e in events if e.type not in ("openat", "mmap")
    ]


@pytest.mark.parametrize(
    ("rule", "which", "argv", "last", "before"), CONTAINER_CASES, ids=[c[0] for c in CONTAINER_CASES]
)
def test_container_behaviour_alerts(
    request: pytest.FixtureRequest,
    source: KernelSource,
    engine: Engine,
    rule: str,
    which: str,
    argv: list[str],
    last: str,
    before: list[str],
) -> None:
    name = request.getfixturevalue(which)
    events = _in_container(source, name, argv, last, before)
    assert events, "no events from the container"
    found = alerts(engine, events, lambda e: True)
    assert rule in [n for n, _ in found], sorted({n for n, _ in found})


def test_system_user_running_an_interactive_program_alerts(
    source: KernelSource,
    engine: Engine,
    scratch: Path,
) -> None:
    # The daemon account (uid 1) runs a program called login: system accounts never log in.
    scratch.chmod(0o755)
    login = scratch / "login"
    if not login.exists():
        shutil.copy("/usr/bin/true", login)
        login.chmod(0o755)

    def as_daemon() -> None:
        os.setgid(1)
        os.setuid(1)

    drain(source)
    p = subprocess.Popen([str(login)], preexec_fn=as_daemon)
    p.wait(timeout=60)
    events = collect(source, lambda evs: any(e.type == "procexit" and e.proc.pid == p.pid for e in evs))
    found = alerts(engine, [e for e in events if e.proc.pid == p.pid], lambda e: True)
    assert "System user interactive" in [n for n, _ in found], found
    assert "user=daemon" in dict(found)["System user interactive"]


@pytest.fixture
def public_looking_address() -> Iterator[str]:
    """An address outside loopback and RFC 1918 that this machine answers itself: the rule wants an outbound
    connection to such a peer, and this host has no route to a real public one. 198.51.100.0/24 is TEST-NET-2
    (documentation only), added to lo for the test."""
    addr = "198.51.100.77"
    subprocess.run(["ip", "addr", "add", f"{addr}/32", "dev", "lo"], check=True, capture_output=True, timeout=30)
    try:
        yield addr
    finally:
        subprocess.run(["ip", "addr", "del", f"{addr}/32", "dev", "lo"], capture_output=True, timeout=30)


def test_ssh_to_a_non_standard_port_alerts(source: KernelSource, engine: Engine, public_looking_address: str) -> None:
    # An ssh client connecting out to port 4444 (a reverse-shell favourite in the rule's list); the listener only
    # accepts, so ssh gives up after its connect timeout.
    with socket.create_server((public_looking_address, 4444)) as listener:
        listener.settimeout(30)
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "StrictHostKeyChecking=no"]
        argv += ["-p", "4444", f"nobody@{public_looking_address}", "true"]
        events = _run_tree(source, ["timeout", "10", *argv])
    found = alerts(engine, events, lambda e: True)
    assert "Disallowed SSH Connection Non Standard Port" in [n for n, _ in found], [
        (e.type, e.res, e.proc.comm) for e in events if e.type == "connect"
    ]
