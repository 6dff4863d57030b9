# SPDX-License-Identifier: Apache-2.0
"""Event sources: the kernel (bcc probes + decoder + process table) behind the small ``EventSource`` Protocol.

The BPF part is a thin adapter (``BpfProbe``) that compiles ``bpf/lanner.bpf.c``, attaches it and drains the ring
buffer into raw records; everything after that is plain Python over bytes, testable without a kernel.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import mmap
import os
import platform
import socket
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from collector import kernel_offsets, layout, metrics, preflight, rawenter
from collector.cgroups import CgroupMap
from collector.decode import Decoder, Identity
from collector.encode import EventEncoder
from collector.fdclose import CloseMarks
from collector.kfilter import KernelControl
from collector.procfs import BootClock, list_pids, ns_inode, parse_stat
from collector.proctable import ProcessTable
from collector.ringbuf import MappedRingBuffer
from collector.users import UserDb
from collector.wirepath import WirePath
from lanner.codec import SharedEvent
from lanner.model import Event
from lanner.v1 import kfilter_pb2

log = logging.getLogger(__name__)

FAMILIES = layout.FAMILIES
# init_module / finit_module syscall numbers, caught on the raw syscall tracepoints (-1: never matches); x86_64's
# come from collector.rawenter, which holds its syscall tables.
_X64, _I386 = rawenter.NRS_X86_64, rawenter.NRS_I386
_MODULE_SYSCALL_NRS = {"x86_64": (_X64["init_module"], _X64["finit_module"]), "aarch64": (105, 273)}
# The same for 32-bit tasks (the i386 table), which the raw sys_enter tracepoint sees too.
_MODULE_SYSCALL_NRS_32 = {"x86_64": (_I386["init_module"], _I386["finit_module"])}
# close(2)'s number, for the raw sys_enter probe that stamps closes while it is attached for module loads (64-bit and
# i386 tables).
_CLOSE_NR = {"x86_64": _X64["close"]}
_CLOSE_NR_32 = {"x86_64": _I386["close"]}
# How often the process table is checked against /proc for processes whose exit event was lost.
SWEEP_INTERVAL_S = 30.0
# How often the kernel filter's per-syscall counts are copied into lanner_kernel_{passed,filtered}_total.
KERNEL_COUNTS_INTERVAL_S = 1.0


class EventSource(Protocol):
    """Anything that yields events: the kernel probes, a recording, a webhook."""

    name: str

    def start(self) -> None:
        """Begin producing; raise ``preflight.SetupError`` when the source cannot work here."""

    def poll(self) -> list[Event]:
        """Events available now, without blocking (possibly none)."""

    def dropped(self) -> int:
        """Events lost inside the source so far (e.g. ring buffer full)."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class WireSource(Protocol):
    """A source that can hand over its events already serialized (``collector.wirepath``)."""

    # Records taken per poll; the service sets it to what its sender writes per turn of the event loop.
    max_per_poll: int

    def poll_wire(self, encoder: EventEncoder) -> tuple[list[SharedEvent], int]:
        """Events available now as shared-table wire events, and the newest one's event time (epoch ns)."""


class RecordReader(Protocol):
    """Raw ring-buffer records; implemented by ``BpfProbe``."""

    def start(self) -> None:
        """Load and attach."""

    def read(self) -> list[bytes]:
        """Records available now."""

    def dropped(self) -> int:
        """Records the kernel side could not queue."""

    def close(self) -> None:
        """Detach and free."""


