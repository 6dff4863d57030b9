# SPDX-License-Identifier: Apache-2.0
"""Maps the kernel's cgroup id (the cgroup v2 directory inode from ``bpf_get_current_cgroup_id``) to the textual
cgroup lines the enricher parses for a container id.

Short-lived processes are often gone before /proc can be read, so the mapping is learned from every process the
collector does read, and, failing that, found by walking the cgroup v2 tree for a directory with that inode.
"""

from __future__ import annotations

import os
import time

from collector.procfs import parse_cgroup


def find_cgroup2_root(mounts_text: str) -> str:
    """Mount point of the cgroup v2 hierarchy from /proc/self/mounts text ('' when there is none)."""
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return parts[1]
    return ""


def unified_path(cgroups: tuple[str, ...]) -> str | None:
    """The cgroup v2 path (the ``0::`` line) of a cgroup list, if any."""
    for item in cgroups:
        if item.startswith("0::"):
            return item[3:]
    return None


class CgroupMap:
    """cgroup id -> ``/proc/PID/cgroup`` lines, learned and cached."""

    def __init__(self, cgroup2_root: str | None = None, proc_root: str = "/proc", max_entries: int = 65536) -> None:
        if cgroup2_root is None:
            try:
                with open(f"{proc_root}/self/mounts", encoding="utf-8") as f:
                    cgroup2_root = find_cgroup2_root(f.read())
            except OSError:
                cgroup2_root = ""
        self.root = cgroup2_root
        self._proc_root = proc_root
        self._by_id: dict[int, tuple[str, ...]] = {}
        self._max = max_entries
        self._last_walk = 0.0

    def learn(self, cgroup_id: int, cgroups: tuple[str, ...]) -> None:
        """Remember what one process with this id showed in /proc/PID/cgroup."""
        if cgroup_id and cgroups:
            if len(self._by_id) >= self._max:
                self._by_id.clear()
            self._by_id[cgroup_id] = cgroups

    def id_of(self, cgroups: tuple[str, ...]) -> int:
        """The cgroup v2 inode for a cgroup list (0 when there is no v2 hierarchy or the directory is gone)."""
        path = unified_path(cgroups)
        if path is None or not self.root:
            return 0
        try:
            return os.stat(self.root + path.rstrip("/")).st_ino if path != "/" else os.stat(self.root).st_ino
        except OSError:
            return 0

    def lookup(self, cgroup_id: int, pid: int) -> tuple[str, ...]:
        """Cgroups for an id: cache, then /proc/PID/cgroup, then a (rate-limited) walk of the v2 tree."""
        hit = self._by_id.get(cgroup_id)
        if hit is not None:
            return hit
        try:
            with open(f"{self._proc_root}/{pid}/cgroup", encoding="utf-8") as f:
                cgroups = parse_cgroup(f.read())
        except OSError:
            cgroups = ()
        if cgroups and self.id_of(cgroups) in (cgroup_id, 0):
            self.learn(cgroup_id, cgroups)
            return cgroups
        found = self._walk(cgroup_id)
        if found:
            return found
        return cgroups

    def _walk(self, cgroup_id: int) -> tuple[str, ...]:
        now = time.monotonic()
        if not self.root or now - self._last_walk < 1.0:
            return ()
        self._last_walk = now
        for dirpath, _dirs, _files in os.walk(self.root):
            try:
                ino = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = dirpath[len(self.root) :] or "/"
            self._by_id.setdefault(ino, (f"0::{rel}",))
        return self._by_id.get(cgroup_id, ())
