# SPDX-License-Identifier: Apache-2.0
"""The kernel spec on the real kernel: hot attach/detach without losing state, dropped opens counted, the fd
table right after a dup2 of an fd whose open the kernel dropped, and the switch that turns filtering off."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from collector.kfilter import FILTERED
from collector.source import BpfProbe, KernelSource
from lanner.model import Event
from lanner.v1 import kfilter_pb2
from ruleengine.engine import Engine, EngineOptions, load_texts
from ruleengine.fields import EventContext
from ruleengine.kspec import build_spec
from tests.collector.live_programs import kernel_control
from tests.support.kernel_source import collect, confine, drain, kernel_source

pytestmark = pytest.mark.bpf


def _rules(text: str) -> Engine:
    res = load_texts([("kf.yaml", textwrap.dedent(text))], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    return res.engine


def _rule(name: str, condition: str) -> str:
    return f"""
    - rule: {name}
      desc: d
      condition: {condition}
      output: "{name} fd=%fd.name type=%fd.type"
      priority: WARNING
    """


MKDIR = _rules(_rule("mkdir by kftest", "evt.type = mkdir and proc.cmdline contains kf-hot"))
RMDIR = _rules(_rule("rmdir by kftest", "evt.type = rmdir and proc.cmdline contains kf-hot"))
DUP = _rules(
    _rule("dup of a socket", "evt.type = dup2 and fd.typechar = 4")
    + _rule("dup of the target", "evt.type = dup2 and fd.name startswith /tmp/kf-dup-target")
    # Keeps connects coming (the kernel cannot judge fd.l4proto), so the table knows fd N as a socket first.
    + _rule("tcp connect", "evt.type = connect and fd.l4proto = tcp")
)


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def _exited(pid: int) -> object:
    return lambda evs: any(e.proc.pid == pid and e.type == "procexit" for e in evs)


def _spawn_py(code: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait(timeout=60)
    return int(p.pid)


def _alive_until_dup2(src: KernelSource, code: str) -> tuple[subprocess.Popen[bytes], list[Event]]:
    """Run a program that dup2()s onto fd 100 and then waits for its input to close, and close it once that dup2 was
    decoded: it is alive while it is, however late the decoder runs. Its events until its exit.

    The wait is for the dup2 onto 100: subprocess's own dup2()s of the pipes onto 0 and 2, before the exec, come
    first, and ending the wait on them let the program exit before its dup2 was decoded (no /proc to ask)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    events = collect(src, lambda evs: any(e.proc.pid == proc.pid and e.type == "dup2" and e.res == 100 for e in evs))
    assert proc.stdin is not None
    proc.stdin.close()
    return proc, events + collect(src, _exited(proc.pid))


def _alerts(engine: Engine, events: list[Event], pid: int) -> list[str]:
    return [m.name for e in events if e.proc.pid == pid for m in engine.process(EventContext(e))]


