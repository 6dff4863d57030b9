# SPDX-License-Identifier: Apache-2.0
"""Process lifecycle records: execve/execveat, clone/clone3/fork/vfork, procexit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector import layout, taskfacts
from collector.decode import Header, MalformedRecord, cstr
from lanner.model import Arg, Event

if TYPE_CHECKING:
    from collector.decode import Decoder, FamilyDecoder

_EXEC_NAMES = {layout.SC_EXECVE: "execve", layout.SC_EXECVEAT: "execveat"}
_FORK_NAMES = {
    layout.SC_CLONE: "clone",
    layout.SC_CLONE3: "clone3",
    layout.SC_FORK: "fork",
    layout.SC_VFORK: "vfork",
    layout.SC_KTHREAD: "clone",
}


def split_argv(blob: bytes) -> tuple[str, ...]:
    """argv from the NUL-separated blob the probe copied (every string NUL-terminated)."""
    if not blob:
        return ()
    if blob.endswith(b"\0"):
        blob = blob[:-1]
    return tuple(a.decode("utf-8", "surrogateescape") for a in blob.split(b"\0"))


def _argv_blob(args: tuple[str, ...]) -> bytes:
    return b"\0".join(a.encode("utf-8", "surrogateescape") for a in args)


def decode_exec(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """execve/execveat: success updates the process to its new image; failure leaves it as it was."""
    d.body(layout.EXEC.size, raw)
    res, sc, old_tid, dirfd, at_flags, fn_len, args_len, _argc, env_len, _pad = layout.EXEC.unpack_from(
        raw, layout.HDR.size
    )
    d.body(layout.EXEC.size + layout.TASK.size, raw)
    facts = taskfacts.parse(raw, layout.HDR.size + layout.EXEC.size) if res == 0 else None
    start = layout.HDR.size + layout.EXEC.size + layout.TASK.size
    filename = cstr(raw, start, fn_len)
    args_end = start + fn_len + args_len
    if args_end + env_len > len(raw):
        raise MalformedRecord("exec args past record end")
    argv = split_argv(raw[start + fn_len : args_end])
    env = split_argv(raw[args_end : args_end + env_len]) if env_len else None
    table = d.table
    entry = table.procs.get(h.pid)
    if entry is None and old_tid != h.pid:
        entry = table.procs.get(old_tid)
    if entry is None:
        entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    if res == 0:
        if old_tid != h.pid:
            entry.threads.pop(old_tid, None)
        proc = table.exec(
            entry,
            comm=h.comm,
            filename=filename,
            argv=argv,
            env=env,
            uid=h.uid,
            gid=h.gid,
            cgroup_id=h.cgroup_id,
            vpid_hint=h.vpid,
            facts=facts,
        )
        entry.complete = True
    else:
        proc = table.view(entry, h.tid, h.comm, h.vtid)
    anc = table.ancestors(entry)
    args = [
        Arg("res", res),
        Arg("exe", proc.exe),
        Arg("args", _argv_blob(proc.args)),
        Arg("tid", proc.tid),
        Arg("pid", proc.pid),
        Arg("ptid", proc.ppid),
        Arg("cwd", proc.cwd),
        Arg("comm", proc.comm),
    ]
    if proc.loginuid is not None:
        args.append(Arg("loginuid", proc.loginuid))
    if proc.cap_inheritable is not None:
        args.append(Arg("cap_inheritable", proc.cap_inheritable))
    if proc.cap_permitted is not None:
        args.append(Arg("cap_permitted", proc.cap_permitted))
    if proc.cap_effective is not None:
        args.append(Arg("cap_effective", proc.cap_effective))
    if proc.uid is not None:
        args.append(Arg("uid", proc.euid if proc.euid is not None else proc.uid))
    args.append(Arg("trusted_exepath", proc.exepath))
    args.append(Arg("pgid", proc.pgid))
    if proc.gid is not None:
        args.append(Arg("gid", proc.egid if proc.egid is not None else proc.gid))
    if sc == layout.SC_EXECVE:
        args.append(Arg("filename", filename))
    else:
        args.append(Arg("dirfd", dirfd))
        args.append(Arg("pathname", filename))
        args.append(Arg("flags", at_flags))
    if proc.env:
        args.append(Arg("env", _argv_blob(proc.env)))
    if h.flags & layout.HF_ARGS_TRUNCATED:
        args.append(Arg("args_truncated", 1))
    return d.event(
        h, _EXEC_NAMES.get(sc, "execve"), proc, anc, res=res, args=tuple(args), incomplete=not entry.complete
    )


def decode_fork(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """A process or thread was created: the child inherits the parent's state. The event is the parent's view
    (``res`` = the child's tid)."""
    d.body(layout.FORK.size, raw)
    flags, sc, parent_pid, parent_tid, child_tid, child_pid, _pad = layout.FORK.unpack_from(raw, layout.HDR.size)
    table = d.table
    parent = table.get(parent_pid, h.comm, h.uid, h.gid, h.cgroup_id)
    child = table.fork(parent, child_pid, child_tid, flags, table.clock.to_wall(h.ts_ns))
    if sc == layout.SC_KTHREAD and not d.emit_kthread_forks:
        return None
    proc = table.view(parent, parent_tid, h.comm, h.vtid)
    anc = table.ancestors(parent)
    cp = child.proc if child is not None else proc
    args = (
        Arg("res", child_tid),
        Arg("exe", proc.exe),
        Arg("args", _argv_blob(proc.args)),
        Arg("tid", proc.tid),
        Arg("pid", proc.pid),
        Arg("ptid", proc.ppid),
        Arg("cwd", proc.cwd),
        Arg("comm", proc.comm),
        Arg("flags", flags),
        Arg("uid", h.uid),
        Arg("gid", h.gid),
        Arg("vtid", child_tid if child is None else cp.vtid),
        Arg("vpid", cp.vpid),
    )
    return d.event(h, _FORK_NAMES.get(sc, "clone"), proc, anc, res=child_tid, args=args, incomplete=not parent.complete)


def decode_exit(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """A thread exited; the process leaves the table with its last thread."""
    d.body(layout.EXIT.size, raw)
    code, has_code, group_dead, _pad = layout.EXIT.unpack_from(raw, layout.HDR.size)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    anc = table.ancestors(entry)
    args: tuple[Arg, ...] = ()
    if has_code:
        args = (Arg("status", (code & 0xFF) << 8), Arg("ret", code), Arg("sig", 0))
    ev = d.event(h, "procexit", proc, anc, args=args, incomplete=not entry.complete)
    table.exit(h.pid, h.tid, bool(group_dead))
    return ev


FAMILY: dict[int, FamilyDecoder] = {
    layout.MSG_EXEC: decode_exec,
    layout.MSG_FORK: decode_fork,
    layout.MSG_EXIT: decode_exit,
}
