# SPDX-License-Identifier: Apache-2.0
"""The kernel struct offsets the exec probe needs (``fill_task`` in bpf/lanner.bpf.c), from the running kernel's BTF.

Each ``K_*`` constant names one member; they go to bcc as ``-DK_NAME=offset``. Where a member was renamed between
kernel versions the alternatives are tried in order. Optional members (the audit login uid, overlayfs's upper
dentry) get -1 when absent and the probe leaves that fact to /proc. When BTF is missing or a required member cannot
be found, ``resolve`` says why and the collector falls back to reading /proc after each exec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.btf import VMLINUX, Btf, BtfError

# (macro, struct, member path alternatives)
_REQUIRED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("K_TASK_MM", "task_struct", ("mm",)),
    ("K_TASK_REAL_PARENT", "task_struct", ("real_parent",)),
    ("K_TASK_TGID", "task_struct", ("tgid",)),
    ("K_TASK_COMM", "task_struct", ("comm",)),
    ("K_TASK_CRED", "task_struct", ("cred",)),
    ("K_TASK_SIGNAL", "task_struct", ("signal",)),
    ("K_TASK_THREAD_PID", "task_struct", ("thread_pid",)),
    ("K_TASK_NSPROXY", "task_struct", ("nsproxy",)),
    ("K_MM_EXE_FILE", "mm_struct", ("exe_file",)),
    ("K_FILE_INODE", "file", ("f_inode",)),
    ("K_FILE_PATH_MNT", "file", ("f_path.mnt",)),
    ("K_FILE_PATH_DENTRY", "file", ("f_path.dentry",)),
    ("K_DENTRY_NAME", "dentry", ("d_name.name",)),
    ("K_INODE_INO", "inode", ("i_ino",)),
    ("K_INODE_MODE", "inode", ("i_mode",)),
    ("K_INODE_UID", "inode", ("i_uid",)),
    ("K_INODE_GID", "inode", ("i_gid",)),
    ("K_INODE_SB", "inode", ("i_sb",)),
    # 6.11+: split seconds/nanoseconds; 6.6-6.10: __i_ctime/__i_mtime timespec64; older: i_ctime/i_mtime.
    ("K_INODE_CTIME_SEC", "inode", ("i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec")),
    ("K_INODE_CTIME_NSEC", "inode", ("i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec")),
    ("K_INODE_MTIME_SEC", "inode", ("i_mtime_sec", "__i_mtime.tv_sec", "i_mtime.tv_sec")),
    ("K_INODE_MTIME_NSEC", "inode", ("i_mtime_nsec", "__i_mtime.tv_nsec", "i_mtime.tv_nsec")),
    ("K_SB_MAGIC", "super_block", ("s_magic",)),
    ("K_SB_FLAGS", "super_block", ("s_flags",)),
    ("K_MNT_FLAGS", "vfsmount", ("mnt_flags",)),
    ("K_CRED_EUID", "cred", ("euid",)),
    ("K_CRED_EGID", "cred", ("egid",)),
    ("K_CRED_CAP_INH", "cred", ("cap_inheritable",)),
    ("K_CRED_CAP_PRM", "cred", ("cap_permitted",)),
    ("K_CRED_CAP_EFF", "cred", ("cap_effective",)),
    ("K_SIGNAL_TTY", "signal_struct", ("tty",)),
    ("K_SIGNAL_PIDS", "signal_struct", ("pids",)),
    ("K_TTY_INDEX", "tty_struct", ("index",)),
    ("K_TTY_DRIVER", "tty_struct", ("driver",)),
    ("K_DRIVER_MAJOR", "tty_driver", ("major",)),
    ("K_DRIVER_MINOR_START", "tty_driver", ("minor_start",)),
    ("K_PID_LEVEL", "pid", ("level",)),
    ("K_PID_NUMBERS", "pid", ("numbers",)),
    ("K_UPID_NR", "upid", ("nr",)),
    ("K_UPID_NS", "upid", ("ns",)),
    ("K_PIDNS_INUM", "pid_namespace", ("ns.inum",)),
    ("K_NSPROXY_MNT", "nsproxy", ("mnt_ns",)),
    ("K_MNTNS_INUM", "mnt_namespace", ("ns.inum",)),
)
_OPTIONAL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("K_TASK_LOGINUID", "task_struct", ("loginuid",)),
    # The fd array, for the inode of a new pipe or socketpair fd (its fd.name, pipe:[INODE]).
    ("K_TASK_FILES", "task_struct", ("files",)),
    ("K_FILES_FDT", "files_struct", ("fdt",)),
    ("K_FDT_MAX_FDS", "fdtable", ("max_fds",)),
    ("K_FDT_FD", "fdtable", ("fd",)),
)


@dataclass(frozen=True, slots=True)
class KernelOffsets:
    """Offsets for the probes (``defines``), or why there are none (``problem``)."""

    defines: dict[str, int]
    problem: str = ""

    @property
    def available(self) -> bool:
        """Whether the probes can read kernel structs."""
        return not self.problem

    def cflags(self) -> list[str]:
        """bcc ``-D`` flags: the offsets and LANNER_BTF=1, or LANNER_BTF=0."""
        if not self.available:
            return ["-DLANNER_BTF=0"]
        return ["-DLANNER_BTF=1", *(f"-D{k}={v}" for k, v in sorted(self.defines.items()))]


def _first(btf: Btf, struct_name: str, paths: tuple[str, ...]) -> int:
    last: BtfError | None = None
    for path in paths:
        try:
            return btf.offset(struct_name, path)
        except BtfError as exc:
            last = exc
    raise BtfError(f"struct {struct_name}: none of {', '.join(paths)} ({last})")


def from_btf(btf: Btf) -> KernelOffsets:
    """Resolve every offset against parsed BTF."""
    out: dict[str, int] = {}
    try:
        for macro, struct_name, paths in _REQUIRED:
            out[macro] = _first(btf, struct_name, paths)
        out["K_UPID_SIZE"] = btf.size(btf.find("upid"))
        out["K_PIDTYPE_SID"] = btf.enum_value("pid_type", "PIDTYPE_SID")
        out["K_PIDTYPE_PGID"] = btf.enum_value("pid_type", "PIDTYPE_PGID")
    except BtfError as exc:
        return KernelOffsets({}, f"kernel BTF lacks a member the probes need: {exc}")
    for macro, struct_name, paths in _OPTIONAL:
        try:
            out[macro] = _first(btf, struct_name, paths)
        except BtfError:
            out[macro] = -1
    out["K_OVL_UPPER_DELTA"] = _ovl_delta(btf)
    return KernelOffsets(out)


def _ovl_delta(btf: Btf) -> int:
    """Distance from the VFS inode embedded in ``struct ovl_inode`` to its ``__upperdentry``; -1 when overlayfs's
    types are not in BTF (not built, or a module whose BTF is not loaded)."""
    candidates = [btf]
    module = VMLINUX.parent / "overlay"
    if not btf.has("ovl_inode") and module.exists():
        try:
            candidates.append(Btf.load(module, base=btf))
        except (OSError, BtfError):
            pass
    for b in candidates:
        try:
            return b.offset("ovl_inode", "__upperdentry") - b.offset("ovl_inode", "vfs_inode")
        except BtfError:
            continue
    return -1


_cached: KernelOffsets | None = None


def resolve(path: Path | str = VMLINUX) -> KernelOffsets:
    """Offsets for the running kernel (parsed once per process)."""
    global _cached
    if _cached is not None and Path(path) == VMLINUX:
        return _cached
    if not Path(path).exists():
        res = KernelOffsets({}, f"the kernel has no BTF ({path} is missing; needs CONFIG_DEBUG_INFO_BTF)")
    else:
        try:
            res = from_btf(Btf.load(path))
        except (OSError, BtfError) as exc:
            res = KernelOffsets({}, f"cannot read kernel BTF at {path}: {exc}")
    if Path(path) == VMLINUX:
        _cached = res
    return res
