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
    # Whether (pid, fd) was closed after the first boot time and no later than the second (collector/fdclose.py).
    fd_closed: Callable[[int, int, int, int], bool] | None = None

    def set_fd(self, entry: ProcEntry, fd: Fd, cloexec: bool) -> None:
        """Record a newly opened fd."""
        if len(entry.fds) >= self.max_fds and fd.num not in entry.fds:
            # Closes are not sent to userspace unless a rule wants them: bound the table by forgetting the oldest.
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
        if fd is not None and self.fd_closed is not None and self._closed_since(entry, num, self.fd_closed):
            # Closed since the entry was made, and perhaps reused by something the table did not see: ask /proc.
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
            fd = fd_of_target(num, target)
        entry.fds[num] = fd
        entry.fd_ns[num] = self.now_ns
        return fd

    def _closed_since(self, entry: ProcEntry, num: int, closed: Callable[[int, int, int, int], bool]) -> bool:
        """Whether fd ``num`` was closed after its table entry was made: by this process, or, for an entry copied
        at fork, by the parent before the fork."""
        made = entry.fd_ns.get(num, 0)
        if closed(entry.proc.pid, num, made, self.now_ns):
            return True
        return bool(entry.fork_from) and made < entry.fork_ns and closed(entry.fork_from, num, made, entry.fork_ns)

    def close_fd(self, entry: ProcEntry, num: int) -> Fd | None:
        """close(2) succeeded: forget the fd; returns what it named."""
        entry.cloexec.discard(num)
        entry.fd_ns.pop(num, None)
        return entry.fds.pop(num, None)

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


# What /proc/PID/fd/N shows for fds that are not paths, and the fd type each means.
_ANON_TYPES = {
    "[eventfd]": FdType.EVENT,
    "[eventpoll]": FdType.EVENTPOLL,
    "[signalfd]": FdType.SIGNALFD,
    "[timerfd]": FdType.TIMERFD,
    "inotify": FdType.INOTIFY,
    "[userfaultfd]": FdType.USERFAULTFD,
    "[io_uring]": FdType.IOURING,
    "[pidfd]": FdType.PIDFD,
    "bpf-map": FdType.BPF,
    "bpf-prog": FdType.BPF,
}


def fd_of_target(num: int, target: str) -> Fd:
    """An fd from its non-path ``/proc/PID/fd`` link: ``pipe:[INO]``, ``anon_inode:[eventfd]``, ``socket:[INO]``
    (a socket's family is not in the link: its type stays unknown)."""
    kind, _, rest = target.partition(":")
    ino = None
    if rest.startswith("[") and rest.endswith("]") and rest[1:-1].isdigit():
        ino = int(rest[1:-1])
    if kind == "pipe":
        return Fd(num=num, type=FdType.PIPE, path=target, ino=ino)
    if kind == "anon_inode":
        return Fd(num=num, type=_ANON_TYPES.get(rest, FdType.UNSPECIFIED), path=target)
    return Fd(num=num, path=target, ino=ino)
