# SPDX-License-Identifier: Apache-2.0
"""Per-process fd tables: what each fd names, so later events (a relative open, connect) can be resolved."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable

from collector import procnet
from collector.entry import ProcEntry, normalize
from lanner.model import Fd, FdType


class FdOps:
    """fd bookkeeping for ``ProcessTable`` (which provides ``proc_root`` and ``max_fds``)."""

    proc_root: str
    max_fds: int
    # Boot time of the record being decoded (set by the decoder), and, when the kernel filters opens, the boot time
    # of the last open of (pid, fd) it dropped (0: none): an entry older than that names a file no longer there.
    now_ns: int = 0
    stale_fd: Callable[[int, int], int] | None = None

    def set_fd(self, entry: ProcEntry, fd: Fd, cloexec: bool) -> None:
        """Record a newly opened fd."""
        if len(entry.fds) >= self.max_fds and fd.num not in entry.fds:
            # No close tracing: bound the table by forgetting the oldest entries.
            for old in list(entry.fds)[: self.max_fds // 4]:
                del entry.fds[old]
                entry.cloexec.discard(old)
                entry.fd_ns.pop(old, None)
        entry.fds[fd.num] = fd
        entry.fd_ns[fd.num] = self.now_ns
        if cloexec:
            entry.cloexec.add(fd.num)
        else:
            entry.cloexec.discard(fd.num)

    def get_fd(self, entry: ProcEntry, num: int) -> Fd | None:
        """The fd from the table, or from /proc/PID/fd when the table does not know it."""
        fd = entry.fds.get(num)
        if fd is not None and self.stale_fd is not None:
            dropped = self.stale_fd(entry.proc.pid, num)
            if entry.fd_ns.get(num, 0) < dropped <= self.now_ns:
                # A filtered open reused the number after our entry was made: ask /proc what it is now.
                fd = None
                del entry.fds[num]
        if fd is not None:
            return fd
        try:
            target = os.readlink(f"{self.proc_root}/{entry.proc.pid}/fd/{num}")
        except OSError:
            return None
        inode = procnet.socket_inode(target)
        if target.startswith("/"):
            fd = Fd(num=num, type=FdType.DIRECTORY if os.path.isdir(target) else FdType.FILE, path=target)
        elif inode is not None:
            # A socket whose socket/connect/accept the kernel filter dropped: its namespace's tables describe it.
            fd = procnet.socket_fd(self.proc_root, entry.proc.pid, num, inode) or Fd(num=num, path=target)
        else:
            fd = Fd(num=num, path=target)
        entry.fds[num] = fd
        entry.fd_ns[num] = self.now_ns
        return fd

    def fd_target(self, entry: ProcEntry, num: int) -> str:
        """What ``/proc/PID/fd/NUM`` points at now ('' when the process or fd is gone)."""
        try:
            return os.readlink(f"{self.proc_root}/{entry.proc.pid}/fd/{num}")
        except OSError:
            return ""

    def resolve(self, entry: ProcEntry, dirfd: int, path: str) -> str:
        """Absolute, normalised path of ``path`` relative to ``dirfd`` (AT_FDCWD = the cwd)."""
        if not path:
            return ""
        if path.startswith("/"):
            return normalize(path)
        if dirfd == -100:
            base = entry.proc.cwd or "/"
        else:
            fd = self.get_fd(entry, dirfd)
            if fd is None or not fd.path.startswith("/"):
                return "<UNKNOWN>/" + path
            base = fd.path
        return normalize(posixpath.join(base, path))
