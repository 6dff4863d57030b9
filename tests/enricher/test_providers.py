# SPDX-License-Identifier: Apache-2.0
"""Metadata providers against the real things: Docker engine, containerd's CRI, redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

import pytest

from enricher.cache import KEY_PREFIX, RedisCachedProvider
from enricher.cgroups import match_cgroup_lines
from enricher.cri import CriProvider, detect_cri
from enricher.docker import DockerProvider
from enricher.meta import ContainerMeta, LookupFailed
from enricher.runtimes import RuntimeChain, connect_runtimes, discover_new
from lanner.model import Container
from tests.enricher.enricher_testlib import (
    BOOKWORM,
    CRI_ENDPOINT,
    RedisProcess,
    container_pid,
    cri_pod,
    docker_rm,
    docker_run,
    host_cgroup_lines,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bookworm_container(docker_ready: None) -> str:
    name = f"lanner-enricher-test-{id(object()):x}"
    cid = docker_run("--name", name, "--label", "team=lanner", "-v", "/tmp:/hosttmp:ro", BOOKWORM, "sleep", "300")
    yield cid
    docker_rm(cid)


@pytest.mark.containers
async def test_docker_lookup_real_container(bookworm_container: str) -> None:
    cid = bookworm_container
    pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", cid], text=True))
    match = match_cgroup_lines(host_cgroup_lines(pid))
    assert match is not None and match.full_id == cid and match.runtime_hint == "docker"

    provider = DockerProvider()
    try:
        meta = await provider.lookup(cid)
        assert meta is not None
        c = meta.container
        assert c.id == cid[:12] and c.full_id == cid
        assert c.type == "docker"
        assert c.name.startswith("lanner-enricher-test-")
        assert c.image == BOOKWORM
        assert (c.image_repository, c.image_tag) == ("local/bookworm", "latest")
        assert c.image_id and not c.image_id.startswith("sha256:")
        assert c.privileged is False and c.host_network is False and c.host_pid is False
        assert c.labels["team"] == "lanner"
        assert any(m.source == "/tmp" and m.dest == "/hosttmp" and not m.rw for m in c.mounts)
        assert c.start_ns > 1_600_000_000 * 10**9
        assert c.ip.count(".") == 3
        assert c.metadata_complete
        assert meta.k8s.pod_name == ""
        assert await provider.lookup("0" * 64) is None
        assert cid in await provider.list_running()
    finally:
        await provider.close()


@pytest.mark.containers
async def test_docker_host_network_and_privilege_flags(docker_ready: None) -> None:
    cid = docker_run("--network", "host", "--pid", "host", "local/busybox:latest", "sleep", "60")
    provider = DockerProvider()
    try:
        meta = await provider.lookup(cid)
        assert meta is not None
        assert meta.container.host_network is True and meta.container.host_pid is True
        assert meta.container.ip == ""
    finally:
        await provider.close()
        docker_rm(cid)


async def test_docker_socket_missing_fails_loudly(tmp_path: object) -> None:
    provider = DockerProvider(f"{tmp_path}/nope.sock")
    assert not provider.available()
    with pytest.raises(LookupFailed, match="cannot reach"):
        await provider.lookup("0" * 64)
    await provider.close()


@pytest.mark.containers
async def test_cri_lookup_real_pod(cri_ready: None) -> None:
    with cri_pod(name="enricher-pod", namespace="lanner-ns") as pod:
        match = match_cgroup_lines(host_cgroup_lines(container_pid(pod.container_id)))
        assert match is not None and match.full_id == pod.container_id
        assert match.runtime_hint == "cri" and match.pod_uid == pod.uid

        providers = await detect_cri([CRI_ENDPOINT])
        assert len(providers) == 1
        provider = providers[0]
        try:
            assert provider.runtime_name == "containerd"
            meta = await provider.lookup(pod.container_id)
            assert meta is not None
            c, k = meta.container, meta.k8s
            assert c.full_id == pod.container_id and c.id == pod.container_id[:12]
            assert c.type == "containerd" and c.name == "app"
            assert (c.image_repository, c.image_tag) == ("docker.io/local/busybox", "latest")
            assert c.image_digest.startswith("sha256:")
            assert c.image_id and not c.image_id.startswith("sha256:")
            assert c.privileged is False and c.host_network is True
            assert c.labels["io.kubernetes.pod.name"] == "enricher-pod"
            assert (k.pod_name, k.ns_name, k.pod_uid) == ("enricher-pod", "lanner-ns", pod.uid)
            assert k.pod_sandbox_id == pod.sandbox_id
            assert k.pod_labels["app"] == "lanner-test"

            # The pause process's cgroup carries the sandbox id: it is looked up as the pod.
            sandbox_meta = await provider.lookup(pod.sandbox_id)
            assert sandbox_meta is not None and sandbox_meta.k8s.pod_uid == pod.uid

            assert await provider.lookup("0" * 64) is None
            assert pod.container_id in await provider.list_running()
        finally:
            await provider.close()


@pytest.mark.containers
async def test_docker_container_is_not_found_over_cri_but_chain_finds_it(
    bookworm_container: str, cri_ready: None
) -> None:
    chain = await connect_runtimes("/var/run/docker.sock", [CRI_ENDPOINT], timeout_s=2.0)
    try:
        assert [p.name for p in chain.providers] == ["docker", "cri:containerd"]
        cri = chain.providers[1]
        assert await cri.lookup(bookworm_container) is None  # Docker lives in containerd namespace "moby"
        meta = await chain.lookup(bookworm_container)
        assert meta is not None and meta.container.type == "docker"
    finally:
        await chain.close()


async def test_cri_rejects_non_unix_and_skips_dead_sockets(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="unix://"):
        CriProvider("tcp://127.0.0.1:1")
    dead = f"{tmp_path}/dead.sock"
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)  # a socket file nobody accepts on
    try:
        assert await detect_cri([f"unix://{dead}", "http://x", f"unix://{tmp_path}/missing.sock"], 0.5) == []
    finally:
        s.close()


class CountingProvider:
    """A real in-process provider with fixed answers; counts how often it is asked (to observe the cache)."""

    name = "counting"

    def __init__(self, answers: dict[str, ContainerMeta], fail: bool = False) -> None:
        self.answers = answers
        self.calls = 0
        self.fail = fail

    async def lookup(self, container_id: str) -> ContainerMeta | None:
        self.calls += 1
        if self.fail:
            raise LookupFailed("runtime down")
        return self.answers.get(container_id)

    async def close(self) -> None:
        pass


CID = "ab" * 32
META = ContainerMeta(Container(id=CID[:12], full_id=CID, type="docker", name="web", metadata_complete=True))


async def _until_healthy(cache: RedisCachedProvider, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cache.healthy:
        assert asyncio.get_running_loop().time() < deadline, "redis never became healthy"
        await asyncio.sleep(0.02)


async def test_redis_cache_hit_negative_and_ttl(redis_url: str, redis_server: RedisProcess) -> None:
    inner = CountingProvider({CID: META})
    cache = RedisCachedProvider(inner, redis_url, ttl_s=60, negative_ttl_s=0.3)
    task = asyncio.create_task(cache.connect_loop())
    try:
        await _until_healthy(cache)
        assert await cache.lookup(CID) == META
        assert await cache.lookup(CID) == META
        assert inner.calls == 1
        client = redis_server.client()
        ttl_ms = client.pttl(KEY_PREFIX + CID)
        assert 0 < ttl_ms <= 60_000

        other = "cd" * 32
        assert await cache.lookup(other) is None
        assert await cache.lookup(other) is None
        assert inner.calls == 2  # negative answer cached
        deadline = asyncio.get_running_loop().time() + 60
        while inner.calls == 2:  # until the negative TTL expires and the runtime is asked again
            assert asyncio.get_running_loop().time() < deadline, "the negative answer never expired"
            assert await cache.lookup(other) is None
            await asyncio.sleep(0.02)
        assert inner.calls == 3

        # A second cache on the same Redis (another enricher replica) is served without asking its runtime.
        inner2 = CountingProvider({})
        cache2 = RedisCachedProvider(inner2, redis_url)
        task2 = asyncio.create_task(cache2.connect_loop())
        await _until_healthy(cache2)
        assert await cache2.lookup(CID) == META and inner2.calls == 0
        task2.cancel()
        await cache2.close()
        client.close()
    finally:
        task.cancel()
        await cache.close()


async def test_redis_cache_does_not_cache_failures(redis_url: str) -> None:
    inner = CountingProvider({}, fail=True)
    cache = RedisCachedProvider(inner, redis_url)
    task = asyncio.create_task(cache.connect_loop())
    try:
        await _until_healthy(cache)
        for _ in range(2):
            with pytest.raises(LookupFailed):
                await cache.lookup(CID)
        assert inner.calls == 2
    finally:
        task.cancel()
        await cache.close()


async def test_dead_redis_at_start_serves_from_runtime_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisProcess()  # not started yet
    inner = CountingProvider({CID: META})
    cache = RedisCachedProvider(inner, server.url, retry_max_s=0.2)
    task = asyncio.create_task(cache.connect_loop())
    try:
        with caplog.at_level("WARNING"):
            deadline = asyncio.get_running_loop().time() + 60
            while not any("redis unavailable" in r.getMessage() for r in caplog.records):
                assert asyncio.get_running_loop().time() < deadline, "no 'redis unavailable' warning"
                await asyncio.sleep(0.02)
        assert not cache.healthy
        assert await cache.lookup(CID) == META  # served straight from the runtime
        assert await cache.lookup(CID) == META
        assert inner.calls == 2

        server.start()
        await _until_healthy(cache)
        await cache.lookup(CID)
        await cache.lookup(CID)
        assert inner.calls == 3  # cached again now

        server.stop()  # Redis dies while running: lookups keep working
        assert await cache.lookup(CID) == META
        assert not cache.healthy
    finally:
        task.cancel()
        await cache.close()
        server.stop()


async def test_chain_semantics() -> None:
    a = CountingProvider({}, fail=True)
    b = CountingProvider({CID: META})
    chain = RuntimeChain([a, b])
    assert await chain.lookup(CID) == META
    with pytest.raises(LookupFailed):
        await chain.lookup("ef" * 32)  # nobody knew it and one could not answer
    assert await RuntimeChain([CountingProvider({})]).lookup(CID) is None


@pytest.mark.containers
async def test_docker_events_start_and_destroy(docker_ready: None) -> None:
    provider = DockerProvider()
    seen: list[tuple[str, str]] = []
    got = asyncio.Event()

    async def on_event(action: str, full_id: str) -> None:
        seen.append((action, full_id))
        got.set()

    watcher = asyncio.create_task(provider.watch(on_event))
    try:
        await asyncio.sleep(0.3)  # let the events stream open
        cid = await asyncio.to_thread(docker_run, "local/busybox:latest", "sleep", "30")
        await asyncio.to_thread(docker_rm, cid)
        deadline = asyncio.get_running_loop().time() + 10
        while ("destroy", cid) not in seen:
            got.clear()
            assert asyncio.get_running_loop().time() < deadline, seen
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(got.wait(), 1)
        assert ("start", cid) in seen
        assert seen.index(("start", cid)) < seen.index(("destroy", cid))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await provider.close()


@pytest.mark.containers
async def test_runtimes_found_later_join_the_chain(docker_ready: None, cri_ready: None) -> None:
    chain = await connect_runtimes("", [], timeout_s=2.0)
    try:
        assert chain.providers == []
        assert await discover_new(chain, "/var/run/docker.sock", [CRI_ENDPOINT], 2.0) == 2
        assert [p.name for p in chain.providers] == ["docker", "cri:containerd"]
        assert await discover_new(chain, "/var/run/docker.sock", [CRI_ENDPOINT], 2.0) == 0
    finally:
        await chain.close()