def test_hot_reload_swaps_tracepoints_and_keeps_the_tables(source: KernelSource, tmp_path: object) -> None:
    ack = source.apply_spec(build_spec(MKDIR.enabled))
    assert "mkdir" in ack.attached and "rmdir" not in ack.attached and ack.filtering
    # A process started under the first spec and still running under the second.
    code = (
        "import os,sys,time\n"
        "sys.stdin.readline(); os.mkdir(sys.argv[1]); sys.stdout.write('a\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline(); os.rmdir(sys.argv[1]); os.mkdir(sys.argv[1] + 'x'); os.rmdir(sys.argv[1] + 'x')\n"
    )
    d = f"/tmp/kf-hot-{os.getpid()}"
    p = subprocess.Popen(
        [sys.executable, "-c", code, d],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdin is not None and p.stdout is not None
    drain(source)
    p.stdin.write("\n")
    p.stdin.flush()
    p.stdout.readline()
    first = collect(source, lambda evs: any(e.type == "mkdir" and e.proc.pid == p.pid for e in evs))
    ack = source.apply_spec(build_spec(RMDIR.enabled))
    assert "rmdir" in ack.attached and "mkdir" not in ack.attached
    p.stdin.write("\n")
    p.stdin.flush()
    p.wait(timeout=60)
    second = collect(source, _exited(p.pid))
    mine = [e for e in first + second if e.proc.pid == p.pid]
    types = [e.type for e in mine if e.type in ("mkdir", "rmdir")]
    assert types == ["mkdir", "rmdir", "rmdir"], types
    rm = next(e for e in mine if e.type == "rmdir")
    # The process table still knew the process from before the swap (comm, exe path, parent).
    assert (
        not rm.proc_incomplete and rm.proc.ppid == os.getpid() and rm.proc.exepath == os.path.realpath(sys.executable)
    )
    assert _alerts(RMDIR, second, p.pid) == ["rmdir by kftest", "rmdir by kftest"]


def test_opens_no_rule_wants_are_dropped_and_counted(source: KernelSource) -> None:
    engine = _rules(_rule("shadow", "evt.type in (open, openat) and fd.name = /etc/shadow"))
    source.apply_spec(build_spec(engine.enabled))
    before = kernel_control(source).counts()["openat"][0]
    drain(source)
    pid = _spawn_py("import os\nfor _ in range(200): os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
                    "os.close(os.open('/etc/shadow', os.O_RDONLY))")  # fmt: skip
    events = collect(source, _exited(pid))
    opened = [e.fd.path for e in events if e.proc.pid == pid and e.type == "openat" and e.fd is not None]
    assert opened == ["/etc/shadow"], opened
    assert _alerts(engine, events, pid) == ["shadow"]
    assert kernel_control(source).counts()["openat"][0] - before >= 200
    kernel_control(source).update_metrics()
    assert FILTERED.labels("openat")._value.get() >= 200


def test_dup2_of_an_fd_whose_open_was_dropped(source: KernelSource) -> None:
    """fd N is a socket, then closed; a dropped open gets N; dup2(N, 100) must name the file, not the socket."""
    ack = source.apply_spec(build_spec(DUP.enabled))
    assert {"dup2", "openat", "socket", "connect"} <= set(ack.attached)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        code = (
            "import os,socket,sys\n"
            f"s=socket.create_connection(('127.0.0.1',{port})); n=s.detach(); os.close(n)\n"
            f"fd=os.open('/tmp/kf-dup-target-{os.getpid()}', os.O_RDONLY|os.O_CREAT, 0o600)\n"
            "assert fd == n, (fd, n)\n"
            "os.dup2(fd, 100); sys.stdin.read()\n"
        )
        drain(source)
        # Decoded while the process still runs (it waits for its input to close): the fd table asks /proc about
        # the fd it no longer trusts.
        proc, events = _alive_until_dup2(source, code)
        pid = proc.pid
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    os.unlink(f"/tmp/kf-dup-target-{os.getpid()}")
    mine = [e for e in events if e.proc.pid == pid]
    assert any(e.type == "connect" for e in mine) and not any(e.type == "openat" for e in mine)
    assert [a for a in _alerts(DUP, events, pid) if a.startswith("dup")] == ["dup of the target"]


def test_filter_switch_off_passes_everything() -> None:
    probe = BpfProbe(ring_buffer_pages=1024, exclude_self=False, kernel_filter=False)
    src = KernelSource(probe)
    try:
        src.start()
    except Exception as exc:  # pragma: no cover - the module fixture already skipped when eBPF is missing
        pytest.skip(str(exc))
    try:
        confine(probe)
        engine = _rules(_rule("shadow", "evt.type = openat and fd.name = /etc/shadow"))
        ack = src.apply_spec(build_spec(engine.enabled))
        assert not ack.filtering
        drain(src)  # what piled up while loading
        pid = _spawn_py("import os\nos.close(os.open('/etc/hostname', os.O_RDONLY))")
        events = collect(src, _exited(pid))
        assert any(e.type == "openat" and e.fd is not None and e.fd.path == "/etc/hostname" for e in events)
    finally:
        src.close()


def test_no_spec_means_everything_attached(source: KernelSource) -> None:
    control = kernel_control(source)
    # A spec whose rules match every type: back to tracing everything (what a fresh collector does).
    everything = kfilter_pb2.KernelSpec(all_types=True, fingerprint="all")
    ack = source.apply_spec(everything)
    assert set(ack.attached) == set(control.compiled)


CASES_CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None)
out = []
for comm, path, flags in json.loads(sys.stdin.read()):
    libc.prctl(15, comm.encode(), 0, 0, 0)  # PR_SET_NAME: the comm the probe sees
    try:
        fd = os.open(path, flags)
        os.close(fd)
        res = fd
    except OSError as exc:
        res = -exc.errno
    out.append(res)
