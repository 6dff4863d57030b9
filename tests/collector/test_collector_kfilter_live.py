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

from collector.kfilter import FILTERED, KernelControl
from collector.source import BpfProbe, KernelSource
from lanner.model import Event
from lanner.v1 import kfilter_pb2
from ruleengine.engine import Engine, EngineOptions, load_texts
from ruleengine.fields import EventContext
from ruleengine.kspec import build_spec
from tests.support.kernel_source import collect, kernel_source

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
)


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def _control(src: KernelSource) -> KernelControl:
    control = src.reader.control  # type: ignore[attr-defined]
    assert isinstance(control, KernelControl)
    return control


def _exited(pid: int) -> object:
    return lambda evs: any(e.proc.pid == pid and e.type == "procexit" for e in evs)


def _spawn_py(code: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait(timeout=20)
    return int(p.pid)


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
    source.poll()
    p.stdin.write("\n")
    p.stdin.flush()
    p.stdout.readline()
    first = collect(source, lambda evs: any(e.type == "mkdir" and e.proc.pid == p.pid for e in evs))
    ack = source.apply_spec(build_spec(RMDIR.enabled))
    assert "rmdir" in ack.attached and "mkdir" not in ack.attached
    p.stdin.write("\n")
    p.stdin.flush()
    p.wait(timeout=10)
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
    before = _control(source).counts()["openat"][0]
    source.poll()
    pid = _spawn_py("import os\nfor _ in range(200): os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
                    "os.close(os.open('/etc/shadow', os.O_RDONLY))")  # fmt: skip
    events = collect(source, _exited(pid))
    opened = [e.fd.path for e in events if e.proc.pid == pid and e.type == "openat" and e.fd is not None]
    assert opened == ["/etc/shadow"], opened
    assert _alerts(engine, events, pid) == ["shadow"]
    assert _control(source).counts()["openat"][0] - before >= 200
    _control(source).update_metrics()
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
            "import os,socket,time\n"
            f"s=socket.create_connection(('127.0.0.1',{port})); n=s.detach(); os.close(n)\n"
            f"fd=os.open('/tmp/kf-dup-target-{os.getpid()}', os.O_RDONLY|os.O_CREAT, 0o600)\n"
            "assert fd == n, (fd, n)\n"
            "os.dup2(fd, 100); time.sleep(1.0)\n"
        )
        source.poll()
        # Decoded while the process still runs: the fd table asks /proc about the fd it no longer trusts.
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
        pid = proc.pid
        events = collect(source, _exited(pid), timeout=10.0)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    os.unlink(f"/tmp/kf-dup-target-{os.getpid()}")
    mine = [e for e in events if e.proc.pid == pid]
    assert any(e.type == "connect" for e in mine) and not any(e.type == "openat" for e in mine)
    assert _alerts(DUP, events, pid) == ["dup of the target"]


def test_filter_switch_off_passes_everything() -> None:
    probe = BpfProbe(ring_buffer_pages=1024, exclude_self=False, kernel_filter=False)
    src = KernelSource(probe)
    try:
        src.start()
    except Exception as exc:  # pragma: no cover - the module fixture already skipped when eBPF is missing
        pytest.skip(str(exc))
    try:
        engine = _rules(_rule("shadow", "evt.type = openat and fd.name = /etc/shadow"))
        ack = src.apply_spec(build_spec(engine.enabled))
        assert not ack.filtering
        while src.poll():  # drain what piled up while loading
            pass
        pid = _spawn_py("import os\nos.close(os.open('/etc/hostname', os.O_RDONLY))")
        events = collect(src, _exited(pid))
        assert any(e.type == "openat" and e.fd is not None and e.fd.path == "/etc/hostname" for e in events)
    finally:
        src.close()


def test_no_spec_means_everything_attached(source: KernelSource) -> None:
    control = _control(source)
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
    while source.poll():
        pass
    lost = source.dropped()
    p = subprocess.Popen([sys.executable, "-c", CASES_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(json.dumps(cases), timeout=60)
    results = json.loads(out)
    events = collect(source, _exited(p.pid), timeout=15.0)
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
