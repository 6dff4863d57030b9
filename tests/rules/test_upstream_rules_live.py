# SPDX-License-Identifier: Apache-2.0
"""Upstream (Falco stable) rules against the real kernel, a real container runtime and the real enricher: perform
the behaviour in a container, collect it with the eBPF source, enrich it from Docker, evaluate the stable rules.

The processes here exit within a millisecond of their exec, so what the rules read about them (the executable's
layer, inode times, the terminal, the login uid) must have been captured in the kernel at the exec.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector.source import KernelSource
from enricher.enrich import Enricher
from enricher.runtimes import connect_runtimes
from lanner.convert import event_from_pb, event_to_pb
from lanner.model import Event
from ruleengine import dnsnames
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.fields import EventContext
from tests.support.kernel_source import collect, drain, kernel_source

pytestmark = pytest.mark.bpf

STABLE = Path(__file__).resolve().parents[3] / "shared" / "falco-rules" / "falco_rules.yaml"
DOCKER_SOCKET = "/var/run/docker.sock"
IMAGE = "local/busybox"


@pytest.fixture(scope="module")
def engine() -> Engine:
    res = load_rules([str(STABLE)], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    # A larger ring buffer than the shared fixture's: other work on this machine must not crowd out the few events
    # a case looks for.
    yield from kernel_source(pages=4096)


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """A long-running container (the usual target: a service that was broken into)."""
    if shutil.which("docker") is None:
        pytest.fail("docker is needed (scripts/container-stack.sh installs it)")
    name = f"lanner-live-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, IMAGE, "sleep", "600"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def enrich(events: list[Event]) -> list[Event]:
    """Container metadata for the events, from Docker, as the enricher service adds it."""

    async def run() -> list[Event]:
        chain = await connect_runtimes(DOCKER_SOCKET, [], 60.0)
        enr = Enricher(chain, wait_s=60.0, lookup_timeout_s=60.0)
        try:
            pbs = [event_to_pb(e) for e in events]
            await enr.enrich(pbs)
            return [event_from_pb(p) for p in pbs]
        finally:
            await enr.close()
            await chain.close()

    return asyncio.run(run())


def alerts(engine: Engine, events: list[Event], keep: Callable[[Event], bool]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ev in enrich([e for e in events if keep(e)]):
        ctx = EventContext(ev)
        for m in engine.process(ctx):
            out.append((m.name, m.render(ctx, "test-host").output))
    return out


def test_a_binary_dropped_into_a_container_and_run_at_once_alerts(
    source: KernelSource, engine: Engine, container: str
) -> None:
    drain(source)
    # `script` gives docker exec -t a terminal, so the dropped binary runs with one (proc.tty).
    cmd = f"docker exec -t {container} sh -c 'cp /bin/busybox /tmp/dropped && /tmp/dropped true; true'"
    subprocess.run(["script", "-qec", cmd, "/dev/null"], check=False, capture_output=True, timeout=60)

    def dropped_exited(evs: list[Event]) -> bool:
        return any(e.type == "procexit" and e.proc.comm == "dropped" for e in evs)

    events = collect(source, dropped_exited)
    execs = [e for e in events if e.type == "execve" and e.proc.exepath == "/tmp/dropped" and e.res == 0]
    assert execs, "no exec of /tmp/dropped seen"
    found = alerts(engine, events, lambda e: e in execs)
    names = [n for n, _ in found]
    assert "Drop and execute new binary in container" in names, found
    output = dict(found)["Drop and execute new binary in container"]
    p = execs[0].proc
    assert p.exe_ino is not None and p.is_exe_upper_layer is True and p.is_exe_writable is True
    for part in (
        "proc_exe=/tmp/dropped",
        "proc_exepath=/tmp/dropped",
        "exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER",
        "user_loginuid=-1",
        f"proc_exe_ino_ctime={p.exe_ino_ctime}",
        "process=dropped",
        "parent=sh",
    ):
        assert part in output, output
    assert p.tty and f"terminal={p.tty}" in output, output
    # Spawned after the copy: the executable changed a moment before the process started.
    duration = int(output.split("proc_exe_ino_ctime_duration_proc_start=")[1].split()[0])
    assert 0 < duration < 60 * 10**9, output
    assert p.cap_effective and p.cap_effective != (1 << 41) - 1  # a container's reduced capability set


def test_an_image_binary_run_in_a_container_is_quiet(source: KernelSource, engine: Engine, container: str) -> None:
    drain(source)
    subprocess.run(["docker", "exec", container, "/bin/true"], check=True, capture_output=True, timeout=60)

    def done(evs: list[Event]) -> bool:
        return any(e.type == "procexit" and e.proc.exe == "/bin/true" for e in evs)

    events = collect(source, done)
    execs = [e for e in events if e.type == "execve" and e.proc.exe == "/bin/true"]
    assert execs and execs[0].proc.is_exe_upper_layer is False
    assert "Drop and execute new binary in container" not in [n for n, _ in alerts(engine, events, execs.__contains__)]


K8S_API_NAME = "kubernetes.default.svc.cluster.local"


@pytest.fixture
def api_server_name(container: str) -> Iterator[tuple[str, int]]:
    """The cluster's API server name resolving (through /etc/hosts) to an address the container reaches: the
    Docker bridge gateway, where a listener stands in for the API server. Returns (address, port)."""
    gateway = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}", container],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert gateway, "container has no bridge gateway"
    marker = f"# lanner-test {uuid.uuid4().hex}"
    hosts = Path("/etc/hosts")
    original = hosts.read_text()
    hosts.write_text(original.rstrip("\n") + f"\n{gateway} {K8S_API_NAME} {marker}\n")
    listener = socket.create_server((gateway, 0))
    try:
        yield gateway, listener.getsockname()[1]
    finally:
        listener.close()
        hosts.write_text("".join(line for line in hosts.read_text().splitlines(True) if marker not in line))


def test_a_container_contacting_the_api_server_by_its_address_alerts(
    source: KernelSource, engine: Engine, container: str, api_server_name: tuple[str, int]
) -> None:
    address, port = api_server_name
    # The stable rules name the API server; compiling them put that name on the watch list. Resolve it now rather
    # than at the next periodic refresh.
    assert K8S_API_NAME in dnsnames.WATCHED.names
    dnsnames.WATCHED.refresh()
    drain(source)
    # The listener never answers, so nc is bounded by `timeout`.
    subprocess.run(
        ["docker", "exec", container, "sh", "-c", f"timeout 2 nc {address} {port} </dev/null; true"],
        check=False,
        capture_output=True,
        timeout=60,
    )

    def connected(evs: list[Event]) -> bool:
        return any(e.type == "connect" and e.proc.comm == "nc" for e in evs)

    events = collect(source, connected)
    found = alerts(engine, events, lambda e: e.type == "connect" and e.proc.comm == "nc")
    assert "Contact K8S API Server From Container" in [n for n, _ in found], found
    output = dict(found)["Contact K8S API Server From Container"]
    assert f"{address}:{port}" in output and "process=nc" in output, output


def test_contacting_another_address_from_a_container_is_quiet(
    source: KernelSource, engine: Engine, container: str
) -> None:
    dnsnames.WATCHED.refresh()
    with socket.create_server(("0.0.0.0", 0)) as other:
        port = other.getsockname()[1]
        drain(source)
        # The container's own address, not the API server's.
        subprocess.run(
            ["docker", "exec", container, "sh", "-c", f"timeout 2 nc $(hostname -i) {port} </dev/null; true"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        events = collect(source, lambda evs: any(e.type == "connect" and e.proc.comm == "nc" for e in evs))
    found = alerts(engine, events, lambda e: e.type == "connect" and e.proc.comm == "nc")
    assert "Contact K8S API Server From Container" not in [n for n, _ in found], found


def test_a_shell_with_a_terminal_in_a_container_alerts(source: KernelSource, engine: Engine, container: str) -> None:
    drain(source)
    # A shell that exits at once: its terminal is known only from the kernel at the exec.
    cmd = f"docker exec -t {container} sh -c true"
    subprocess.run(["script", "-qec", cmd, "/dev/null"], check=False, capture_output=True, timeout=60)

    def done(evs: list[Event]) -> bool:
        return any(e.type == "procexit" and e.proc.exe == "sh" and e.proc.args == ("-c", "true") for e in evs)

    events = collect(source, done)
    shells = [e for e in events if e.type == "execve" and e.proc.exe == "sh" and e.proc.args == ("-c", "true")]
    assert shells and shells[0].proc.tty
    found = alerts(engine, events, shells.__contains__)
    assert "Terminal shell in container" in [n for n, _ in found], found
    assert f"terminal={shells[0].proc.tty}" in dict(found)["Terminal shell in container"]


def test_fileless_execution_from_a_memfd_alerts(source: KernelSource, engine: Engine) -> None:
    # The program copies an executable into an anonymous memory file and runs it from there (fexecve).
    program = (
        "import os, shutil\n"
        "fd = os.memfd_create('payload', 0)\n"
        "with open('/usr/bin/true', 'rb') as src:\n"
        "    os.write(fd, src.read())\n"
        "os.execv(f'/proc/self/fd/{fd}', ['payload'])\n"
    )
    drain(source)
    p = subprocess.Popen(["python3", "-c", program])
    p.wait(timeout=60)

    def done(evs: list[Event]) -> bool:
        return any(e.type == "procexit" and e.proc.pid == p.pid for e in evs)

    events = collect(source, done)
    execs = [e for e in events if e.type == "execve" and e.proc.pid == p.pid and e.proc.exe == "payload"]
    assert execs and execs[0].proc.is_exe_from_memfd is True
    found = alerts(engine, events, execs.__contains__)
    assert "Fileless execution via memfd_create" in [n for n, _ in found], found
    assert "EXE_FROM_MEMFD" in dict(found)["Fileless execution via memfd_create"]