libc.prctl(15, b"kf-done", 0, 0, 0)
print(json.dumps(out))
"""


def test_probe_decides_like_the_evaluator(source: KernelSource) -> None:
    """The C filter against its Python mirror, on real opens: same pass/drop for every case."""
    import itertools
    import json
    from pathlib import Path

    from ruleengine.kfilter import derive
    from ruleengine.kfilter_eval import ProbeView, passes

    root = Path(__file__).resolve().parents[2]
    files = [
        str(root.parent / "shared" / "falco-rules" / "falco_rules.yaml"),
        str(root / "rules" / "lanner_rules.yaml"),
    ]
    from ruleengine.engine import load_rules

    res = load_rules([f for f in files if Path(f).exists()])
    assert res.engine is not None
    source.apply_spec(build_spec(res.engine.enabled))
    spec = derive(res.engine.enabled)
    paths = [
        "/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/hostname", "/etc//shadow", "/etc/./shadow",
        "/tmp/../etc/shadow", "etc/shadow", "/etc/sudoers.d", "/etc/sudoers.d/README", "/etc/pam.d/other",
        "/root/.ssh/id_rsa", "/root/.ssh/id_rsa.pub", "/var/log/kf-none.log", "/var/log/auth.log", "/nonexistent/x",
        "/proc/self/status", "/sys/fs/cgroup/release_agent", "/" + "a" * 300, "/etc/",
    ]  # fmt: skip
    comms = ["cat", "sshd", "apt", "containerd", "kf-probe"]
    flags = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR]
    cases = [
        c for c in itertools.product(comms, paths, flags) if not (c[2] != os.O_RDONLY and c[1].startswith("/proc"))
    ]
    drain(source)
    lost = source.dropped()
    p = subprocess.Popen([sys.executable, "-c", CASES_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(json.dumps(cases), timeout=60)
    results = json.loads(out)
    events = collect(source, _exited(p.pid))
    seen = {
        (e.proc.comm, e.fd.path_raw, e.fd.open_flags & 3)
        for e in events
        if e.proc.pid == p.pid and e.type == "openat" and e.fd is not None and e.proc.comm != "kf-done"
    }
    mismatches = []
    wanted = 0
    for (comm, path, fl), r in zip(cases, results, strict=True):
        want = passes(spec, ProbeView("openat", path.encode(), comm.encode(), fl, r))
        got = (comm, path, fl) in seen
        wanted += want
        if want != got:
            mismatches.append((comm, path, fl, r, want, got))
    assert source.dropped() == lost, "ring buffer overflowed: the comparison is void"
    assert not mismatches, mismatches[:10]
    assert 0 < wanted < len(cases)  # both decisions were exercised


# Every call made by syscall number (x86_64), so the probe sees exactly these syscalls; each is logged with what the
# probe sees of it (comm, result, address family and port, or the paths as passed).
CALLS_CHILD = r"""
import ctypes, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = {"socket": 41, "connect": 42, "sendto": 44, "rename": 82, "mkdir": 83, "rmdir": 84, "link": 86, "unlink": 87,
      "symlink": 88, "chmod": 90}
