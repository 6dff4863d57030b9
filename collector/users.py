# SPDX-License-Identifier: Apache-2.0
"""User and group names, resolved against the passwd/group files of the process's own root.

A process in another mount namespace (a container) is resolved against ``/proc/PID/root/etc/passwd``, as Falco
does, so ``user.name`` inside a container names the container's user. Files are cached per mount namespace.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from collector.procfs import UNSET_ID


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One passwd line."""

    name: str
    home: str
    shell: str


ROOT_USER = UserEntry("root", "/root", "")


def parse_passwd(text: str) -> dict[int, UserEntry]:
    """uid -> entry; NSS compat lines (``+``/``-``) and malformed lines are skipped; the first entry wins."""
    out: dict[int, UserEntry] = {}
    for line in text.splitlines():
        if not line or line[0] in "+-#":
            continue
        parts = line.split(":")
        if len(parts) < 7:
            continue
        try:
            uid = int(parts[2])
        except ValueError:
            continue
        out.setdefault(uid, UserEntry(parts[0], parts[5], parts[6]))
    return out


def parse_group(text: str) -> dict[int, str]:
    """gid -> name, with the same skipping rules as :func:`parse_passwd`."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        if not line or line[0] in "+-#":
            continue
        parts = line.split(":")
        if len(parts) < 3:
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        out.setdefault(gid, parts[0])
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@dataclass(slots=True)
class _Db:
    users: dict[int, UserEntry]
    groups: dict[int, str]
    loaded_at: float
    readable: bool
    stamp: tuple[int, int, int, int] | None = None


def _stamp(root: str) -> tuple[int, int, int, int] | None:
    """mtime and size of passwd and group: a cheap way to see that they changed."""
    try:
        a = os.stat(f"{root}/etc/passwd")
        b = os.stat(f"{root}/etc/group")
    except OSError:
        return None
    return (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size)


class UserDb:
    """Resolves ids to names per mount namespace; ``host_mntns`` selects the host files under ``host_root``.

    A container's files are read through ``/proc/PID/root`` of any live process known to be in that namespace
    (``note`` records them), since the process an event is about may already have exited.
    """

    def __init__(self, host_mntns: int, proc_root: str = "/proc", host_root: str = "", ttl_s: float = 30.0) -> None:
        self.host_mntns = host_mntns
        self._proc_root = proc_root
        self._host_root = host_root.rstrip("/")
        self._ttl = ttl_s
        self._dbs: dict[int, _Db] = {}
        self._members: dict[int, list[int]] = {}

    def note(self, mntns: int, pid: int) -> None:
        """Remember that ``pid`` lives in mount namespace ``mntns`` (a way into its root later)."""
        if not mntns or mntns == self.host_mntns:
            return
        pids = self._members.setdefault(mntns, [])
        if pid in pids:
            return
        pids.append(pid)
        if len(pids) > 8:
            del pids[0]
        if len(self._members) > 4096:
            self._members.clear()

    def _roots(self, mntns: int, pid: int) -> list[str]:
        if mntns in (self.host_mntns, 0):
            return [self._host_root]
        candidates = [pid, *reversed(self._members.get(mntns, ()))]
        return [f"{self._proc_root}/{p}/root" for p in dict.fromkeys(candidates)]

    def _db(self, mntns: int, pid: int, *, refresh: bool = False) -> _Db:
        db = self._dbs.get(mntns)
        now = time.monotonic()
        if db is not None and not refresh and now - db.loaded_at < self._ttl:
            return db
        for root in self._roots(mntns, pid):
            stamp = _stamp(root)
            if stamp is None:
                continue
            if db is not None and db.stamp == stamp:
                # A miss (or the TTL) made us look, but the files did not change since they were read.
                db.loaded_at = now
                return db
            db = _Db(
                parse_passwd(_read(f"{root}/etc/passwd")), parse_group(_read(f"{root}/etc/group")), now, True, stamp
            )
            self._dbs[mntns] = db
            return db
        if db is not None:
            # Every process that gave access to this namespace's root is gone; keep the old tables.
            db.loaded_at = now
            return db
        db = _Db({}, {}, now, False)
        self._dbs[mntns] = db
        return db

    def user(self, mntns: int, pid: int, uid: int | None) -> UserEntry | None:
        """The passwd entry of ``uid``; uid 0 is always root. None when unknown."""
        if uid is None or uid == UNSET_ID or uid < 0:
            return None
        if uid == 0:
            return ROOT_USER
        entry = self._db(mntns, pid).users.get(uid)
        if entry is None:
            entry = self._db(mntns, pid, refresh=True).users.get(uid)
        return entry

    def group(self, mntns: int, pid: int, gid: int | None) -> str:
        """The group name of ``gid``; gid 0 is always root. Empty when unknown."""
        if gid is None or gid == UNSET_ID or gid < 0:
            return ""
        if gid == 0:
            return "root"
        name = self._db(mntns, pid).groups.get(gid)
        if name is None:
            name = self._db(mntns, pid, refresh=True).groups.get(gid, "")
        return name

    def prune(self, live: set[int]) -> None:
        """Forget every namespace not in ``live`` (their processes are all gone)."""
        for ns in [ns for ns in self._dbs if ns not in live and ns != self.host_mntns]:
            self.forget(ns)
        for ns in [ns for ns in self._members if ns not in live]:
            self._members.pop(ns, None)

    def forget(self, mntns: int) -> None:
        """Drop a namespace's cached tables (its last process exited)."""
        self._dbs.pop(mntns, None)
        self._members.pop(mntns, None)
