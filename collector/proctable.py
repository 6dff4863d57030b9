# SPDX-License-Identifier: Apache-2.0
"""The process table: every live process with its fds, seeded from /proc and kept current by exec/fork/exit.

The table is keyed by thread-group id. Each entry holds the frozen ``Process`` the events carry, rebuilt only
when the process changes (exec, fork, chdir, a new uid), so the hot path (an open) costs a few dict lookups.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import replace

from collector import exec_state, layout, procfs
from collector.cgroups import CgroupMap
from collector.entry import ProcEntry, normalize, with_slash
from collector.fdtable import FdOps
from collector.procfs import BootClock, Snapshot
from collector.taskfacts import TaskFacts
from collector.users import UserDb
from lanner.model import Process

CLONE_NEWNS = 0x00020000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWPID = 0x20000000
O_CLOEXEC = 0o2000000


class ProcessTable(FdOps):
    """Process and fd state for decoding events."""

    def __init__(
        self,
        users: UserDb,
        cgroups: CgroupMap,
        clock: BootClock,
        *,
        proc_root: str = "/proc",
        max_fds_per_process: int = 4096,
        max_ancestors: int = 32,
        host_root: str = "",
    ) -> None:
        self.users = users
        self.cgroups = cgroups
        self.clock = clock
        self.proc_root = proc_root
        self.max_fds = max_fds_per_process
        self.max_ancestors = max_ancestors
        self.host_root = host_root.rstrip("/")
        self.procs: dict[int, ProcEntry] = {}
        self._gen = 0
        self._upperdirs: dict[int, str] = {}
        # Called with (cgroup id, pid) for a process seen in a pid namespace of its own (see KernelSource).
        self.pidns_hook: Callable[[int, int], None] | None = None

    # ------------------------------------------------------------------ building entries

    def _names(self, p: Process, mntns: int) -> Process:
        self.users.note(mntns, p.pid)
        uid = p.euid if p.euid is not None else p.uid
        gid = p.egid if p.egid is not None else p.gid
        user = self.users.user(mntns, p.pid, uid)
        login = self.users.user(mntns, p.pid, p.loginuid) if p.loginuid is not None and p.loginuid >= 0 else None
        return replace(
            p,
            user_name=user.name if user else "",
            user_homedir=user.home if user else "",
            user_shell=user.shell if user else "",
            group_name=self.users.group(mntns, p.pid, gid),
            loginuser_name=login.name if login else "",
        )

    def entry_from_snapshot(self, snap: Snapshot) -> ProcEntry:
        """Build a table entry from a /proc snapshot."""
        st = snap.status
        vpid = st.nspid[-1] if st.nspid else snap.pid
        vpgid = st.nspgid[-1] if len(st.nspgid) > 1 else 0
        cgroup_id = self.cgroups.id_of(snap.cgroups)
        self.cgroups.learn(cgroup_id, snap.cgroups)
        stat = snap.stat
        p = Process(
            pid=snap.pid,
            tid=snap.pid,
            ppid=st.ppid,
            vpid=vpid,
            vtid=vpid,
            sid=stat.session if stat else 0,
            pgid=stat.pgrp if stat else 0,
            vpgid=vpgid,
            comm=snap.comm,
            exe=snap.argv[0] if snap.argv else "",
            exepath=snap.exepath,
            args=snap.argv[1:],
            env=snap.env,
            cwd=with_slash(snap.cwd),
            uid=st.uids[0] if st.uids[0] != procfs.UNSET_ID else None,
            gid=st.gids[0] if st.gids[0] != procfs.UNSET_ID else None,
            euid=st.uids[1] if st.uids[1] != procfs.UNSET_ID else None,
            egid=st.gids[1] if st.gids[1] != procfs.UNSET_ID else None,
            loginuid=snap.loginuid,
            cap_effective=st.cap_effective,
            cap_permitted=st.cap_permitted,
            cap_inheritable=st.cap_inheritable,
            tty=stat.tty if stat else None,
            start_ns=self.clock.ticks_to_wall(stat.start_ticks) if stat else 0,
            cgroup_id=cgroup_id,
            cgroups=snap.cgroups,
            is_sid_leader=(stat.session == snap.pid) if stat else None,
            is_vpgid_leader=vpgid == vpid,
        )
        if vpid != snap.pid and cgroup_id > 1 and self.pidns_hook is not None:
            self.pidns_hook(cgroup_id, snap.pid)
        return ProcEntry(proc=self._names(p, snap.mntns), mntns=snap.mntns)

    def seed(self) -> int:
        """Load every process alive now; returns how many were read."""
        for pid in procfs.list_pids(self.proc_root):
            snap = procfs.read_snapshot(pid, self.proc_root)
            if snap is not None:
                self.procs[pid] = self.entry_from_snapshot(snap)
        self._gen += 1
        return len(self.procs)

    def _load(self, pid: int, comm: str, uid: int, gid: int, cgroup_id: int) -> ProcEntry:
        snap = procfs.read_snapshot(pid, self.proc_root)
        if snap is not None and snap.status.tgid == pid:
            entry = self.entry_from_snapshot(snap)
        else:
            # Gone before we could look: keep what the event itself told us and mark it incomplete.
            p = Process(
                pid=pid,
                tid=pid,
                comm=comm,
                uid=uid,
                gid=gid,
                cgroup_id=cgroup_id,
                cgroups=self.cgroups.lookup(cgroup_id, pid),
            )
            entry = ProcEntry(proc=self._names(p, 0), mntns=0, complete=False)
        self.procs[pid] = entry
        return entry

    # ------------------------------------------------------------------ lookups

    def get(self, pid: int, comm: str, uid: int, gid: int, cgroup_id: int, vpid: int = 0) -> ProcEntry:
        """The entry for a thread group, reading /proc when the table has none. ``vpid``, when the probe could
        tell it, corrects a namespaced pid the table did not know."""
        entry = self.procs.get(pid)
        if entry is None:
            entry = self._load(pid, comm, uid, gid, cgroup_id)
        p = entry.proc
        if vpid and p.vpid != vpid:
            entry.proc = p = replace(p, vpid=vpid, vtid=vpid)
            entry.threads.clear()
            self._gen += 1
        if p.uid != uid or p.gid != gid:
            # setuid/setgid family: the real ids changed; a privileged setuid sets all ids alike.
            p = replace(p, uid=uid, gid=gid, euid=uid, egid=gid)
            entry.proc = self._names(p, entry.mntns)
            entry.threads.clear()
            self._gen += 1
        return entry

    def view(self, entry: ProcEntry, tid: int, comm: str, vtid: int = 0) -> Process:
        """The Process as seen from one thread (tid and comm may differ from the main thread's)."""
        p = entry.proc
        if tid == p.pid and comm == p.comm:
            return p
        t = entry.threads.get(tid)
        if t is None or t.comm != comm or t.uid != p.uid:
            vtid = vtid or (tid if p.vpid == p.pid else 0)
            t = replace(p, tid=tid, vtid=vtid, comm=comm)
            if len(entry.threads) > 1024:
                entry.threads.clear()
            entry.threads[tid] = t
        return t

    def ancestors(self, entry: ProcEntry) -> tuple[Process, ...]:
        """Parent first, then grandparent...; stops at a pid missing from the table, pid 0, or a loop."""
        if entry.anc_gen == self._gen:
            return entry.anc
        chain: list[Process] = []
        seen = {entry.proc.pid}
        cur = entry
        while len(chain) < self.max_ancestors:
            ppid = cur.proc.ppid
            if ppid <= 0 or ppid in seen:
                break
            parent = self.procs.get(ppid)
            if parent is None:
                parent = self._reparent(cur)
                if parent is None:
                    if cur.pcomm and cur.proc.ppid == ppid:
                        # Gone already, but the kernel told us its name at exec (proc.pname of a quick chain).
                        chain.append(Process(pid=ppid, tid=ppid, comm=cur.pcomm))
                    break
            chain.append(parent.proc)
            seen.add(parent.proc.pid)
            cur = parent
        entry.anc = tuple(chain)
        entry.anc_gen = self._gen
        return entry.anc

    def _reparent(self, entry: ProcEntry) -> ProcEntry | None:
        # The parent exited; the kernel moved this process to a reaper. Ask /proc once for the new parent.
        if entry.ppid_checked:
            return None
        entry.ppid_checked = True
        try:
            with open(f"{self.proc_root}/{entry.proc.pid}/status", encoding="utf-8") as f:
                ppid = procfs.parse_status(f.read()).ppid
        except OSError:
            return None
        if ppid == entry.proc.ppid:
            return None
        entry.proc = replace(entry.proc, ppid=ppid)
        entry.threads.clear()
        return self.procs.get(ppid)

    # ------------------------------------------------------------------ lifecycle

    def fork(self, parent: ProcEntry, child_pid: int, child_tid: int, flags: int, ts_ns: int) -> ProcEntry | None:
        """A new process (not a thread) was forked from ``parent``; returns its entry, None for a new thread."""
        if flags & CLONE_THREAD:
            return None
        pp = parent.proc
        ppid = pp.ppid if flags & CLONE_PARENT else pp.pid
        vpid = child_pid
        new_ns = bool(flags & CLONE_NEWPID) or parent.newpid_pending
        parent.newpid_pending = False
        if pp.vpid != pp.pid or new_ns or parent.children_pidns:
            # The first process of a new pid namespace is its pid 1 (a container's entrypoint); /proc confirms
            # it when the child is still there, and gives the others theirs.
            vpid = 1 if new_ns else 0
            try:
                with open(f"{self.proc_root}/{child_pid}/status", encoding="utf-8") as f:
                    nspid = procfs.parse_status(f.read()).nspid
                vpid = nspid[-1] if nspid else vpid
            except OSError:
                pass
        mntns = parent.mntns
        if flags & CLONE_NEWNS:
            mntns = procfs.ns_inode(self.proc_root, child_pid, "mnt") or mntns
        child = replace(
            pp,
            pid=child_pid,
            tid=child_pid,
            ppid=ppid,
            vpid=vpid,
            vtid=vpid,
            start_ns=ts_ns,
            is_sid_leader=False if pp.sid else None,
        )
        entry = ProcEntry(
            proc=child,
            mntns=mntns,
            fds=dict(parent.fds),
            fd_ns=dict(parent.fd_ns),
            cloexec=set(parent.cloexec),
            complete=parent.complete,
            fork_from=pp.pid,
            fork_ns=self.now_ns,
        )
        self.procs[child_pid] = entry
        return entry

    def exec(
        self,
        entry: ProcEntry,
        *,
        comm: str,
        filename: str,
        argv: tuple[str, ...],
        env: tuple[str, ...] | None = None,
        uid: int,
        gid: int,
        cgroup_id: int,
        vpid_hint: int = 0,
        facts: TaskFacts | None = None,
    ) -> Process:
        """The process replaced its image; returns the new Process. ``facts`` are what the probe read from the
        kernel at the exec (preferred: right even when the process is already gone); without them the rest comes
        from /proc. ``vpid_hint`` is the namespaced pid the probe reported, used when /proc can no longer be read."""
        pid = entry.proc.pid
        base = f"{self.proc_root}/{pid}"
        exepath = ""
        try:
            exepath = procfs.strip_deleted(os.readlink(f"{base}/exe"))
        except OSError:
            exepath = self._exepath_from_filename(entry, filename)
        if facts is not None:
            st = exec_state.from_facts(entry, facts)
        else:
            st = exec_state.from_proc(self.proc_root, entry, uid, gid, vpid_hint)
        (euid, egid, caps, loginuid, tty, sid, pgid, vpid, vpgid, mntns) = st.ids
        exe_ino, ctime, mtime, writable = st.exe
        upper = st.upper if st.upper is not None else self.exe_upper_layer(mntns, pid, exepath)
        ppid = facts.ppid if facts is not None and facts.ppid else entry.proc.ppid
        if facts is not None and facts.pcomm:
            entry.pcomm = facts.pcomm
        cgroups = entry.proc.cgroups
        if cgroup_id != entry.proc.cgroup_id or not cgroups:
            cgroups = self.cgroups.lookup(cgroup_id, pid)
        p = replace(
            entry.proc,
            tid=pid,
            ppid=ppid,
            comm=comm,
            exe=argv[0] if argv else filename,
            exepath=exepath,
            args=argv[1:],
            env=env if env is not None else entry.proc.env,
            uid=uid,
            gid=gid,
            euid=euid,
            egid=egid,
            loginuid=loginuid,
            cap_inheritable=caps[0],
            cap_permitted=caps[1],
            cap_effective=caps[2],
            cgroup_id=cgroup_id,
            cgroups=cgroups,
            vpid=vpid,
            vtid=vpid,
            vpgid=vpgid,
            is_vpgid_leader=vpgid == vpid,
            tty=tty,
            sid=sid,
            pgid=pgid,
            is_sid_leader=sid == pid,
            exe_ino=exe_ino,
            exe_ino_ctime=ctime,
            exe_ino_mtime=mtime,
            is_exe_writable=writable,
            is_exe_from_memfd=exepath.startswith("/memfd:") or (facts is not None and facts.exe_memfd),
            is_exe_upper_layer=upper,
        )
        entry.proc = self._names(p, mntns)
        entry.mntns = mntns
        if vpid and vpid != pid and cgroup_id > 1 and self.pidns_hook is not None:
            self.pidns_hook(cgroup_id, pid)
        for fd in entry.cloexec:
            entry.fds.pop(fd, None)
        entry.cloexec.clear()
        entry.threads.clear()
        self._gen += 1
        return entry.proc

    def _exepath_from_filename(self, entry: ProcEntry, filename: str) -> str:
        # The process is gone before /proc/PID/exe could be read: work from the name the kernel executed.
        if filename.startswith("/dev/fd/"):
            # execveat/fexecve on an fd: the kernel names the file /dev/fd/N[/path]; N is in the fd table.
            num, _, rest = filename[len("/dev/fd/") :].partition("/")
            fd = self.get_fd(entry, int(num)) if num.isdigit() else None
            if fd is not None and fd.path.startswith("/"):
                return normalize(posixpath.join(fd.path, rest)) if rest else fd.path
            return filename
        if filename in ("/proc/self/exe", f"/proc/{entry.proc.pid}/exe") and entry.proc.exepath:
            # A program re-executing itself (busybox applets, runc): the same file as before the exec.
            return entry.proc.exepath
        path = filename if filename.startswith("/") else normalize(posixpath.join(entry.proc.cwd or "/", filename))
        if entry.mntns in (0, self.users_host_mntns) and not path.startswith(("/proc/", "/dev/")):
            # Same root as ours, so symlinks can be resolved here (the kernel reports the resolved path).
            path = os.path.realpath(path)
        return path

    def exe_upper_layer(self, mntns: int, pid: int, exepath: str) -> bool | None:
        """Whether a container's executable lives in its writable overlay layer (it was added or changed after the
        image was built). False outside containers or when the root is not an overlay; None when unknown."""
        if mntns in (0, self.users_host_mntns) or not exepath.startswith("/"):
            return False
        upper = self._upperdirs.get(mntns)
        if upper is None:
            try:
                with open(f"{self.proc_root}/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
                    upper = procfs.overlay_upperdir(f.read()) or ""
            except OSError:
                return None
            if len(self._upperdirs) > 4096:
                self._upperdirs.clear()
            self._upperdirs[mntns] = upper
        if not upper:
            return False
        return os.path.lexists(f"{self.host_root}{upper}{exepath}")

    @property
    def users_host_mntns(self) -> int:
        """Mount namespace whose files are the host's."""
        return self.users.host_mntns

    def exit(self, pid: int, tid: int, group_dead: bool) -> None:
        """A thread exited; the whole entry goes when it was the last one."""
        if group_dead:
            if self.procs.pop(pid, None) is not None:
                self._gen += 1
        else:
            entry = self.procs.get(pid)
            if entry is not None:
                entry.threads.pop(tid, None)

    def unshared(self, entry: ProcEntry, flags: int) -> None:
        """A successful unshare(2): after CLONE_NEWPID the process's next child starts a new pid namespace."""
        if flags & CLONE_NEWPID:
            entry.children_pidns = entry.newpid_pending = True

    def set_ids(self, entry: ProcEntry, sc: int, ids: list[int]) -> None:
        """A set*id call succeeded: take the ids it set (-1 = unchanged). A privileged setuid/setgid sets all."""
        p = entry.proc
        if sc in (layout.SC_SETUID, layout.SC_SETREUID, layout.SC_SETRESUID):
            if sc == layout.SC_SETUID:
                uid, euid = ids[0], ids[0]
            else:
                uid, euid = ids[0], ids[1]
            p = replace(p, uid=p.uid if uid < 0 else uid, euid=p.euid if euid < 0 else euid)
        else:
            if sc == layout.SC_SETGID:
                gid, egid = ids[0], ids[0]
            else:
                gid, egid = ids[0], ids[1]
            p = replace(p, gid=p.gid if gid < 0 else gid, egid=p.egid if egid < 0 else egid)
        entry.proc = self._names(p, entry.mntns)
        entry.threads.clear()
        self._gen += 1

    def sweep(self) -> int:
        """Forget processes that no longer exist (their exit event was lost); returns how many."""
        alive = set(procfs.list_pids(self.proc_root))
        if not alive:
            return 0
        gone = [pid for pid in self.procs if pid not in alive]
        for pid in gone:
            del self.procs[pid]
        if gone:
            self._gen += 1
        # Namespaces of containers that are gone take their cached passwd and overlay lookups with them.
        live_ns = {e.mntns for e in self.procs.values()}
        self.users.prune(live_ns)
        for ns in [ns for ns in self._upperdirs if ns not in live_ns]:
            del self._upperdirs[ns]
        return len(gone)

    def chdir(self, entry: ProcEntry, path: str) -> None:
        """The working directory changed."""
        entry.proc = replace(entry.proc, cwd=with_slash(path))
        entry.threads.clear()
        self._gen += 1

    # ------------------------------------------------------------------ fds and paths
