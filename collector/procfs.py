# SPDX-License-Identifier: Apache-2.0
"""Reading process state from /proc: pure parsers over file contents plus one reader that snapshots a pid.

Used to seed the process table at start and to fill gaps when an event names a process the table never saw.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

UNSET_ID = 0xFFFFFFFF
# As much of /proc/PID/environ as the probes capture at exec.
ENVIRON_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Status:
    """The parts of ``/proc/PID/status`` the collector uses."""

    name: str = ""
    tgid: int = 0
    ppid: int = 0
    uids: tuple[int, int, int, int] = (UNSET_ID, UNSET_ID, UNSET_ID, UNSET_ID)
    gids: tuple[int, int, int, int] = (UNSET_ID, UNSET_ID, UNSET_ID, UNSET_ID)
    nspid: tuple[int, ...] = ()
    nspgid: tuple[int, ...] = ()
    cap_inheritable: int | None = None
    cap_permitted: int | None = None
    cap_effective: int | None = None


@dataclass(frozen=True, slots=True)
class Stat:
    """The parts of ``/proc/PID/stat`` the collector uses; ``start_ticks`` is in clock ticks since boot."""

    comm: str
    ppid: int
    pgrp: int
    session: int
    tty: int
    start_ticks: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything read about one process from /proc at one moment."""

    pid: int
    status: Status
    stat: Stat | None
    comm: str
    argv: tuple[str, ...]
    env: tuple[str, ...]
    exepath: str
    cwd: str
    loginuid: int | None
    cgroups: tuple[str, ...]
    mntns: int


