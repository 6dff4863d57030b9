# SPDX-License-Identifier: Apache-2.0
"""What an exec tells about a process beyond its new image: ids, capabilities, terminal, namespaces and the
executable's inode. From the kernel's facts when the probe read them (right even for a process gone within a
millisecond), else from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass

from collector import procfs
from collector.entry import ProcEntry
from collector.procfs import exe_writable
from collector.taskfacts import TaskFacts


@dataclass(frozen=True, slots=True)
class ExecState:
    """What exec learns about a process, from the kernel's facts or from /proc: ``ids`` = (euid, egid, caps,
    loginuid, tty, sid, pgid, vpid, vpgid, mntns), ``exe`` = (inode, ctime, mtime, writable), ``upper`` = on the
    writable overlay layer (None: ask the overlay upperdir)."""

    ids: tuple[
        int | None,
        int | None,
        tuple[int | None, int | None, int | None],
        int | None,
        int | None,
        int,
        int,
        int,
        int,
        int,
    ]
    exe: tuple[int | None, int | None, int | None, bool | None]
    upper: bool | None


def from_facts(entry: ProcEntry, f: TaskFacts) -> ExecState:
    """The state from the kernel's facts (read at the exec itself)."""
    loginuid = f.loginuid if f.loginuid is not None else entry.proc.loginuid
    caps = (f.cap_inheritable, f.cap_permitted, f.cap_effective)
    vpid = f.vpid or entry.proc.vpid
    ids = (f.euid, f.egid, caps, loginuid, f.tty, f.sid, f.pgid, vpid, entry.proc.vpgid, f.mntns or entry.mntns)
    exe = (f.exe_ino, f.exe_ctime_ns, f.exe_mtime_ns, f.exe_writable)
    return ExecState(ids, exe, f.exe_upper)


def from_proc(proc_root: str, entry: ProcEntry, uid: int, gid: int, vpid_hint: int) -> ExecState:
    """The state read from /proc after the exec (the process may be gone by now: then the inherited values stay)."""
    pid = entry.proc.pid
    base = f"{proc_root}/{pid}"
    euid: int | None = uid
    egid: int | None = gid
    vpid = vpid_hint or entry.proc.vpid
    vpgid = entry.proc.vpgid
    caps = (entry.proc.cap_inheritable, entry.proc.cap_permitted, entry.proc.cap_effective)
    tty, sid, pgid = entry.proc.tty, entry.proc.sid, entry.proc.pgid
    loginuid = entry.proc.loginuid
    exe_ino: int | None = None
    writable: bool | None = None
    ctime: int | None = None
    mtime: int | None = None
    try:
        with open(f"{base}/status", encoding="utf-8") as f:
            st = procfs.parse_status(f.read())
        if st.uids[1] != procfs.UNSET_ID:
            euid, egid = st.uids[1], st.gids[1]
        caps = (st.cap_inheritable, st.cap_permitted, st.cap_effective)
        if st.nspid:
            # Namespaces made with unshare(2) before the fork are invisible in the clone flags.
            vpid = st.nspid[-1]
            vpgid = st.nspgid[-1] if len(st.nspgid) > 1 else 0
        with open(f"{base}/stat", encoding="utf-8", errors="replace") as f:
            stat = procfs.parse_stat(f.read())
        # The controlling terminal and session are set up between fork and exec (setsid, TIOCSCTTY: docker
        # exec -t, sshd), so the inherited values are stale by now.
        tty, sid, pgid = stat.tty, stat.session, stat.pgrp
        # pam_loginuid writes the audit login uid between fork and exec (sshd, login, su -l), as does any
        # process that sets it for its child; Falco takes it from the exec event, so re-read it here.
        with open(f"{base}/loginuid", encoding="ascii") as f:
            loginuid = procfs.parse_loginuid(f.read())
        s = os.stat(f"{base}/exe")
        exe_ino, ctime, mtime = s.st_ino, s.st_ctime_ns, s.st_mtime_ns
        writable = exe_writable(s, euid, egid, caps[2], os.statvfs(f"{base}/exe").f_flag)
    except (OSError, ValueError, IndexError):
        pass
    mntns = procfs.ns_inode(proc_root, pid, "mnt") or entry.mntns
    return ExecState(
        (euid, egid, caps, loginuid, tty, sid, pgid, vpid, vpgid, mntns), (exe_ino, ctime, mtime, writable), None
    )
