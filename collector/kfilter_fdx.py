# SPDX-License-Identifier: Apache-2.0
"""The switches of the fd-lifecycle probes for ``KernelControl`` (collector/kfilter.py): whether close and receive
records go to userspace, which probe stamps closes (the close enter tracepoint, or the raw sys_enter probe while it
is attached for module loads), and the close exit probe, attached only while close records are wanted."""

from __future__ import annotations

import ctypes
from typing import Any

# fdx_conf bit: send close records to userspace (a rule wants the close event; closes always stamp fd_closed).
FDX_EMIT_CLOSE = 1
# fdx_recv_conf bit: report every recvfrom/recvmsg (a rule wants them), not only those that return a sender.
FDX_EMIT_RECV = 2
# fdx_conf bit: the raw sys_enter probe stamps closes, and the close enter tracepoint is detached (_stamp_on_raw).
FDX_STAMP_RAW = 4
# The close exit probe: attached only while close records are wanted (_close_exit).
_CLOSE_EXIT = (b"syscalls:sys_exit_close", b"tracepoint__syscalls__sys_exit_close")
_CLOSE_ENTER = (b"syscalls:sys_enter_close", b"tracepoint__syscalls__sys_enter_close")


class FdxSwitches:
    """Mixed into ``KernelControl``, which sets these attributes."""

    bpf: Any
    attached: set[str]
    _detached: dict[str, list[str]]
    _stamp_raw: bool
    _close_bits: int

    def _stamp_on_raw(self, on: bool) -> None:
        """Move the close stamps to the raw sys_enter probe (``on``), or back to the close enter tracepoint. The new
        stamper starts before the old one stops, so no close goes unstamped (one stamped twice is harmless)."""
        tp, fn = _CLOSE_ENTER
        if on:
            self._stamp_raw = True
            self._write_fdx()
            if tp in self.bpf.tracepoint_fds:
                self.bpf.detach_tracepoint(tp=tp)
            return
        if "close" in self.attached and tp not in self.bpf.tracepoint_fds and fn in self.bpf.funcs:
            self.bpf.attach_tracepoint(tp=tp, fn_name=fn)
        if self._stamp_raw:
            self._stamp_raw = False
            self._write_fdx()

    def _write_fdx(self) -> None:
        try:
            table = self.bpf[b"fdx_conf"]
        except KeyError:
            return
        table[ctypes.c_int(0)] = ctypes.c_uint32(self._close_bits | (FDX_STAMP_RAW if self._stamp_raw else 0))

    def _set_fdx(self, close_bits: int, recv_bits: int) -> None:
        """Switches of the fd-lifecycle and receive probes (each map absent when its family is not compiled in)."""
        if close_bits:
            self._close_exit(True)  # before the enter probe stashes closes for it
        self._close_bits = close_bits
        close_bits |= FDX_STAMP_RAW if self._stamp_raw else 0
        for name, bits in ((b"fdx_conf", close_bits), (b"fdx_recv_conf", recv_bits)):
            try:
                table = self.bpf[name]
            except KeyError:
                continue
            table[ctypes.c_int(0)] = ctypes.c_uint32(bits)
        if not close_bits:
            self._close_exit(False)

    def _close_exit(self, want: bool) -> None:
        """The close exit probe only writes close records: without them (the usual case, since the fd table needs
        only the stamps the enter probe writes) it stays detached, which halves what tracing a close costs."""
        tp, fn = _CLOSE_EXIT
        if "close" not in self.attached:
            # Detached with its unit; _attach re-attaches only the phases it detached.
            phases = self._detached.get("close")
            if phases is not None:
                if want and "exit" not in phases and fn in self.bpf.funcs:
                    phases.append("exit")
                elif not want and "exit" in phases:
                    phases.remove("exit")
            return
        if want and tp not in self.bpf.tracepoint_fds and fn in self.bpf.funcs:
            self.bpf.attach_tracepoint(tp=tp, fn_name=fn)
        elif not want and tp in self.bpf.tracepoint_fds:
            self.bpf.detach_tracepoint(tp=tp)
