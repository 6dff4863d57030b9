# SPDX-License-Identifier: Apache-2.0
"""What the exec probe read from kernel structs (``struct lanner_task``), as the process table uses it.

These facts are taken in the kernel at the moment of exec, so they are right even for a process that exits before
/proc/PID could be read; the table prefers them over /proc whenever the record carries them.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector import layout
from collector.procfs import UNSET_ID, writable_by

OVERLAYFS_MAGIC = 0x794C7630
SB_RDONLY = 1
MNT_READONLY = 0x40


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """Kernel facts about a task just after exec."""

    exe_ino: int
    exe_ctime_ns: int
    exe_mtime_ns: int
    exe_mode: int
    exe_uid: int
    exe_gid: int
    exe_readonly_fs: bool
    on_overlay: bool
    exe_upper: bool | None  # None when overlayfs's layer could not be told in the kernel
    exe_memfd: bool
    euid: int
    egid: int
    cap_inheritable: int
    cap_permitted: int
    cap_effective: int
    loginuid: int | None  # -1 when unset, None when the kernel has no audit login uid
    tty: int  # encoded as /proc/PID/stat's tty_nr
    ppid: int
    pcomm: str
    vpid: int
    pidns: int
    mntns: int
    sid: int
    pgid: int

    @property
    def exe_writable(self) -> bool:
        """Falco's EXE_WRITABLE for this exec (see procfs.writable_by)."""
        return writable_by(
            self.exe_mode, self.exe_uid, self.exe_gid, self.euid, self.egid, self.cap_effective, self.exe_readonly_fs
        )


def tty_nr(major: int, minor: int) -> int:
    """The device number as /proc/PID/stat encodes tty_nr (the kernel's new_encode_dev)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def parse(raw: bytes, offset: int) -> TaskFacts | None:
    """The facts of the ``struct lanner_task`` at ``offset``; None when the probe left it empty."""
    (
        ino,
        ctime,
        mtime,
        cap_inh,
        cap_prm,
        cap_eff,
        sb_magic,
        sb_flags,
        mnt_flags,
        mode,
        exe_uid,
        exe_gid,
        euid,
        egid,
        loginuid,
        tty,
        ppid,
        vpid,
        pidns,
        mntns,
        sid,
        pgid,
        flags,
        _pad,
        pcomm,
    ) = layout.TASK.unpack_from(raw, offset)
    if not flags & layout.TF_VALID:
        return None
    on_overlay = sb_magic == OVERLAYFS_MAGIC
    upper: bool | None = None
    if flags & layout.TF_UPPER_KNOWN:
        upper = bool(flags & layout.TF_UPPER)
    elif not on_overlay:
        upper = False
    login: int | None = None
    if flags & layout.TF_LOGINUID:
        login = -1 if loginuid == UNSET_ID else loginuid
    return TaskFacts(
        exe_ino=ino,
        exe_ctime_ns=ctime,
        exe_mtime_ns=mtime,
        exe_mode=mode,
        exe_uid=exe_uid,
        exe_gid=exe_gid,
        exe_readonly_fs=bool(sb_flags & SB_RDONLY or mnt_flags & MNT_READONLY),
        on_overlay=on_overlay,
        exe_upper=upper,
        exe_memfd=bool(flags & layout.TF_MEMFD),
        euid=euid,
        egid=egid,
        cap_inheritable=cap_inh,
        cap_permitted=cap_prm,
        cap_effective=cap_eff,
        loginuid=login,
        tty=tty_nr(tty >> 20, tty & 0xFFFFF) if tty else 0,
        ppid=ppid,
        pcomm=pcomm.split(b"\0", 1)[0].decode("utf-8", "replace"),
        vpid=vpid,
        pidns=pidns,
        mntns=mntns,
        sid=sid,
        pgid=pgid,
    )
