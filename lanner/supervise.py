# SPDX-License-Identifier: Apache-2.0
"""The pieces of ``lanner up`` that keep one stack whole: children that die with their supervisor, one instance
per state directory and per port, and a stop that fits in a few seconds.

Every child gets ``PR_SET_PDEATHSIG``: when the supervisor dies, however it dies (``kill -9`` included), the
kernel sends each child SIGTERM, so no orphan keeps a port, traces the host, or takes alerts that a new stack
should get. Children run in their own session, so a Ctrl-C on the terminal reaches the supervisor alone, and it
decides the order of the stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel for SIGTERM when ``parent`` dies; if it already died between fork and
    here, the child ends at once instead of running as an orphan."""

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass
class Child:
    """One supervised process, restarted with backoff when it dies."""

    name: str
    argv: list[str]
    env: dict[str, str] | None
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    log_offset: int = 0
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
        self.log_file = self.log_path.open("ab")
        self.log_offset = self.log_file.tell()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=None if self.name != "redis" else self.log_file,
            stderr=self.log_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with(os.getpid()),
        )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def exit_description(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def log_errors(self, limit: int = 20) -> list[str]:
        """The error lines this run of the child wrote to its log: the ``error`` (or ``msg``) of JSON error
        records, and plain lines such as a traceback's last line or a message printed before logging began."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                text = f.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            return []
        out: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                if record.get("level") in ("error", "critical"):
                    out.append(str(record.get("error") or record.get("detail") or record.get("msg")))
            elif self.name == "redis":
                if " # " in line:  # redis-server's own marker for warnings and errors
                    out.append(line.split(" # ", 1)[1])
            elif not line.startswith(("Traceback", "File ", "^")):
                out.append(line)
        return out[-limit:]

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def stop_all(
    children: Sequence[Child], deadline_s: float, last: Child | None = None, last_after: str = "", last_s: float = 0.4
) -> list[str]:
    """SIGTERM every live child at once, and ``last`` (Redis) once the child named ``last_after`` has exited or
    ``last_s`` before the deadline; SIGKILL (its whole group) whatever is left after ``deadline_s``. Returns the
    names of the children that had to be killed. A killed child may take the kernel a moment more to reap (a
    collector's probes detach at exit); the stop does not wait for that."""
    everyone = [*children, *([last] if last is not None else [])]
    for child in children:
        child.signal(signal.SIGTERM)
    start = time.monotonic()
    last_signalled = last is None
    while any(c.alive() for c in everyone) and time.monotonic() - start < deadline_s:
        if not last_signalled and last is not None:
            before = any(c.alive() for c in children if c.name == last_after)
            if not before or time.monotonic() - start >= deadline_s - last_s:
                last.signal(signal.SIGTERM)
                last_signalled = True
        time.sleep(0.02)
    killed = []
    for child in everyone:
        if child.alive():
            killed.append(child.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
    for child in everyone:
        if child.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=0.2)
        if child.log_file is not None:
            child.log_file.close()
            child.log_file = None
    return killed


# -- who holds a port ------------------------------------------------------------------------------------------


def split_host_port(bind: str) -> tuple[str, int] | None:
    """``host:port`` -> (host, port); None for a unix socket or an empty bind."""
    if not bind or bind.startswith("unix:"):
        return None
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    return host, int(port)


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on (host, port); a socket in TIME_WAIT does not count."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def port_owner(port: int) -> int | None:
    """The pid of a process listening on TCP ``port`` (from /proc/net/tcp*), if it can be found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        return int(entry.name)
    return None


def describe_pid(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    cmd = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    return f"pid {pid} ({cmd[:120]})"


def supervisor_of(pid: int) -> int | None:
    """The ``lanner up`` this process runs under (itself or an ancestor), if any."""
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if b"up" in cmdline and any(a.endswith((b"lanner", b"lanner.cli")) for a in cmdline):
            return pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return None
    return None


def busy_ports(ports: Iterable[tuple[str, str]]) -> list[str]:
    """One sentence per configured address (``(name, bind)``) that something already listens on, naming it."""
    problems = []
    for name, bind in ports:
        parsed = split_host_port(bind)
        if parsed is None or parsed[1] == 0 or not port_in_use(*parsed):
            continue
        owner = port_owner(parsed[1])
        who = "another process"
        if owner is not None:
            who = describe_pid(owner)
            up = supervisor_of(owner)
            if up is not None and up != owner:
                who += f", part of `lanner up` pid {up}"
        problems.append(f"port {parsed[1]} ({name}, {bind}) is in use by {who}")
    return problems


# -- one instance per state directory ----------------------------------------------------------------------------


class AlreadyRunning(Exception):
    """Another ``lanner up`` holds this state directory."""


class InstanceLock:
    """An exclusive ``flock`` on ``STATE/lanner-up.lock``, holding the running instance's pid and ports. The
    kernel drops the lock when the process dies, so a stale file never blocks a start."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lanner-up.lock"
        self._fd = -1

    def acquire(self, info: dict[str, Any]) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 65536).decode(errors="replace")
            os.close(fd)
            raise AlreadyRunning(self._describe(holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def _describe(self, holder: str) -> str:
        try:
            info = json.loads(holder)
        except ValueError:
            return f"another `lanner up` holds {self.path}"
        ports = ", ".join(f"{k} {v}" for k, v in info.get("ports", {}).items())
        return f"`lanner up` pid {info.get('pid')} is already running with state directory {self.path.parent} ({ports})"

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
