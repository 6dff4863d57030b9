# SPDX-License-Identifier: Apache-2.0
"""The enricher's core: find each event's container from its cgroup, fill ``Event.container`` and ``Event.k8s``.

Works on protobuf events directly: this is the service edge, and converting whole events to the domain model
and back would cost more than the enrichment itself.

Never blocking the stream on a slow runtime
-------------------------------------------
The container id comes from the cgroup path, which is in the event, so it is always known at once. Metadata
needs a runtime lookup (a few ms against a local Docker or containerd, but unbounded when a runtime hangs). The
trade-off chosen here:

* Lookups run as background tasks, one per container id, each with a hard timeout (``lookup_timeout_s``).
* A batch whose containers are still being looked up waits for them at most ``wait_s`` (default 100 ms), then
  goes out with what is known: for a pending container only ``container.id``/``full_id`` are set and
  ``metadata_complete`` is false, which is Falco's "id known, metadata not yet" state (every other
  ``container.*``/``k8s.*`` field is NULL). Later events of the same container get the metadata once the lookup
  completes. Only the first batch that meets a pending lookup waits for it, so a hung runtime costs one wait per
  new container, not one per batch.
* Batches of one stream are handled in order, so this bounded wait adds latency but never reorders events. The
  wait exists because the first events of a container (``docker exec sh`` is the classic) are the ones detection
  rules care most about; with a local runtime they nearly always complete within the wait.
* Answers are remembered in memory (positive ``meta_ttl_s``, negative and failed ``negative_ttl_s``), and the
  provider behind may itself be the Redis cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence

from google.protobuf.message import DecodeError
from prometheus_client import Counter

from enricher.cgroups import CgroupMatch, match_cgroup_tuple
from enricher.kexec import ExecSessions
from enricher.kexec_frame import apply_to_frame
from enricher.meta import ContainerMeta, LookupFailed, MetadataProvider
from lanner.convert import HOST_PB, cgroups_of, container_to_pb, k8s_to_pb
from lanner.model import SOURCE_SYSCALL
from lanner.v1 import event_pb2

log = logging.getLogger(__name__)

# The cache of process placements by wire form: bytes it may hold, and the largest key it keeps.
WIRE_CACHE_BYTES = 32 * 1024 * 1024
WIRE_KEY_MAX_BYTES = 64 * 1024

LOOKUPS = Counter("lanner_enricher_lookups_total", "Runtime metadata lookups, by result", ["result"])
ENRICHED = Counter(
    "lanner_enricher_events_total",
    "Enrichment outcomes (host, container, pending, unknown): one per event, or per process of a batch that "
    "carries its processes by reference",
    ["outcome"],
)

_HOST_PB = HOST_PB


class _Entry:
    """What is known about one container id: its metadata as ready-to-copy protobuf, and until when."""

    __slots__ = ("container", "container_wire", "expires", "k8s", "k8s_wire", "meta")

    def __init__(self, meta: ContainerMeta | None, expires: float, full_id: str) -> None:
        self.meta = meta
        self.expires = expires
        self.container = event_pb2.Container()
        self.k8s: event_pb2.K8s | None = None
        if meta is None:
            self.container.id = full_id[:12]
            self.container.full_id = full_id
        else:
            container_to_pb(meta.container, self.container)
            self.container.metadata_complete = True
            if meta.k8s.pod_name or meta.k8s.pod_uid:
                self.k8s = event_pb2.K8s()
                k8s_to_pb(meta.k8s, self.k8s)
        # The same, serialized once, for batches that carry containers by reference.
        self.container_wire = self.container.SerializeToString()
        self.k8s_wire = self.k8s.SerializeToString() if self.k8s is not None else b""


class Enricher:
    """Fills container and pod metadata into protobuf events, looking metadata up asynchronously."""

    def __init__(
        self,
        provider: MetadataProvider | None,
        *,
        wait_s: float = 0.1,
        lookup_timeout_s: float = 2.0,
        meta_ttl_s: float = 60.0,
        negative_ttl_s: float = 10.0,
        max_entries: int = 65536,
        sessions: ExecSessions | None = None,
    ) -> None:
        self.provider = provider
        # kubectl exec attribution (enricher.kexec), run over each batch once its containers are known.
        self.sessions = sessions
        self.wait_s = wait_s
        self.lookup_timeout_s = lookup_timeout_s
        self.meta_ttl_s = meta_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Lookups some batch already waited for: a hung runtime costs one wait per container, not one per batch.
        self._waited: set[str] = set()
        # When an event has no cgroup lines (the collector could not read /proc), fall back to what an earlier
        # event of the same cgroup (by cgroup v2 inode) or the same pid said.
        self._by_cgroup_id: dict[int, CgroupMatch | None] = {}
        self._by_pid: dict[int, CgroupMatch | None] = {}
        # Where a process (by its wire form, as batches carry it) runs: most batches repeat the same processes.
        self._by_wire: dict[bytes, CgroupMatch | None] = {}
        self._by_wire_bytes = 0
        self._outcome = {o: ENRICHED.labels(o) for o in ("host", "container", "pending", "unknown")}
        self._last_failure_log = 0.0

    # ---- container id -------------------------------------------------------------------------------------

    def resolve(self, proc: event_pb2.Process) -> tuple[bool, CgroupMatch | None]:
        """(known, match): the container of this process (None = host); known=False when nothing says."""
        if proc.cgroups:
            match = match_cgroup_tuple(cgroups_of(proc))
            self._remember(self._by_pid, proc.pid, match)
            if proc.cgroup_id:
                self._remember(self._by_cgroup_id, proc.cgroup_id, match)
            return True, match
        if proc.cgroup_id and proc.cgroup_id in self._by_cgroup_id:
            return True, self._by_cgroup_id[proc.cgroup_id]
        if proc.pid in self._by_pid:
            return True, self._by_pid[proc.pid]
        return False, None

    def _remember(self, table: dict[int, CgroupMatch | None], key: int, value: CgroupMatch | None) -> None:
        if len(table) >= self.max_entries:
            for old in list(table)[: self.max_entries // 8]:
                del table[old]
        table[key] = value

    # ---- metadata -----------------------------------------------------------------------------------------

    def _entry(self, full_id: str, now: float) -> _Entry | None:
        entry = self._entries.get(full_id)
        if entry is not None and entry.expires < now:
            del self._entries[full_id]
            return None
        return entry

    def ensure_lookup(self, full_id: str) -> asyncio.Task[None] | None:
        """Start a background lookup for this id unless one is running or the answer is fresh."""
        if self.provider is None:
            return None
        task = self._pending.get(full_id)
        if task is not None:
            return task
        if self._entry(full_id, time.monotonic()) is not None:
            return None
        task = asyncio.create_task(self._lookup(full_id))
        self._pending[full_id] = task
        return task

    async def _lookup(self, full_id: str) -> None:
        assert self.provider is not None
        meta: ContainerMeta | None = None
        ttl = self.negative_ttl_s
        try:
            meta = await asyncio.wait_for(self.provider.lookup(full_id), self.lookup_timeout_s)
            LOOKUPS.labels("found" if meta is not None else "not_found").inc()
            if meta is not None:
                ttl = self.meta_ttl_s
        except (LookupFailed, TimeoutError) as exc:
            LOOKUPS.labels("timeout" if isinstance(exc, TimeoutError) else "failed").inc()
            now = time.monotonic()
            if now - self._last_failure_log > 10.0:
                self._last_failure_log = now
                log.warning(
                    "container metadata lookup failed; events pass with the container id only",
                    extra={"container_id": full_id[:12], "error": str(exc) or "timeout"},
                )
        except Exception as exc:  # a provider bug must not kill the stream
            LOOKUPS.labels("failed").inc()
            log.error("container metadata lookup crashed", extra={"container_id": full_id[:12], "error": repr(exc)})
        finally:
            self._pending.pop(full_id, None)
            self._waited.discard(full_id)
        if len(self._entries) >= self.max_entries:
            for old in list(self._entries)[: self.max_entries // 8]:
                del self._entries[old]
        self._entries[full_id] = _Entry(meta, time.monotonic() + ttl, full_id)

    async def warm(self, full_ids: Iterable[str]) -> None:
        """Look these containers up now (e.g. all running ones at start-up) and wait for the answers."""
        tasks = [t for cid in full_ids if (t := self.ensure_lookup(cid)) is not None]
        if tasks:
            await asyncio.wait(tasks)

    def forget(self, full_id: str) -> None:
        """Drop what is held in memory about a container (it was destroyed)."""
        self._entries.pop(full_id, None)

    def known(self, full_id: str) -> ContainerMeta | None:
        """The metadata currently held in memory for this id (None when unknown or pending)."""
        entry = self._entry(full_id, time.monotonic())
        return entry.meta if entry is not None else None

    # ---- events -------------------------------------------------------------------------------------------

    async def _await_lookups(self, matches: Iterable[CgroupMatch | None]) -> None:
        """Start lookups for these containers and wait at most ``wait_s`` for those no batch waited for yet."""
        waiting: list[asyncio.Task[None]] = []
        seen: set[str] = set()
        for match in matches:
            if match is not None and match.full_id not in seen:
                seen.add(match.full_id)
                task = self.ensure_lookup(match.full_id)
                if task is not None and match.full_id not in self._waited:
                    self._waited.add(match.full_id)
                    waiting.append(task)
        if waiting and self.wait_s > 0:
            with contextlib.suppress(Exception):
                await asyncio.wait(waiting, timeout=self.wait_s)

    async def enrich_frame(self, frame: event_pb2.EventBatchFrame) -> None:
        """Place each process of a batch's table in its container, by reference: the events stay serialized and
        untouched, and each container goes into the batch once. A batch without a process table (its events
        carry their processes inline) is enriched event by event."""
        if not frame.processes:
            await self._enrich_inline(frame)
            return
        matches: list[CgroupMatch | None] = []
        for data in frame.processes:
            if data in self._by_wire:
                matches.append(self._by_wire[data])
                continue
            try:
                proc = event_pb2.Process.FromString(data)
            except DecodeError:
                matches.append(None)  # the rule engine names and drops the events that refer to it
                continue
            known, match = self.resolve(proc)
            # Bounded in bytes too: a process's wire form carries its argv and environment, which it chooses.
            if known and len(data) <= WIRE_KEY_MAX_BYTES:
                if len(self._by_wire) >= self.max_entries or self._by_wire_bytes + len(data) > WIRE_CACHE_BYTES:
                    self._by_wire.clear()
                    self._by_wire_bytes = 0
                self._by_wire[data] = match
                self._by_wire_bytes += len(data)
            matches.append(match)
        await self._await_lookups(matches)
        now = time.monotonic()
        index: dict[str, int] = {}
        refs: list[int] = []
        wheres: dict[int, tuple[str, str, str]] = {}  # container ref -> (namespace, pod, container), for pods
        counts = dict.fromkeys(self._outcome, 0)
        for match in matches:
            if match is None:
                refs.append(0)
                counts["host"] += 1
                continue
            ref = index.get(match.full_id)
            if ref is None:
                entry = self._entry(match.full_id, now)
                if entry is None:
                    pending = event_pb2.Container(id=match.short_id, full_id=match.full_id, metadata_complete=False)
                    frame.containers.append(pending.SerializeToString())
                    frame.k8s.append(b"")
                    counts["pending"] += 1
                else:
                    frame.containers.append(entry.container_wire)
                    frame.k8s.append(entry.k8s_wire)
                    counts["container" if entry.meta is not None else "pending"] += 1
                ref = index[match.full_id] = len(frame.containers)
                meta = entry.meta if entry is not None else None
                if meta is not None and meta.k8s.pod_name:
                    wheres[ref] = (meta.k8s.ns_name, meta.k8s.pod_name, meta.container.name)
            refs.append(ref)
        if self.sessions is not None:
            apply_to_frame(self.sessions, frame, refs, wheres)
        frame.process_containers.extend(refs)
        for outcome, n in counts.items():
            if n:
                self._outcome[outcome].inc(n)

    async def _enrich_inline(self, frame: event_pb2.EventBatchFrame) -> None:
        events: list[event_pb2.Event] = []
        kept: list[bytes] = []
        for data in frame.events:
            try:
                events.append(event_pb2.Event.FromString(data))
            except DecodeError:
                kept.append(data)  # passed on as it came: the rule engine names and drops it
        await self.enrich(events)
        now = time.time_ns()
        for ev in events:
            ev.timing.enriched_ns = now
        del frame.events[:]
        frame.events.extend([ev.SerializeToString() for ev in events] + kept)

    async def enrich(self, events: Sequence[event_pb2.Event]) -> None:
        """Fill container/k8s on every syscall event of a batch, waiting at most ``wait_s`` for lookups."""
        resolved: list[tuple[event_pb2.Event, bool, CgroupMatch | None]] = []
        for ev in events:
            if ev.source and ev.source != SOURCE_SYSCALL:
                continue
            known, match = self.resolve(ev.proc)
            resolved.append((ev, known, match))
        await self._await_lookups(m for _, _, m in resolved)
        now = time.monotonic()
        entries: dict[str, _Entry | None] = {}
        counts = dict.fromkeys(self._outcome, 0)
        for ev, known, match in resolved:
            if match is None:
                ev.container.CopyFrom(_HOST_PB)
                counts["host" if known else "unknown"] += 1
                continue
            full_id = match.full_id
            if full_id in entries:
                entry = entries[full_id]
            else:
                entry = entries[full_id] = self._entry(full_id, now)
            if entry is None:
                ev.container.id = match.short_id
                ev.container.full_id = full_id
                ev.container.metadata_complete = False
                counts["pending"] += 1
                continue
            ev.container.CopyFrom(entry.container)
            if entry.k8s is not None:
                ev.k8s.CopyFrom(entry.k8s)
            counts["container" if entry.meta is not None else "pending"] += 1
        for outcome, n in counts.items():
            if n:
                self._outcome[outcome].inc(n)
        if self.sessions is not None:
            self.sessions.observe(events)

    async def close(self) -> None:
        """Cancel lookups still running."""
        for task in list(self._pending.values()):
            task.cancel()
        for task in list(self._pending.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