def parse_status(text: str) -> Status:
    """Parse the text of ``/proc/PID/status``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()

    def ids(key: str) -> tuple[int, int, int, int]:
        parts = [int(v) for v in fields.get(key, "").split()]
        if len(parts) != 4:
            return (UNSET_ID, UNSET_ID, UNSET_ID, UNSET_ID)
        return (parts[0], parts[1], parts[2], parts[3])

    def hexcap(key: str) -> int | None:
        v = fields.get(key)
        return int(v, 16) if v else None

    def ints(key: str) -> tuple[int, ...]:
        return tuple(int(v) for v in fields.get(key, "").split())

    return Status(
        name=fields.get("Name", ""),
        tgid=int(fields.get("Tgid", "0") or 0),
        ppid=int(fields.get("PPid", "0") or 0),
        uids=ids("Uid"),
        gids=ids("Gid"),
        nspid=ints("NSpid"),
        nspgid=ints("NSpgid"),
        cap_inheritable=hexcap("CapInh"),
        cap_permitted=hexcap("CapPrm"),
        cap_effective=hexcap("CapEff"),
    )


def parse_stat(text: str) -> Stat:
    """Parse ``/proc/PID/stat``; the comm may itself contain spaces and parentheses, so split at the last ``)``."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    comm = text[open_paren + 1 : close_paren]
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state); fields are numbered from 1 in proc(5).
    return Stat(
        comm=comm,
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        session=int(rest[3]),
        tty=int(rest[4]),
        start_ticks=int(rest[19]),
    )


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    """Split ``/proc/PID/cmdline`` (NUL-separated, NUL-terminated) into argv; empty items in the middle stay."""
    if not raw:
        return ()
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return tuple(p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0"))


def parse_cgroup(text: str) -> tuple[str, ...]:
    """The lines of ``/proc/PID/cgroup`` (``hierarchy:controllers:path``), as the enricher parses them."""
    return tuple(line.strip() for line in text.splitlines() if line.count(":") >= 2)


def parse_loginuid(text: str) -> int | None:
    """``/proc/PID/loginuid``; 4294967295 means unset and is returned as -1, as Falco reports it."""
    try:
        v = int(text.strip())
    except ValueError:
        return None
    return -1 if v == UNSET_ID else v


def overlay_upperdir(mountinfo: str) -> str | None:
    """The ``upperdir`` of the root mount when it is an overlay (a container's writable layer), else None."""
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if not sep or len(fields) < 5 or fields[4] != "/":
            continue
        parts = tail.split()
        if len(parts) < 3 or parts[0] != "overlay":
            continue
        for opt in parts[2].split(","):
            if opt.startswith("upperdir="):
                return opt[len("upperdir=") :]
    return None


def strip_deleted(path: str) -> str:
    """readlink of a deleted executable ends in `` (deleted)``; Falco strips it."""
    return path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path


def _read_text(path: str) -> str | None:
    try:
        # comm, cgroup and status names are bytes the process chose: keep every one (see lanner.text).
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def ns_inode(proc_root: str, pid: int, ns: str) -> int:
    """Inode of one of the process's namespaces (0 when unreadable)."""
    try:
        return os.stat(f"{proc_root}/{pid}/ns/{ns}").st_ino
    except OSError:
        return 0


def read_snapshot(pid: int, proc_root: str = "/proc") -> Snapshot | None:
    """Read one process from /proc; None when it is gone (or was never there)."""
    base = f"{proc_root}/{pid}"
    status_text = _read_text(f"{base}/status")
    if status_text is None:
        return None
    status = parse_status(status_text)
    stat_text = _read_text(f"{base}/stat")
    stat: Stat | None = None
    if stat_text:
        try:
            stat = parse_stat(stat_text)
        except (ValueError, IndexError):
            stat = None
    comm = (_read_text(f"{base}/comm") or status.name + "\n").rstrip("\n")
    try:
        with open(f"{base}/cmdline", "rb") as f:
            argv = parse_cmdline(f.read())
    except OSError:
        argv = ()
    try:
        with open(f"{base}/environ", "rb") as f:
            env = parse_cmdline(f.read(ENVIRON_LIMIT))
    except OSError:
        env = ()
    login_text = _read_text(f"{base}/loginuid")
    return Snapshot(
        pid=pid,
        status=status,
        stat=stat,
        comm=comm,
        argv=argv,
        env=env,
        exepath=strip_deleted(_readlink(f"{base}/exe")),
        cwd=_readlink(f"{base}/cwd"),
        loginuid=parse_loginuid(login_text) if login_text is not None else -1,
        cgroups=parse_cgroup(_read_text(f"{base}/cgroup") or ""),
        mntns=ns_inode(proc_root, pid, "mnt"),
    )


def list_pids(proc_root: str = "/proc") -> list[int]:
    """Numeric entries of /proc, i.e. the thread-group ids alive now."""
    try:
        return sorted(int(n) for n in os.listdir(proc_root) if n.isdigit())
    except OSError:
        return []


class BootClock:
    """Converts kernel boot-time nanoseconds (``bpf_ktime_get_boot_ns``) and /proc start ticks to epoch ns.

    The offset between CLOCK_REALTIME and CLOCK_BOOTTIME drifts with NTP slews, so it is re-measured at most once
    per second; each measurement takes the tightest of a few samples.
    """

    def __init__(self) -> None:
        self._ticks_per_s = os.sysconf("SC_CLK_TCK")
        self._offset = 0
        self._measured_at = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Re-measure the realtime - boottime offset."""
        best: tuple[int, int] | None = None
        for _ in range(3):
            a = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            wall = time.time_ns()
            b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            if best is None or b - a < best[0]:
                best = (b - a, wall - (a + b) // 2)
        assert best is not None
        self._offset = best[1]
        self._measured_at = time.monotonic()

    def maybe_refresh(self) -> None:
        """Refresh when the last measurement is older than a second."""
        if time.monotonic() - self._measured_at > 1.0:
            self.refresh()

    def to_wall(self, boot_ns: int) -> int:
        """Epoch ns for a CLOCK_BOOTTIME timestamp."""
        return boot_ns + self._offset

    def ticks_to_wall(self, ticks: int) -> int:
        """Epoch ns for a /proc start time in clock ticks since boot."""
        return ticks * 1_000_000_000 // self._ticks_per_s + self._offset


CAP_DAC_OVERRIDE = 1
ST_RDONLY = 1


def exe_writable(
    st: os.stat_result, euid: int | None, egid: int | None, cap_effective: int | None, fs_flags: int
) -> bool:
    """``writable_by`` for a stat result and statvfs flags."""
    return writable_by(st.st_mode, st.st_uid, st.st_gid, euid, egid, cap_effective, bool(fs_flags & ST_RDONLY))


def writable_by(
    mode: int, owner: int, group: int, euid: int | None, egid: int | None, cap_effective: int | None, readonly_fs: bool
) -> bool:
    """Falco's EXE_WRITABLE: could the process that exec'd this file write to it? Never on a read-only
    filesystem; always with CAP_DAC_OVERRIDE (so root's executables usually are); otherwise the owner, group or
    other write bit that applies to the process's effective ids."""
    if readonly_fs:
        return False
    if cap_effective is not None and cap_effective >> CAP_DAC_OVERRIDE & 1:
        return True
    if euid is not None and owner == euid:
        return bool(mode & 0o200)
    if egid is not None and group == egid:
        return bool(mode & 0o020)
    return bool(mode & 0o002)
