# SPDX-License-Identifier: Apache-2.0
"""How much the host's CPUs are contended, for the collector's gather policy (``collector.service.gather_delay``).

Each batch costs every later stage a fixed few hundred microseconds of CPU (gRPC, asyncio wake-ups), several
times more on a loaded host, whatever its size. On a quiet host that CPU is free and latency matters more. On a
busy one it is taken from the workload: during an open/close storm on 2 cores, with 1 open in 100 reaching
userspace (about 1.4k events/s), batches of 6 events made the four services use 1.1 cores, and the storm ran at
2.86x slowdown against 1.70x when none reached userspace.

The signal is the kernel's CPU pressure (``/proc/pressure/cpu``, "some": the share of time in which at least one
runnable task waited for a CPU). It is what the workload feels: a storm alone on one of two cores reads 0, and the
same storm with the services competing for the other core reads 0.5-0.7. The host's busy share would not tell
those apart. Without PSI (a kernel built or booted without it), the share of this thread's runnable time spent
waiting for a CPU (``/proc/thread-self/schedstat``) stands in.

Pressure alone also rises with the services' own load: with every open forced to userspace at 1k-10k/s, and on a
shared host, it read 0.05-0.15, and gathers that followed it doubled the latency there. What marks a busy
workload rather than busy services is the kernel filter dropping many events (``KernelFiltered``): a storm drops
300k+/s, events forced to userspace are not dropped at all. The policy uses the pressure weighted by that.

The gather itself lowers the pressure, so the reading rises at once and decays slowly (``DECAY_S``): a policy that
followed it both ways would swing between short and long gathers every few tenths of a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from collector.kfilter import FILTERED

PSI_CPU = Path("/proc/pressure/cpu")
SCHEDSTAT = Path("/proc/thread-self/schedstat")
# Sample at most this often (a read is ~10 µs; the gather needs no finer picture).
SAMPLE_S = 0.1
# Time constant of the decay after the pressure falls.
DECAY_S = 2.0


def psi_some_us(path: Path = PSI_CPU) -> int | None:
    """Cumulative µs of "some" CPU pressure, or None without PSI."""
    try:
        with path.open("rb") as f:
            line = f.readline()
        return int(line.rsplit(b"=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


def thread_wait_us(path: Path = SCHEDSTAT) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting) of the calling thread, or None when the kernel does not say."""
    try:
        on_cpu, waited, _slices = path.read_bytes().split()
        return int(on_cpu), int(waited)
    except (OSError, ValueError):
        return None


def decayed(previous: float, sample: float, elapsed: float, decay_s: float = DECAY_S) -> float:
    """The smoothed pressure after ``sample`` over ``elapsed`` seconds: a rise is taken at once, a fall only
    with time constant ``decay_s``."""
    if sample >= previous:
        return sample
    return sample + (previous - sample) * math.exp(-max(0.0, elapsed) / decay_s)


class Contention:
    """The host's smoothed CPU pressure, 0 (nobody waits) to 1 (someone always waits)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, psi: Path = PSI_CPU, schedstat: Path = SCHEDSTAT
    ) -> None:
        self._clock = clock
        self._psi_path, self._sched_path = psi, schedstat
        self.level = 0.0
        self._at = clock()
        self._psi = psi_some_us(psi)
        self._sched = None if self._psi is not None else thread_wait_us(schedstat)

    @property
    def available(self) -> bool:
        """Whether the kernel gives any contention signal at all."""
        return self._psi is not None or self._sched is not None

    def sample(self) -> float:
        """The smoothed pressure, sampled again when ``SAMPLE_S`` has passed since the last sample."""
        now = self._clock()
        elapsed = now - self._at
        if elapsed < SAMPLE_S:
            return self.level
        share = self._read(elapsed)
        self._at = now
        if share is not None:
            self.level = decayed(self.level, min(1.0, max(0.0, share)), elapsed)
        return self.level

    def _read(self, elapsed: float) -> float | None:
        if self._psi is not None:
            total = psi_some_us(self._psi_path)
            if total is None:
                return None
            share = (total - self._psi) / 1e6 / elapsed
            self._psi = total
            return share
        if self._sched is not None:
            now = thread_wait_us(self._sched_path)
            if now is None:
                return None
            ran, waited = now[0] - self._sched[0], now[1] - self._sched[1]
            self._sched = now
            return waited / (ran + waited) if ran + waited > 0 else 0.0
        return None


# At this many events/s dropped in the kernel, the host is busy with work the rules do not need.
BUSY_FILTERED_RATE = 20_000.0
# The kernel filter's counters move about once a second (collector.source); they are looked at this often, so a
# storm opens the gate within about a second of its start (bench storms last 2 s), and the rate is taken between
# two moves.
FILTERED_SAMPLE_S = 0.25
# Counters that have not moved for this long mean nothing was dropped.
FILTERED_STALE_S = 2.5


def filtered_total() -> float:
    """Events the kernel filter dropped so far, from its Prometheus counter (0 without the kernel filter)."""
    return float(sum(s.value for m in FILTERED.collect() for s in m.samples if s.name.endswith("_total")))


class KernelFiltered:
    """How busy the host is with events no rule needs: 0 (none dropped) to 1 (``BUSY_FILTERED_RATE`` or more)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, total: Callable[[], float] = filtered_total
    ) -> None:
        self._clock, self._total = clock, total
        self._at, self._seen = clock(), total()
        self.share = 0.0

    def sample(self) -> float:
        now = self._clock()
        elapsed = now - self._at
        if elapsed < FILTERED_SAMPLE_S:
            return self.share
        seen = self._total()
        if seen == self._seen and elapsed < FILTERED_STALE_S:
            # The counters may not have moved yet in this window (they move about once a second, out of step
            # with these samples): a zero here would drop the share every other second.
            return self.share
        rate = max(0.0, seen - self._seen) / elapsed
        self._at, self._seen = now, seen
        self.share = min(1.0, rate / BUSY_FILTERED_RATE)
        return self.share
