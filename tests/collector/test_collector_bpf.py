# SPDX-License-Identifier: Apache-2.0
"""The probes on the real kernel: run real commands and check what the decoded events say about them."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import preflight
from collector.source import BpfProbe, KernelSource
from lanner.model import Event, FdType, L4Proto
from tests.support.kernel_source import collect, confine, drain, kernel_source

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def of_pid(events: list[Event], pid: int, type_: str | None = None) -> list[Event]:
    return [e for e in events if e.proc.pid == pid and (type_ is None or e.type == type_)]


def run(cmd: list[str], **kw: object) -> int:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    p.wait(timeout=60)
    return int(p.pid)


def test_cat_etc_shadow(source: KernelSource) -> None:
    drain(source)
    pid = run(["cat", "/etc/shadow"], env={"PATH": os.environ["PATH"], "LANNER_MARK": "shadow test"})
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    execs = [e for e in of_pid(events, pid, "execve") if e.res == 0]
    assert execs, f"no execve from {pid}"
    ex = execs[0]
    p = ex.proc
    assert (p.comm, p.exe, p.args) == ("cat", "cat", ("/etc/shadow",))
    assert p.exepath == "/usr/bin/cat"
    assert p.uid == 0 and p.user_name == "root" and p.group_name == "root"
    assert ex.ancestors and ex.ancestors[0].pid == os.getpid()
    assert ex.arg("filename") == "/usr/bin/cat"
    assert "LANNER_MARK=shadow test" in p.env
    assert ex.identity.boot_id and ex.identity.seq > 0
    assert abs(ex.timing.event_ns - time.time_ns()) < 10_000_000_000
    opens = [e for e in of_pid(events, pid, "openat") if e.fd is not None and e.fd.path == "/etc/shadow"]
    assert opens, "no openat of /etc/shadow"
    fd = opens[0].fd
    assert fd is not None and fd.num >= 3 and opens[0].res == fd.num
    assert fd.open_flags is not None and fd.open_flags & 0o3 == os.O_RDONLY
    assert fd.type == FdType.FILE and opens[0].arg("dirfd") == -100
    assert opens[0].proc.comm == "cat" and opens[0].ancestors[0].pid == os.getpid()


def test_bash_c_true(source: KernelSource) -> None:
    drain(source)
    pid = run(["bash", "-c", "true"])
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    ex = [e for e in of_pid(events, pid, "execve") if e.res == 0]
    assert ex and ex[0].proc.comm == "bash" and ex[0].proc.args == ("-c", "true")
    assert ex[0].proc.exepath == "/usr/bin/bash"
    exits = of_pid(events, pid, "procexit")
    assert exits[0].arg("ret") == 0


def test_fork_chain_and_ancestors(source: KernelSource) -> None:
    drain(source)
    pid = run(["bash", "-c", "cat /etc/hostname; true"])

    def cat_exec(evs: list[Event]) -> list[Event]:
        return [e for e in evs if e.type == "execve" and e.res == 0 and e.proc.comm == "cat" and e.proc.ppid == pid]

    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")) and bool(cat_exec(evs)))
    forks = [e for e in of_pid(events, pid) if e.type in ("clone", "clone3", "fork", "vfork")]
    assert forks, "no fork event from bash"
    ex = cat_exec(events)[0]
    assert ex.proc.args == ("/etc/hostname",)
    assert [a.pid for a in ex.ancestors[:2]] == [pid, os.getpid()]
    assert ex.ancestors[0].comm == "bash" and ex.ancestors[0].args == ("-c", "cat /etc/hostname; true")


def test_unprivileged_user_and_relative_path(source: KernelSource) -> None:
    drain(source)
    pid = run(["cat", "hostname"], cwd="/etc", user=65534, group=65534, extra_groups=[])
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    ex = [e for e in of_pid(events, pid, "execve") if e.res == 0]
    assert ex and ex[0].proc.uid == 65534 and ex[0].proc.user_name == "nobody"
    assert ex[0].proc.cwd == "/etc/"
    opens = [e for e in of_pid(events, pid, "openat") if e.fd is not None and e.fd.path_raw == "hostname"]
    assert opens and opens[0].fd is not None and opens[0].fd.path == "/etc/hostname"
    assert opens[0].proc.user_name == "nobody"


def test_file_operations(source: KernelSource, tmp_path: Path) -> None:
    drain(source)
    pid = run(["bash", "-c", "mkdir d && mv d e && rmdir e && touch f && rm f"], cwd=str(tmp_path))
    events = collect(source, lambda evs: any(e.type in ("unlink", "unlinkat") for e in evs))
    mine = [e for e in events if e.proc.pid == pid or (e.ancestors and e.ancestors[0].pid == pid)]
    types = {e.type for e in mine}
    assert "mkdir" in types or "mkdirat" in types
    assert types & {"rename", "renameat", "renameat2"}
    assert types & {"rmdir", "unlinkat"}
    created = [e for e in mine if e.type in ("openat", "creat") and e.fd is not None and e.fd.path_raw == "f"]
    assert created and created[0].fd is not None and created[0].fd.path == str(tmp_path / "f")


def test_connect_and_accept(source: KernelSource) -> None:
    drain(source)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        child = subprocess.Popen(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}; sleep 0.2"])
        conn, _ = srv.accept()
        conn.close()
        child.wait(timeout=60)

    def done(evs: list[Event]) -> bool:
        return bool(of_pid(evs, child.pid, "connect")) and bool(of_pid(evs, os.getpid()))

    events = collect(source, done)
    con = [e for e in of_pid(events, child.pid, "connect") if e.fd is not None and e.fd.server_port == port]
    assert con, "no connect event"
    fd = con[0].fd
    assert fd is not None and fd.server_ip == bytes([127, 0, 0, 1]) and fd.type == FdType.IPV4
    assert fd.l4proto == L4Proto.TCP and fd.connected and fd.is_server is False
    lst = [e for e in events if e.proc.pid == os.getpid() and e.type == "listen"]
    assert lst and lst[0].fd is not None and lst[0].fd.is_server and lst[0].arg("backlog") == 1
    acc = [e for e in events if e.proc.pid == os.getpid() and e.type in ("accept", "accept4")]
    assert acc and acc[0].fd is not None and acc[0].fd.client_ip == bytes([127, 0, 0, 1]) and acc[0].fd.is_server


def test_excluded_process_and_its_children_are_silent(source: KernelSource) -> None:
    probe = source.reader
    assert isinstance(probe, BpfProbe)
    child = subprocess.Popen(
        ["bash", "-c", "echo started; read x; cat /etc/hostname"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline() == b"started\n"  # bash is up and about to wait for its input
    # Exclude it, then drop what it did so far: from here on, nothing it or its children do may be reported.
    probe.exclude(child.pid)
    drain(source)
    dropped = source.dropped()
    child.stdin.write(b"go\n")
    child.stdin.close()
    child.stdout.read()
    child.wait(timeout=60)
    marker = run(["true"])
    events = collect(source, lambda evs: bool(of_pid(evs, marker, "procexit")))
    assert of_pid(events, marker, "execve"), "the marker after the excluded process was not seen"
    assert not [e for e in events if e.proc.pid == child.pid or e.proc.ppid == child.pid]
    # Silence proves nothing if the kernel lost records meanwhile.
    assert source.dropped() == dropped


def test_ring_buffer_overflow_is_counted_and_reported() -> None:
    from collector.service import CollectorService, make_batch, open_enricher_stream
    from lanner.streaming import BatchSender
    from lanner.v1 import event_pb2
    from lanner.wire import SharedEvent

    if preflight.problems():
        pytest.skip("eBPF unavailable")
    src = KernelSource(BpfProbe(ring_buffer_pages=1, families=("process", "file"), exclude_self=False))
    src.start()
    try:
        # Nobody reads while 5000 opens go in: a one-page ring buffer must overflow.
        for _ in range(5000):
            os.close(os.open("/etc/hostname", os.O_RDONLY))
        sender: BatchSender[SharedEvent] = BatchSender(
            "collector-overflow-test", "127.0.0.1:1", open_enricher_stream, make_batch
        )
        service = CollectorService([src], sender, drop_alert_interval_s=10.0, identity=src.decoder.identity)
        service.pump()
        service.check_drops(time.monotonic() + 1)
        lost = src.dropped()  # other processes keep the buffer overflowing, so this may already be higher
        assert lost > 0
        drops = [event_pb2.Event.FromString(body) for body, _ in [*sender._queue.urgent, *sender._queue]]
        drops = [e for e in drops if e.source == "internal"]
        assert len(drops) == 1 and drops[0].type == "syscall_event_drop"
        assert 0 < {a.name: a.uint_value for a in drops[0].args}["n_drops"] <= lost
        assert drops[0].id.boot_id == src.decoder.identity.boot_id
    finally:
        src.close()


def _docker_ready() -> bool:
    import shutil

    if shutil.which("docker") is None:
        return False
    try:
        out = subprocess.run(["docker", "image", "inspect", "local/bookworm:latest"], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0


@pytest.mark.containers
def test_process_in_a_container(source: KernelSource) -> None:
    if not _docker_ready():
        pytest.skip("Docker with the local/bookworm image is not available (scripts/container-stack.sh)")
    drain(source)
    script = (
        "sleep 0.5 && echo 'ctruser:x:4242:4242::/home/ctr:/bin/sh' >> /etc/passwd && "
        "setpriv --reuid=4242 --regid=4242 --clear-groups cat /etc/hostname && "
        "cp /usr/bin/cat /tmp/dropped && /tmp/dropped /etc/hostname && sleep 3"
    )
    # Decode while the container runs, as the service does: its root is readable only while it is alive.
    ctr = subprocess.Popen(
        ["docker", "run", "--rm", "local/bookworm:latest", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def cat_execs(evs: list[Event]) -> list[Event]:
        return [
            e
            for e in evs
            if e.type == "execve"
            and e.res == 0
            and e.proc.comm == "cat"
            and e.proc.args == ("/etc/hostname",)
            and e.proc.uid == 4242
        ]

    def dropped_execs(evs: list[Event]) -> list[Event]:
        return [e for e in evs if e.type == "execve" and e.res == 0 and e.proc.exepath == "/tmp/dropped"]

    events = collect(source, lambda evs: bool(cat_execs(evs)) and bool(dropped_execs(evs)), timeout=120)
    assert ctr.wait(timeout=120) == 0
    found = cat_execs(events)
    assert found, "no execve of cat inside the container"
    p = found[0].proc
    # Resolved against the container's /etc/passwd, not the host's.
    assert p.user_name == "ctruser" and p.user_homedir == "/home/ctr"
    assert any("/docker/" in line for line in p.cgroups) and p.cgroup_id > 1
    # The probes report the pid inside the container once the container's pid namespace is registered (by the
    # time the shell has slept); /proc would be too late for a process as short-lived as this cat.
    assert 1 < p.vpid < p.pid
    assert found[0].ancestors[0].comm == "sh" and found[0].ancestors[0].vpid == 1
    # Falco's "drop and execute new binary": the image's cat is in a lower layer, the copy in the upper one.
    assert p.is_exe_upper_layer is False
    assert dropped_execs(events)[0].proc.is_exe_upper_layer is True


def test_execveat_via_fexecve(source: KernelSource) -> None:
    import sys

    drain(source)
    code = "import os; os.execve(os.open('/usr/bin/true', os.O_RDONLY), ['true', 'x'], {})"
    pid = run([sys.executable, "-c", code])
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    ex = [e for e in of_pid(events, pid, "execveat") if e.res == 0]
    assert ex, f"no execveat from {pid}: {sorted({e.type for e in of_pid(events, pid)})}"
    assert ex[0].proc.exe == "true" and ex[0].proc.args == ("x",)
    assert ex[0].proc.exepath == "/usr/bin/true"
    assert ex[0].arg("flags") == 0x1000  # AT_EMPTY_PATH: fexecve passes the fd and an empty path


def test_failed_opens_can_be_dropped_in_the_kernel() -> None:
    if preflight.problems():
        pytest.skip("eBPF unavailable")
    probe = BpfProbe(ring_buffer_pages=64, families=("process", "file"), exclude_self=False, drop_failed_opens=True)
    src = KernelSource(probe)
    src.start()
    try:
        confine(probe)
        drain(src)
        pid = run(["cat", "/nonexistent-lanner", "/etc/hostname"])
        events = collect(src, lambda evs: bool(of_pid(evs, pid, "procexit")))
        opens = [e for e in of_pid(events, pid, "openat") if e.fd is not None]
        assert any(e.fd is not None and e.fd.path == "/etc/hostname" for e in opens)
        assert opens and all(e.res >= 0 for e in opens)
    finally:
        src.close()


def test_privilege_and_link_syscalls(source: KernelSource, tmp_path: Path) -> None:
    import sys

    drain(source)
    target = tmp_path / "f"
    target.write_text("x")
    code = (
        "import os, sys\n"
        f"os.chmod({str(target)!r}, 0o4755)\n"
        f"os.symlink('/etc/shadow', {str(tmp_path / 'l')!r})\n"
        "os.setgid(65534)\n"
        "os.setuid(65534)\n"
        "open('/etc/hostname').close()\n"
    )
    pid = run([sys.executable, "-c", code])
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    mine = of_pid(events, pid)
    types = {e.type for e in mine}
    assert {"setuid", "setgid"} <= types, types
    assert types & {"chmod", "fchmodat"} and types & {"symlink", "symlinkat"}
    chmod = next(e for e in mine if e.type in ("chmod", "fchmodat"))
    assert chmod.arg("mode") == 0o4755 and chmod.res == 0
    link = next(e for e in mine if e.type in ("symlink", "symlinkat"))
    assert link.arg("target") == "/etc/shadow"
    setuid = next(e for e in mine if e.type == "setuid")
    assert setuid.arg("uid") == 65534 and setuid.res == 0
    after = [e for e in mine if e.type == "openat" and e.fd is not None and e.fd.path == "/etc/hostname"]
    assert after and after[-1].proc.uid == 65534 and after[-1].proc.user_name == "nobody"


def test_stdout_redirected_to_a_socket(source: KernelSource) -> None:
    drain(source)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        child = subprocess.Popen(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}; exec 1>&3; echo hi"])
        conn, _ = srv.accept()
        conn.recv(16)
        conn.close()
        child.wait(timeout=60)

    def dup_to_stdout(evs: list[Event]) -> list[Event]:
        return [e for e in of_pid(evs, child.pid) if e.type in ("dup2", "dup3") and e.fd is not None and e.fd.num == 1]

    events = collect(source, lambda evs: bool(dup_to_stdout(evs)))
    found = dup_to_stdout(events)
    assert found, "no dup2 onto fd 1"
    fd = found[0].fd
    assert fd is not None and fd.type == FdType.IPV4 and fd.server_port == port


def test_terminal_set_up_between_fork_and_exec(source: KernelSource) -> None:
    import sys

    drain(source)
    # Decode while the shell lives, as the service does: the terminal is read from /proc at exec.
    child = subprocess.Popen(
        [sys.executable, "-c", "import pty; pty.spawn(['sh', '-c', 'cat /etc/hostname; sleep 1'])"],
        stdout=subprocess.DEVNULL,
    )
    spawner = child.pid

    def sh_exec(evs: list[Event]) -> list[Event]:
        return [e for e in evs if e.type == "execve" and e.res == 0 and e.proc.comm == "sh" and e.proc.ppid == spawner]

    events = collect(source, lambda evs: bool(sh_exec(evs)))
    child.wait(timeout=60)
    found = sh_exec(events)
    assert found, "no execve of sh under the pty"
    p = found[0].proc
    # pty.fork() makes the child a session leader with the pty as controlling terminal (/dev/pts/N: major 136).
    assert p.tty is not None and (p.tty >> 8) & 0xFFF == 136
    assert p.is_sid_leader is True and p.sid == p.pid


def test_udp_sendto_with_a_destination(source: KernelSource) -> None:
    import sys

    drain(source)
    code = (
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x' * 12, ('127.0.0.1', 9))\n"
    )
    pid = run([sys.executable, "-c", code])
    events = collect(source, lambda evs: bool(of_pid(evs, pid, "procexit")))
    sends = [e for e in of_pid(events, pid, "sendto") if e.fd is not None and e.fd.server_port == 9]
    assert sends, f"no sendto: {sorted({e.type for e in of_pid(events, pid)})}"
    fd = sends[0].fd
    assert fd is not None and fd.l4proto == L4Proto.UDP and fd.name_changed and fd.connected is False
    assert sends[0].arg("size") == 12 and sends[0].res == 12


_OPEN_BY_HANDLE = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
fh = FH(); fh.handle_bytes = 128
mount_id = ctypes.c_int()
if libc.name_to_handle_at(-100, sys.argv[1].encode(), ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
    sys.exit(3)
mfd = os.open(os.path.dirname(sys.argv[1]), os.O_RDONLY)
if libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY) < 0:
    sys.exit(4)
time.sleep(1)
"""


def test_open_by_handle_at(source: KernelSource, tmp_path: Path) -> None:
    import sys

    target = tmp_path / "handle-target"
    target.write_text("x")
    drain(source)
    # Decode while it runs: the path comes from /proc/PID/fd of the new fd.
    child = subprocess.Popen([sys.executable, "-c", _OPEN_BY_HANDLE, str(target)])

    def found(evs: list[Event]) -> list[Event]:
        return [e for e in of_pid(evs, child.pid, "open_by_handle_at") if e.res >= 0]

    events = collect(source, lambda evs: bool(found(evs)))
    rc = child.wait(timeout=60)
    if rc in (3, 4):
        pytest.skip("file handles are not supported on this filesystem")
    ev = found(events)
    assert ev, "no open_by_handle_at event"
    assert ev[0].fd is not None and ev[0].fd.path == str(target) and ev[0].arg("path") == str(target)
