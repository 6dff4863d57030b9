# SPDX-License-Identifier: Apache-2.0
"""The enrichment core: host vs container, pending metadata, bounded waiting, in-memory caching, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from enricher.enrich import Enricher
from enricher.meta import ContainerMeta, LookupFailed
from lanner.model import Container, K8s, Mount
from lanner.v1 import event_pb2

CID = "ab" * 32
POD_CID = "cd" * 32
UID = "e1ca31b6-b834-4f0a-9c35-2d1b3f4a5b6c"
META = ContainerMeta(
    Container(
        id=CID[:12],
        full_id=CID,
        type="docker",
        name="web",
        image="nginx:1.25",
        image_repository="nginx",
        image_tag="1.25",
        privileged=True,
        mounts=(Mount(source="/etc", dest="/host/etc", mode="ro", rw=False, propagation="rprivate"),),
        metadata_complete=True,
    )
)
POD_META = ContainerMeta(
    Container(id=POD_CID[:12], full_id=POD_CID, type="containerd", name="app", metadata_complete=True),
    K8s(pod_name="web-0", pod_uid=UID, ns_name="prod", pod_sandbox_id="ef" * 32),
)


class SlowProvider:
    """In-process provider with fixed answers and a configurable delay per lookup."""

    name = "slow"

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.calls: list[str] = []

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        self.calls.append(container_id)
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise LookupFailed("boom")
        return {CID: META, POD_CID: POD_META}.get(container_id)

    async def close(self) -> None:
        pass


def event(cgroups: list[str], pid: int = 100, cgroup_id: int = 0, source: str = "syscall") -> event_pb2.Event:
    ev = event_pb2.Event(type="execve", source=source)
    ev.proc.pid = pid
    ev.proc.cgroup_id = cgroup_id
    ev.proc.cgroups.extend(c.encode() for c in cgroups)
    return ev


async def test_host_process() -> None:
    enricher = Enricher(SlowProvider())
    ev = event(["0::/", "4:memory:/process_api/6c3c717ae7112154a2358e1669400e13"])
    await enricher.enrich([ev])
    c = ev.container
    assert (c.id, c.full_id, c.name, c.type) == ("host", "host", "host", "host")
    assert c.HasField("privileged") and c.privileged is False
    assert c.metadata_complete
    assert not ev.HasField("k8s")


async def test_full_metadata_when_lookup_is_fast() -> None:
    provider = SlowProvider()
    enricher = Enricher(provider, wait_s=0.5)
    ev = event([f"0::/docker/{CID}"])
    await enricher.enrich([ev])
    c = ev.container
    assert (c.id, c.full_id, c.name, c.image_repository, c.image_tag) == (CID[:12], CID, "web", "nginx", "1.25")
    assert c.privileged is True and c.metadata_complete
    assert [(m.source, m.dest, m.rw) for m in c.mounts] == [("/etc", "/host/etc", False)]
    assert not ev.HasField("k8s")
    # Later events are served from memory.
    ev2 = event([f"0::/docker/{CID}"])
    await enricher.enrich([ev2])
    assert ev2.container == c and provider.calls == [CID]


async def test_pod_metadata() -> None:
    enricher = Enricher(SlowProvider(), wait_s=0.5)
    ev = event([f"0::/kubepods/besteffort/pod{UID}/{POD_CID}"])
    await enricher.enrich([ev])
    assert (ev.k8s.pod_name, ev.k8s.ns_name, ev.k8s.pod_uid) == ("web-0", "prod", UID)
    assert ev.container.name == "app"


class HungProvider(SlowProvider):
    """A runtime that answers only when the test lets it (``release``): until then every lookup hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        self.calls.append(container_id)
        await self.answer.wait()
        return {CID: META, POD_CID: POD_META}.get(container_id)


async def finishes_without_waiting(aw: Coroutine[Any, Any, None]) -> bool:
    """True if ``aw`` completes within a few turns of the event loop, that is without waiting on any timer."""
    task = asyncio.ensure_future(aw)
    for _ in range(50):
        if task.done():
            break
        await asyncio.sleep(0)
    done = task.done()
    if not done:
        task.cancel()
    return done