out = []

def call(name, *args):
    r = libc.syscall(NR[name], *args)
    return r if r >= 0 else -ctypes.get_errno()

def sockaddr(fam, host, port):
    if fam == 2:
        return struct.pack("<H", 2) + struct.pack(">H", port) + socket.inet_pton(2, host) + bytes(8)
    if fam == 10:
        return struct.pack("<H", 10) + struct.pack(">H", port) + bytes(4) + socket.inet_pton(10, host) + bytes(4)
    return struct.pack("<H", 1) + host.encode() + b"\0"

for comm, op, a, b, c in json.loads(sys.stdin.read()):
    libc.prctl(15, comm.encode(), 0, 0, 0)
    if op in ("connect", "sendto", "socket"):
        kind = socket.SOCK_STREAM if (op == "connect" and a == 1) else socket.SOCK_DGRAM
        if op == "socket":
            a, kind = a, b
        fd = call("socket", a, kind, 0)
        out.append([comm, "socket", a, kind, fd])
        if op != "socket" and fd >= 0:
            sa = sockaddr(a, b, c)
            if op == "connect":
                r = call("connect", fd, sa, len(sa))
            else:
                r = call("sendto", fd, b"x", 1, 0x40, sa, len(sa))  # MSG_DONTWAIT
            out.append([comm, op, a, c if a != 1 else None, r])
        if fd >= 0:
            os.close(fd)
    else:
        args = [x.encode() for x in (a, b) if x is not None]
        if op == "chmod" or op == "mkdir":
            args.append(0o700)
        r = call(op, *args)
        out.append([comm, op, a, b, r])
