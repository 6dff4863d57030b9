# SPDX-License-Identifier: Apache-2.0
"""Applies the rule engine's ``KernelSpec`` to the loaded probes: which tracepoints are attached, what opens the
kernel drops (the ``kf_*`` maps of ``bpf/lanner.bpf.c``), and the per-syscall counters of both.

Nothing is recompiled: attaching and detaching a tracepoint takes milliseconds, and the filter lives in maps that
are rewritten in place. While maps are rewritten, filtering is off (every open passes), so a reload never drops an
event that either rule set would want. Until a spec arrives, every compiled tracepoint is attached and nothing is
filtered: what the collector did before it knew the rules.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter

from collector import rawenter
from collector.kfilter_fdx import FDX_EMIT_CLOSE, FDX_EMIT_RECV, FdxSwitches
from collector.kfilter_maps import (
    BLOOM_WORDS,
    KF_MAX_CLAUSES,
    KF_SLOTS,
    SLOTS,
    KernelFilterMaps,
    bloom_bit,
    closure,
    exact_bloom,
)
from lanner.v1 import kfilter_pb2

log = logging.getLogger(__name__)

FILTERED = Counter("lanner_kernel_filtered_total", "Events dropped in the kernel by the rules' filter", ["syscall"])
PASSED = Counter("lanner_kernel_passed_total", "Filterable events the kernel let through", ["syscall"])

# Falco event type -> the syscalls (tracepoint names without sys_enter_/sys_exit_) that produce it.
TYPE_SYSCALLS: dict[str, tuple[str, ...]] = {"procexit": ("exit", "exit_group"), "umount2": ("umount",)}
# Caught on the raw sys_enter tracepoint (a BPF raw tracepoint, RAW_TP) when the kernel has no tracepoints of their
# own (built without module support); the two share it, attached while either is wanted.
RAW_SYSCALLS = ("init_module", "finit_module")
RAW_UNIT = "raw_syscalls"
RAW_TP = (b"sys_enter", b"raw_tracepoint__sys_enter")
# Never detached: the process table is built from them.
LIFECYCLE = frozenset({"execve", "execveat", "clone", "clone3", "fork", "vfork", "exit", "exit_group"})


def syscalls_of(event_type: str) -> tuple[str, ...]:
    """The syscalls whose tracepoints report ``event_type``."""
    return TYPE_SYSCALLS.get(event_type, (event_type,))


def wanted_syscalls(spec: kfilter_pb2.KernelSpec | None, compiled: Iterable[str], trace_all: bool) -> set[str]:
    """The compiled syscalls to attach for ``spec`` (all of them with no spec, ``trace_all`` or ``all_types``)."""
    have = set(compiled)
    if spec is None or trace_all or spec.all_types:
        return have
    out = set(LIFECYCLE)
    for t in spec.types:
        out.update(syscalls_of(t.event_type))
    return out & have


def _unit(sc: str, raw: bool = True) -> str:
    """The attach unit of ``sc``: module loads share raw_syscalls when they are compiled on it (``raw``)."""
    return RAW_UNIT if raw and sc in RAW_SYSCALLS else sc


def _unit_tracepoints(unit: str) -> tuple[tuple[str, bytes, bytes], ...]:
    """(phase, tracepoint, function) of the enter and exit probes of an attach unit."""
    cat, names = ("raw_syscalls", ("enter", "exit")) if unit == RAW_UNIT else ("syscalls", ("enter", "exit"))
    out = []
    for phase in names:
        tp = f"sys_{phase}" if unit == RAW_UNIT else f"sys_{phase}_{unit}"
        out.append((phase, f"{cat}:{tp}".encode(), f"tracepoint__{cat}__{tp}".encode()))
    return tuple(out)


def compiled_syscalls(tracepoints: Iterable[bytes], raw: bool = False) -> list[str]:
    """The syscall names the loaded probes can report, from their tracepoint names (``raw``: and RAW_TP)."""
    out: set[str] = set(RAW_SYSCALLS) if raw else set()
    for tp in tracepoints:
        name = tp.decode()
        if name.startswith(f"{RAW_UNIT}:"):
            out.update(RAW_SYSCALLS)
        elif name.startswith("syscalls:sys_"):
            out.add(name.split(":sys_", 1)[1].split("_", 1)[1])
    return sorted(out)


class KernelControl(FdxSwitches):
    """Attachments and filter maps of a loaded ``BpfProbe`` (its bcc object is ``bpf``)."""

    def __init__(self, bpf: Any, *, trace_all: bool = False, filtering: bool = True) -> None:
        self.bpf = bpf
        self.trace_all = trace_all
        self.filtering = filtering
        self.fingerprint = ""
        # Every enter probe on the raw sys_enter tracepoint (x86_64 with BTF): units switch their bits in raw_want.
        self._want = rawenter.RawWant(bpf) if rawenter.compiled(bpf) else None
        # Else module loads are caught on the raw tracepoint only when the kernel has no tracepoints of their own.
        self._raw = self._want is None and RAW_TP[0] in getattr(bpf, "raw_tracepoint_fds", {})
        self.compiled = compiled_syscalls(bpf.tracepoint_fds, self._raw)
        if self._want is not None:
            self.compiled = sorted(set(self.compiled) | rawenter.compiled_syscalls(bpf))
            self._want.set(self.compiled)
        self.attached = set(self.compiled)
        self._detached: dict[str, list[str]] = {}
        # The raw sys_enter probe can stamp closes (compiled so) and currently does.
        self._raw_close = self._raw and rawenter.has_map(bpf, b"fdx_raw_close")
        self._stamp_raw = False
        self._close_bits = 0
        self._set_fdx(FDX_EMIT_CLOSE if trace_all else 0, FDX_EMIT_RECV if trace_all else 0)
        self._seen_filtered = [0] * KF_SLOTS
        self._seen_passed = [0] * KF_SLOTS

    def apply(self, spec: kfilter_pb2.KernelSpec) -> kfilter_pb2.KernelSpecAck:
        """Make the probes match ``spec`` (idempotent)."""
        if spec.fingerprint and spec.fingerprint == self.fingerprint:
            return self.ack()
        wanted = wanted_syscalls(spec, self.compiled, self.trace_all)
        # A close record per close only when a rule can match the close event; for the fd table the stamps suffice.
        wants_close = (
            self.trace_all
            or spec.all_types
            or any(t.event_type == "close" and any(r.startswith("rule: ") for r in t.reasons) for t in spec.types)
        )
        wants_recv = (
            self.trace_all
            or spec.all_types
            or any(
                t.event_type in ("recvfrom", "recvmsg") and any(r.startswith("rule: ") for r in t.reasons)
                for t in spec.types
            )
        )
        # Closes are stamped on the raw sys_enter probe while it is attached for module loads anyway, unless close
        # records are wanted (the enter and exit tracepoints pair them). Every switch keeps one stamper attached.
        raw = self._raw_close and not wants_close and "close" in wanted and bool(wanted & set(RAW_SYSCALLS))
        if not raw:
            self._stamp_on_raw(False)
        self._attach(wanted)
        self._set_fdx(FDX_EMIT_CLOSE if wants_close else 0, FDX_EMIT_RECV if wants_recv else 0)
        self._stamp_on_raw(raw)
        self._write_maps(KernelFilterMaps(spec) if self.filtering else None)
        self.fingerprint = spec.fingerprint
        log.info(
            "kernel spec applied",
            extra={"fingerprint": spec.fingerprint, "attached": len(self.attached), "filtering": self.filtering},
        )
        return self.ack()

    def ack(self) -> kfilter_pb2.KernelSpecAck:
        """What is applied now."""
        return kfilter_pb2.KernelSpecAck(
            fingerprint=self.fingerprint, attached=sorted(self.attached), filtering=self.filtering
        )

    def _attach(self, wanted: set[str]) -> None:
        have = {_unit(sc, self._raw) for sc in self.attached}
        want = {_unit(sc, self._raw) for sc in wanted}
        if self._want is not None:
            # Enter probes stop before their exits go, and start after their exits came.
            self._want.set(self.attached & wanted)
        for unit in sorted(have - want):
            if unit == RAW_UNIT:
                self._raw_tp(False)
                continue
            gone = []
            for phase, tp, _fn in _unit_tracepoints(unit):
                if tp in self.bpf.tracepoint_fds:
                    self.bpf.detach_tracepoint(tp=tp)
                    gone.append(phase)
            self._detached[unit] = gone
        for unit in sorted(want - have):
            if unit == RAW_UNIT:
                self._raw_tp(True)
                continue
            # The exit first: an enter without its exit would only leave a stale in-flight entry.
            phases = self._detached.pop(unit, [])
            for phase, tp, fn in reversed(_unit_tracepoints(unit)):
                if phase in phases:
                    self.bpf.attach_tracepoint(tp=tp, fn_name=fn)
        if self._want is not None:
            self._want.set(wanted)
            # With no enter probe wanted at all (never with rules: the process table always wants some), nothing
            # runs on sys_enter.
            self._raw_tp(bool(self._want.words))
        self.attached = set(wanted)

    def enter_attached(self, sc: str) -> bool:
        """Whether the enter probe of ``sc`` runs now: its bits in raw_want, or its sys_enter_* tracepoint."""
        if self._want is not None:
            nr = rawenter.NRS_X86_64.get(sc)
            return nr is not None and bool(self._want.read().get(nr, 0) & rawenter.WANT64)
        if sc in RAW_SYSCALLS and self._raw:
            return RAW_TP[0] in self.bpf.raw_tracepoint_fds
        return f"syscalls:sys_enter_{sc}".encode() in self.bpf.tracepoint_fds

    def _raw_tp(self, on: bool) -> None:
        tp, fn = RAW_TP
        attached = tp in self.bpf.raw_tracepoint_fds
        if on and not attached:
            self.bpf.attach_raw_tracepoint(tp=tp, fn_name=fn)
        elif not on and attached:
            self.bpf.detach_raw_tracepoint(tp=tp)

    def _write_maps(self, maps: KernelFilterMaps | None) -> None:
        b = self.bpf
        modes = b[b"kf_sc"]
        for slot in range(KF_SLOTS):  # everything passes while the maps change
            modes[ctypes.c_int(slot)] = modes.Leaf(0, 0)
        self._bump_gen()  # the open filter's memo of a dropped open is not used across a rewrite
        if maps is None:
            return
        for name in (b"kf_exact", b"kf_prefix", b"kf_suffix", b"kf_comm", b"kf_sport"):
            b[name].clear()
        conf = b[b"kf_conf"]
        m = maps.masks
        for arg, pm in enumerate(maps.path_masks):
            first = arg == 0
            conf[ctypes.c_int(arg)] = conf.Leaf(
                pm["exact"],
                pm["prefix"],
                pm["suffix"],
                m["comm"] if first else 0,
                m["dotdot"] if first else 0,
                m["exact_mask"],
                len(maps.num) if first else 0,
                0,
                m["sport"] if first else 0,
                pm["pmatch"],
            )
        sport = b[b"kf_sport"]
        for port, mask in maps.sport.items():
            sport[ctypes.c_uint32(port)] = ctypes.c_uint64(mask)
        nums = b[b"kf_num"]
        for i, (kind, op, value, bit) in enumerate(maps.num):
            nums[ctypes.c_int(i)] = nums.Leaf(kind, op, value, bit)
        bloom = b[b"kf_exact_bloom"]
        bloom[ctypes.c_int(BLOOM_WORDS)] = ctypes.c_uint64(0)  # not used until it matches kf_exact again
        for i, word in enumerate(exact_bloom(maps.exact)):
            bloom[ctypes.c_int(i)] = ctypes.c_uint64(word)
        bloom[ctypes.c_int(BLOOM_WORDS)] = ctypes.c_uint64(1)
        for name, entries, lpm in ((b"kf_exact", maps.exact, False), (b"kf_prefix", maps.prefix, True)):
            table = b[name]
            for s, mask in entries.items():
                key = table.Key()
                key.prefixlen = len(s) * 8 if lpm else 0
                key.s = s
                table[key] = ctypes.c_uint64(mask)
        sfx = b[b"kf_suffix"]
        for s, mask in maps.suffix.items():
            key = sfx.Key()
            key.prefixlen = len(s) * 8
            key.s = s
            sfx[key] = ctypes.c_uint64(mask)
        comm = b[b"kf_comm"]
        for s, mask in maps.comm.items():
            key = comm.Key()
            key.c = s
            comm[key] = ctypes.c_uint64(mask)
        clauses = b[b"kf_clauses"]
        for slot, cl in maps.clauses.items():
            for i, (must_true, must_false) in enumerate(cl):
                clauses[ctypes.c_int(slot * KF_MAX_CLAUSES + i)] = clauses.Leaf(must_true, must_false)
        self._bump_gen()
        for slot, cl in maps.clauses.items():
            modes[ctypes.c_int(slot)] = modes.Leaf(1, len(cl))

    def _bump_gen(self) -> None:
        if rawenter.has_map(self.bpf, b"kf_gen"):
            gen = self.bpf[b"kf_gen"]
            gen[ctypes.c_int(0)] = ctypes.c_uint64(int(gen[ctypes.c_int(0)].value) + 1)

    def stale_fd(self, pid: int, fd: int) -> int:
        """Boot time of the last open of (pid, fd) the kernel dropped, 0 if none is remembered."""
        v = self.bpf[b"kf_stale_fd"].get(ctypes.c_uint64((pid << 32) | (fd & 0xFFFFFFFF)))
        return int(v.ts) if v is not None else 0

    def update_metrics(self) -> None:
        """Move the kernel's per-syscall counters into the Prometheus counters."""
        for name, seen, counter in (
            (b"kf_filtered", self._seen_filtered, FILTERED),
            (b"kf_passed", self._seen_passed, PASSED),
        ):
            table = self.bpf[name]
            for sc, slot in SLOTS.items():
                total = int(sum(table[ctypes.c_int(slot)]))
                if total > seen[slot]:
                    counter.labels(sc).inc(total - seen[slot])
                    seen[slot] = total

    def counts(self) -> dict[str, tuple[int, int]]:
        """(filtered, passed) per filterable syscall since the probes were loaded."""
        out = {}
        for sc, slot in SLOTS.items():
            f = int(sum(self.bpf[b"kf_filtered"][ctypes.c_int(slot)]))
            p = int(sum(self.bpf[b"kf_passed"][ctypes.c_int(slot)]))
            out[sc] = (f, p)
        return out


# The map contents moved to collector.kfilter_maps; these names are still imported from here.
__all__ = [
    "BLOOM_WORDS",
    "FILTERED",
    "PASSED",
    "SLOTS",
    "KernelControl",
    "KernelFilterMaps",
    "bloom_bit",
    "closure",
    "exact_bloom",
    "wanted_syscalls",
]