async def test_hung_runtime_never_holds_a_batch_beyond_wait() -> None:
    provider = HungProvider()
    enricher = Enricher(provider, wait_s=0.05, lookup_timeout_s=3600)
    ev = event([f"0::/docker/{CID}"])
    # The runtime never answers while this batch is in flight: only the bounded wait can let it through.
    await asyncio.wait_for(enricher.enrich([ev]), timeout=60)
    # Falco's "id known, metadata pending": id and full id only.
    assert (ev.container.id, ev.container.full_id) == (CID[:12], CID)
    assert not ev.container.metadata_complete and ev.container.name == ""
    assert not ev.container.HasField("privileged")
    provider.answer.set()
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        ev2 = event([f"0::/docker/{CID}"])
        await enricher.enrich([ev2])
        if ev2.container.metadata_complete:
            break
        assert asyncio.get_running_loop().time() < deadline, "metadata never arrived after the runtime answered"
        await asyncio.sleep(0.01)
    assert ev2.container.name == "web"
    assert provider.calls == [CID]  # one lookup, shared by every event of that container
    await enricher.close()


async def test_hung_runtime_costs_one_wait_per_container_not_per_batch() -> None:
    provider = HungProvider()
    enricher = Enricher(provider, wait_s=0.2, lookup_timeout_s=3600)
    await asyncio.wait_for(enricher.enrich([event([f"0::/docker/{CID}"])]), timeout=60)
    assert provider.calls == [CID]
    # The container's lookup is still pending: later batches carry the bare id at once, with no timer.
    for _ in range(20):
        later = event([f"0::/docker/{CID}"])
        assert await finishes_without_waiting(enricher.enrich([later])), "a later batch waited for the runtime"
        assert later.container.full_id == CID and not later.container.metadata_complete
    assert provider.calls == [CID]
    provider.answer.set()
    await enricher.close()


async def test_lookup_timeout_and_failure_pass_bare_id() -> None:
    enricher = Enricher(SlowProvider(delay_s=1.0), wait_s=0.5, lookup_timeout_s=0.05)
    ev = event([f"0::/docker/{CID}"])
    await enricher.enrich([ev])
    assert ev.container.id == CID[:12] and not ev.container.metadata_complete

    failing = Enricher(SlowProvider(fail=True), wait_s=0.5)
    ev = event([f"0::/docker/{CID}"])
    await failing.enrich([ev])
    assert ev.container.full_id == CID and not ev.container.metadata_complete


async def test_no_runtime_pass_through() -> None:
    enricher = Enricher(None)
    ev_host, ev_ctr = event(["0::/"]), event([f"0::/docker/{CID}"])
    await enricher.enrich([ev_host, ev_ctr])
    assert ev_host.container.id == "host"
    assert ev_ctr.container.id == CID[:12] and not ev_ctr.container.metadata_complete


async def test_unknown_container_is_bare_id() -> None:
    other = "12" * 32
    enricher = Enricher(SlowProvider(), wait_s=0.5)
    ev = event([f"0::/docker/{other}"])
    await enricher.enrich([ev])
    assert ev.container.id == other[:12] and not ev.container.metadata_complete


async def test_fallback_by_cgroup_id_and_pid_when_cgroups_missing() -> None:
    enricher = Enricher(SlowProvider(), wait_s=0.5)
    await enricher.enrich([event([f"0::/docker/{CID}"], pid=7, cgroup_id=4242)])
    by_cgid = event([], pid=999, cgroup_id=4242)
    by_pid = event([], pid=7)
    nothing = event([], pid=8)
    await enricher.enrich([by_cgid, by_pid, nothing])
    assert by_cgid.container.name == "web"
    assert by_pid.container.name == "web"
    assert nothing.container.id == "host"


async def test_non_syscall_events_untouched() -> None:
    enricher = Enricher(SlowProvider())
    ev = event([f"0::/docker/{CID}"], source="k8s_audit")
    await enricher.enrich([ev])
    assert not ev.HasField("container")


async def test_mixed_batch_keeps_order_and_shares_lookups() -> None:
    provider = SlowProvider(delay_s=0.01)
    enricher = Enricher(provider, wait_s=0.5)
    evs = [event([f"0::/docker/{CID}"], pid=i) if i % 2 else event(["0::/"], pid=i) for i in range(50)]
    await enricher.enrich(evs)
    assert [e.proc.pid for e in evs] == list(range(50))
    assert all(e.container.name == ("web" if e.proc.pid % 2 else "host") for e in evs)
    assert provider.calls == [CID]