def read_boot_id(path: str = "/proc/sys/kernel/random/boot_id") -> str:
    """This boot's id (empty when unreadable)."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def node_name(configured: str = "", proc_root: str = "/proc") -> str:
    """The name events carry as ``evt.hostname``: the configured one (e.g. the Kubernetes node name), else the
    host's own name, read through init's root when the collector runs in a container (whose hostname would be a
    container id)."""
    if configured:
        return configured
    init_ns = ns_inode(proc_root, 1, "uts")
    own_ns = ns_inode(proc_root, os.getpid(), "uts")
    if init_ns and own_ns and init_ns != own_ns:
        try:
            with open(f"{proc_root}/1/root/etc/hostname", encoding="utf-8") as f:
                name = f.read().strip()
            if name:
                return name
        except OSError:
            pass
    return socket.gethostname()


def default_identity(node: str = "") -> Identity:
    """Host name, boot id and a fresh producer id for this collector run."""
    return Identity(node=node or node_name(), boot_id=read_boot_id(), producer_id=uuid.uuid4().hex)


def with_descendants(pids: Iterable[int], proc_root: str = "/proc") -> set[int]:
    """``pids`` plus every process now running below them."""
    wanted = set(pids)
    if not wanted:
        return wanted
    children: dict[int, list[int]] = {}
    for pid in list_pids(proc_root):
        try:
            with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as f:
                ppid = parse_stat(f.read()).ppid
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    stack = list(wanted)
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out.add(pid)
        stack.extend(children.get(pid, ()))
    return out


def module_tracepoints(tracefs: str = preflight.TRACEFS) -> bool:
    """Whether the kernel has init_module/finit_module tracepoints (it was built with module support)."""
    return all(os.path.isdir(f"{tracefs}/events/syscalls/sys_enter_{sc}") for sc in ("init_module", "finit_module"))


class BpfProbe:
    """Compiles and attaches the probes with bcc; ``read`` drains the ring buffer without waiting.

    The collector's own process and everything it forks are excluded in the kernel (``exclude_self``; tests that
    trace their own children turn it off), as are ``exclude_pids`` and their future children.
    """

    def __init__(
        self,
        *,
        ring_buffer_pages: int = 1024,
        families: Iterable[str] = FAMILIES,
        exclude_pids: Iterable[int] = (),
        exclude_self: bool = True,
        drop_failed_opens: bool = False,
        capture_env: bool = True,
        trace_all: bool = False,
        kernel_filter: bool = True,
        use_btf: bool = True,
        raw_enter: bool = True,
    ) -> None:
        if ring_buffer_pages <= 0 or ring_buffer_pages & (ring_buffer_pages - 1):
            raise ValueError(f"ring_buffer_pages must be a power of two, got {ring_buffer_pages}")
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown syscall families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
        self._pages = ring_buffer_pages
        self._families = frozenset(families)
        self._exclude = tuple(exclude_pids)
        self._exclude_self = exclude_self
        self._drop_failed_opens = drop_failed_opens
        self._capture_env = capture_env
        self._trace_all = trace_all
        self._kernel_filter = kernel_filter
        self._raw_enter = raw_enter
        self.control: KernelControl | None = None
        # Kernel struct offsets for the exec probe; without them exec facts come from /proc (see `collector check`).
        self.offsets = kernel_offsets.resolve() if use_btf else kernel_offsets.KernelOffsets({}, "BTF use turned off")
        self._bpf: Any = None
        self._pending: list[bytes] = []
        self._callback: Any = None
        self._mapped: MappedRingBuffer | None = None

    def cflags(self) -> list[str]:
        """The compile-time configuration passed to bcc."""
        flags = [
            f"-I{layout.BPF_DIR}",
            f"-DLANNER_RB_PAGES={self._pages}",
            f"-DLANNER_SELF_TGID={os.getpid() if self._exclude_self else 0}",
            f"-DLANNER_DROP_FAILED_OPEN={int(self._drop_failed_opens)}",
            f"-DLANNER_CAPTURE_ENV={int(self._capture_env)}",
            "-Wno-unused-function",
        ]
        for fam, macro in layout.FAMILY_MACROS.items():
            flags.append(f"-D{macro}={1 if fam in self._families else 0}")
        flags.extend(self.offsets.cflags())
        nr = _MODULE_SYSCALL_NRS.get(platform.machine(), (-1, -1))
        flags += [f"-DLANNER_NR_INIT_MODULE={nr[0]}", f"-DLANNER_NR_FINIT_MODULE={nr[1]}"]
        nr32 = _MODULE_SYSCALL_NRS_32.get(platform.machine())
        if nr32 is not None:
            flags += [f"-DLANNER_NR32_INIT_MODULE={nr32[0]}", f"-DLANNER_NR32_FINIT_MODULE={nr32[1]}"]
        # Only where the probe tells the 32-bit table apart (x86_64's code segment); elsewhere closes keep their
        # tracepoint.
        if platform.machine() in _CLOSE_NR:
            flags.append(f"-DLANNER_NR_CLOSE={_CLOSE_NR[platform.machine()]}")
            flags.append(f"-DLANNER_NR32_CLOSE={_CLOSE_NR_32.get(platform.machine(), -1)}")
        # Module loads on their own tracepoints when the kernel has them, else on raw_syscalls (every syscall).
        flags.append(f"-DLANNER_MODULE_TPS={int(module_tracepoints())}")
        # x86_64 exit probes read the arguments from the saved user registers (no enter probe for opens); the task
        # pointer they need comes from BTF.
        regs_args = platform.machine() == "x86_64" and self.offsets.available
        flags.append(f"-DLANNER_REGS_ARGS={int(regs_args)}")
        # There, every enter probe also runs on the one raw sys_enter tracepoint, dispatched by syscall number.
        raw_enter = regs_args and self._raw_enter and rawenter.supported()
        flags.append(f"-DLANNER_RAW_ENTER={int(raw_enter)}")
        if raw_enter:
            flags += rawenter.cflags()
        return flags

    def start(self) -> None:
        """Compile, load and attach (takes a few seconds); raises SetupError with the fix when it cannot."""
        preflight.check()
        bcc = preflight.import_bcc()
        try:
            self._bpf = bcc.BPF(src_file=str(layout.PROGRAM_PATH).encode(), cflags=self.cflags())
        except Exception as exc:
            raise preflight.SetupError(f"loading the eBPF probes failed: {exc}") from None
        excluded = self._bpf[b"excluded"]
        # The kernel side excludes children forked from now on; those already running are found in /proc.
        for pid in with_descendants(self._exclude):
            excluded[ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
        self._open_ring_buffer()
        # The open exits hand over to one program, the socket and file-operation exits to another; both hand their
        # findings to a third that decides. Each is verified once for all of its syscalls.
        tails = (
            (b"kf_open_filter", {"file"}),
            (b"kf_rec_filter", {"network", "fileop"}),
            (b"kf_decide_prog", {"file", "network", "fileop"}),
        )
        for slot, (name, fams) in enumerate(tails):
            if fams & self._families:
                tail = self._bpf.load_func(name, bcc.BPF.TRACEPOINT)
                self._bpf[b"kf_prog"][ctypes.c_int(slot)] = ctypes.c_int(tail.fd)
        # Recording everything means no filter.
        filtering = self._kernel_filter and not self._trace_all
        self.control = KernelControl(self._bpf, trace_all=self._trace_all, filtering=filtering)

    def _open_ring_buffer(self) -> None:
        """Map the ring buffer and drain it in bulk; bcc's per-record callback is the fallback."""
        table = self._bpf[b"events"]
        try:
            self._mapped = MappedRingBuffer(int(table.map_fd), self._pages * mmap.PAGESIZE)
            return
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ring buffer cannot be mapped; reading it through bcc callbacks", extra={"error": str(exc)})
        pending = self._pending

        def on_record(_ctx: Any, data: Any, size: int) -> int:
            pending.append(ctypes.string_at(data, size))
            return 0

        self._callback = on_record
        table.open_ring_buffer(on_record)

    def set_pidns(self, cgroup_id: int, dev: int, ino: int) -> None:
        """Tell the probes which pid namespace the processes of a cgroup live in (for namespaced pids)."""
        if self._bpf is not None:
            key = ctypes.c_uint64(cgroup_id)
            table = self._bpf[b"pidns"]
            table[key] = table.Leaf(dev, ino)

    def exclude(self, pid: int) -> None:
        """Stop tracing a process (and the children it forks from now on)."""
        if self._bpf is not None:
            self._bpf[b"excluded"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def include(self, pid: int) -> None:
        """Undo ``exclude`` for one pid: an entry for a process that had already exited would otherwise silence the
        next process given its pid (the probes drop the entry only when they see the excluded process exit)."""
        if self._bpf is not None:
            try:
                del self._bpf[b"excluded"][ctypes.c_uint32(pid)]
            except KeyError:
                pass

    def wait_fd(self) -> int | None:
        """A descriptor that polls readable when the ring buffer holds records (the probes wake it when a record
        lands in an empty buffer), so a quiet collector can sleep until the next event; None when read through bcc
        callbacks."""
        if self._bpf is None or self._mapped is None:
            return None
        return int(self._bpf[b"events"].map_fd)

    def read(self) -> list[bytes]:
        """Drain whatever the ring buffer holds now."""
        if self._bpf is None:
            return []
        if self._mapped is not None:
            return self._mapped.read()
        self._bpf.ring_buffer_consume()
        if not self._pending:
            return []
        out = self._pending[:]
        self._pending.clear()
        return out

    def dropped(self) -> int:
        """Records lost because the ring buffer was full, summed over CPUs."""
        if self._bpf is None:
            return 0
        return int(sum(self._bpf[b"drops"][ctypes.c_int(0)]))

    def retried(self) -> int:
        """Ring buffer reservations that failed at the first try (each was tried once more; a second failure is
        also in ``dropped``), summed over CPUs."""
        if self._bpf is None:
            return 0
        return int(sum(self._bpf[b"drops"][ctypes.c_int(1)]))

    def close(self) -> None:
        """Detach the probes and free the maps."""
        if self._mapped is not None:
            self._mapped.close()
            self._mapped = None
        if self._bpf is not None:
            # Each detach waits for the kernel's RCU grace period (~40 ms): one after another, the ~100 tracepoints
            # made every stop take 4 s. Side by side they share grace periods.
            names = list(self._bpf.tracepoint_fds)
            if names:
                with ThreadPoolExecutor(max_workers=len(names)) as pool:
                    list(pool.map(self._bpf.detach_tracepoint, names))
            self._bpf.cleanup()
            self._bpf = None
            self.control = None


class KernelSource:
    """The live source: BPF records decoded into Events against a process table seeded from /proc."""

    name = "syscall"

    def __init__(
        self,
        reader: RecordReader,
        *,
        identity: Identity | None = None,
        proc_root: str = "/proc",
        host_root: str = "",
        max_per_poll: int = 2048,
    ) -> None:
        self.reader = reader
        clock = BootClock()
        init_mntns = ns_inode(proc_root, 1, "mnt")
        own_mntns = ns_inode(proc_root, os.getpid(), "mnt")
        if not host_root and init_mntns and own_mntns and init_mntns != own_mntns:
            # Running in a container with the host's pid namespace: the host's files are under init's root.
            host_root = f"{proc_root}/1/root"
        users = UserDb(init_mntns or own_mntns, proc_root=proc_root, host_root=host_root)
        self.table = ProcessTable(
            users, CgroupMap(proc_root=proc_root), clock, proc_root=proc_root, host_root=host_root
        )
        self.decoder = Decoder(self.table, identity or default_identity())
        self.table.pidns_hook = self._register_pidns
        self._pidns_known: set[int] = set()
        self._swept = time.monotonic()
        self.max_per_poll = max_per_poll
        self._backlog: list[bytes] = []
        self._next = 0
        self._malformed_seen = 0
        self._kcounted = 0.0
        self._retries_seen = 0
        self._wire: WirePath | None = None

    def start(self) -> None:
        """Attach first, then read /proc: a process forked in between shows up in both, never in neither."""
        self.reader.start()
        control = getattr(self.reader, "control", None)
        if isinstance(control, KernelControl):
            # Closes stamp fd numbers in the kernel: a table entry made before a close is not trusted.
            self.table.fd_closed = CloseMarks(control.bpf).closed_between
        t0 = time.monotonic()
        n = self.table.seed()
        log.info("process table seeded", extra={"processes": n, "seconds": round(time.monotonic() - t0, 3)})
        # The table is long-lived and large, events are short-lived and acyclic: keep the cyclic collector from
        # rescanning the table every few thousand allocations.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)

    def _register_pidns(self, cgroup_id: int, pid: int) -> None:
        if cgroup_id in self._pidns_known:
            return
        set_pidns = getattr(self.reader, "set_pidns", None)
        if set_pidns is None:
            return
        try:
            st = os.stat(f"{self.table.proc_root}/{pid}/ns/pid")
        except OSError:
            return
        if len(self._pidns_known) > 4000:
            self._pidns_known.clear()
        self._pidns_known.add(cgroup_id)
        set_pidns(cgroup_id, st.st_dev, st.st_ino)

    def wait_fd(self) -> int | None:
        """The reader's wake-up descriptor (see ``BpfProbe.wait_fd``), if it has one."""
        get = getattr(self.reader, "wait_fd", None)
        return get() if get is not None else None

    def poll(self) -> list[Event]:
        """Decode what the ring buffer holds now."""
        chunk = self._next_chunk()
        if not chunk:
            return []
        events = self.decoder.decode_many(chunk, time.time_ns())
        self._update_metrics(sum(1 for e in events if e.proc_incomplete))
        return events

    def poll_wire(self, encoder: EventEncoder) -> tuple[list[SharedEvent], int]:
        """What the ring buffer holds now, straight to wire events (the service's path: no model objects for
        the hot record types), and the newest event's time."""
        chunk = self._next_chunk()
        if not chunk:
            return [], 0
        wire = self._wire
        if wire is None or wire.encoder is not encoder:
            wire = self._wire = WirePath(self.decoder, encoder)
        before = wire.incomplete
        out = wire.run(chunk, time.time_ns())
        self._update_metrics(wire.incomplete - before)
        return out

    def _next_chunk(self) -> list[bytes]:
        now = time.monotonic()
        # On every poll, not only those that find events: while the kernel filter drops everything (an open storm no
        # rule wants) nothing reaches userspace, and counters moved only by event-bearing polls stood still, behind
        # the kernel by whatever it counted since the last such poll, until some unrelated event came along.
        if now - self._kcounted >= KERNEL_COUNTS_INTERVAL_S:
            self._kcounted = now
            control = getattr(self.reader, "control", None)
            if isinstance(control, KernelControl):
                control.update_metrics()
            self._count_ring_retries()
        if now - self._swept > SWEEP_INTERVAL_S:
            self._swept = now
            gone = self.table.sweep()
            if gone:
                log.info("forgot processes whose exit was not seen", extra={"processes": gone})
        if self._next >= len(self._backlog):
            self._backlog = self.reader.read()
            self._next = 0
            if not self._backlog:
                return []
        # Decode a bounded slice per call so one burst cannot hold the event loop (and the sender) for long.
        chunk = self._backlog[self._next : self._next + self.max_per_poll]
        self._next += len(chunk)
        return chunk

    def apply_spec(self, spec: kfilter_pb2.KernelSpec) -> kfilter_pb2.KernelSpecAck:
        """Attach what the rule engine's spec needs and load its filter (the process and fd tables stay)."""
        control = getattr(self.reader, "control", None)
        if not isinstance(control, KernelControl):
            return kfilter_pb2.KernelSpecAck(fingerprint=spec.fingerprint, filtering=False)
        ack = control.apply(spec)
        self.table.stale_fd = control.stale_fd if control.filtering else None
        return ack

    def _update_metrics(self, incomplete: int) -> None:
        metrics.PROCESSES.set(len(self.table.procs))
        malformed = self.decoder.malformed
        if malformed > self._malformed_seen:
            metrics.MALFORMED.inc(malformed - self._malformed_seen)
            self._malformed_seen = malformed
        if incomplete:
            metrics.INCOMPLETE.inc(incomplete)

    def dropped(self) -> int:
        """Records lost in the kernel ring buffer."""
        return self.reader.dropped()

    def _count_ring_retries(self) -> None:
        """Copy the probes' count of ring buffer reservations that failed at the first try into
        ``lanner_collector_ring_retries_total``: with a working consumer only a full ring fails, so a count with
        no matching ``ring_buffer_full`` loss is a bug showing (see ``BpfProbe.retried``)."""
        retried = getattr(self.reader, "retried", None)
        if retried is None:
            return
        n = int(retried())
        if n > self._retries_seen:
            metrics.RING_RETRIES.inc(n - self._retries_seen)
            self._retries_seen = n

    def close(self) -> None:
        """Detach the probes."""
        self.reader.close()