libc.prctl(15, b"kf-done", 0, 0, 0)
print(json.dumps(out))
"""


def test_probe_decides_like_the_evaluator_beyond_opens(source: KernelSource, tmp_path: object) -> None:
    """The C filter against its Python mirror on real socket calls and file operations: same pass/drop for each."""
    import itertools
    import json
    from pathlib import Path

    from ruleengine.engine import load_rules
    from ruleengine.kfilter import FILEOP_ARGS, derive
    from ruleengine.kfilter_eval import ProbeView, passes

    root = Path(__file__).resolve().parents[2]
    files = [
        str(root.parent / "shared" / "falco-rules" / "falco_rules.yaml"),
        str(root / "rules" / "lanner_rules.yaml"),
    ]
    res = load_rules([f for f in files if Path(f).exists()])
    assert res.engine is not None
    ack = source.apply_spec(build_spec(res.engine.enabled))
    assert {"connect", "socket", "symlink", "rename"} <= set(ack.attached)
    spec = derive(res.engine.enabled)
    tmp = str(tmp_path)
    ops: list[tuple[str, object, object, object]] = [
        ("socket", 2, 1, None), ("socket", 10, 2, None), ("socket", 1, 1, None), ("socket", 17, 3, None),
        *[("connect", 2, "127.0.0.1", p) for p in (53, 443, 4444, 2222)],
        *[("connect", 10, "::1", p) for p in (80, 4444)],
        ("connect", 1, f"{tmp}/none.sock", None),
        *[("sendto", 2, "127.0.0.1", p) for p in (53, 5353)],
        ("unlink", f"{tmp}/none", None, None), ("unlink", "/etc/shadow-kf-none", None, None),
        ("unlink", "kf-rel-none", None, None), ("mkdir", f"{tmp}/d", None, None), ("rmdir", f"{tmp}/d", None, None),
        ("rename", f"{tmp}/none-a", "/usr/bin/kf-none", None), ("rename", f"{tmp}/none-a", f"{tmp}/b", None),
        ("symlink", "/etc/shadow", f"{tmp}/s1", None), ("symlink", "/etc", f"{tmp}/s2", None),
        ("symlink", "x/y", f"{tmp}/s3", None), ("symlink", "/etc/shadow", "/usr/bin//kf-none/s", None),
        ("link", "/etc/shadow-kf-none", f"{tmp}/l1", None), ("link", "/etc/sudoers", "/nonexistent/l2", None),
        ("chmod", f"{tmp}/none", None, None),
    ]  # fmt: skip
    comms = ["bash", "curl", "nc", "kf-probe", "sshd", "cp"]
    cases = [[comm, *op] for comm, op in itertools.product(comms, ops)]
    drain(source)
    lost = source.dropped()
    p = subprocess.Popen([sys.executable, "-c", CALLS_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(json.dumps(cases), timeout=60)
    calls = json.loads(out)
    events = collect(source, _exited(p.pid))
    seen: set[tuple[object, ...]] = set()
    for e in events:
        if e.proc.pid != p.pid or e.proc.comm == "kf-done":
            continue
        if e.type == "socket":
            seen.add((e.proc.comm, "socket", e.arg("domain"), e.arg("type"), e.res))
        elif e.type in ("connect", "sendto") and e.fd is not None:
            seen.add((e.proc.comm, e.type, e.fd.family, e.fd.server_port, e.res))
        elif e.type in FILEOP_ARGS:
            names = sorted(FILEOP_ARGS[e.type], key=lambda n: FILEOP_ARGS[e.type][n])
            paths = [e.arg(n) for n in names] + [None]
            seen.add((e.proc.comm, e.type, paths[0], paths[1] if len(names) > 1 else None, e.res))
    mismatches = []
    wanted = 0
    for comm, op, a, b, r in calls:
        if op == "socket":
            view = ProbeView(op, b"", comm.encode(), 0, r, family=a)
        elif op in ("connect", "sendto"):
            view = ProbeView(op, b"", comm.encode(), 0, r, family=a, sport=b)
        else:
            path2 = b.encode() if b is not None else None
            view = ProbeView(op, b"", comm.encode(), 0, r, path1=a.encode(), path2=path2)
        want = passes(spec, view)
        got = (comm, op, a, b, r) in seen
        wanted += want
        if want != got:
            mismatches.append((comm, op, a, b, r, want, got))
    assert source.dropped() == lost, "ring buffer overflowed: the comparison is void"
    assert not mismatches, mismatches[:10]
    assert 0 < wanted < len(calls)  # both decisions were exercised
    counts = kernel_control(source).counts()
    assert counts["connect"][0] > 0 and counts["symlink"][1] > 0


def test_dup2_of_a_socket_whose_connect_was_dropped(source: KernelSource) -> None:
    """A reverse shell's shape, its connect dropped in the kernel (no rule wants it): the dup2 onto stdin still
    sees an IPv4 socket with its peer, which the fd table reads from /proc/PID/net."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        engine = _rules(
            _rule("dup of a socket", f"evt.type = dup2 and fd.typechar = 4 and fd.sport = {port}")
            + _rule("connect by nobody", "evt.type = connect and proc.name = kf-nobody")
        )
        ack = source.apply_spec(build_spec(engine.enabled))
        assert {"dup2", "socket", "connect"} <= set(ack.attached)
        code = (
            "import os,socket,sys\n"
            f"s=socket.create_connection(('127.0.0.1',{port}))\n"
            "os.dup2(s.fileno(), 100); sys.stdin.read()\n"
        )
        drain(source)
        before = kernel_control(source).counts()
        proc, events = _alive_until_dup2(source, code)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    mine = [e for e in events if e.proc.pid == proc.pid]
    assert not any(e.type == "connect" for e in mine), [e.type for e in mine]
    assert kernel_control(source).counts()["connect"][0] > before["connect"][0]
    assert _alerts(engine, events, proc.pid) == ["dup of a socket"], [(e.type, e.res, e.fd) for e in mine]
