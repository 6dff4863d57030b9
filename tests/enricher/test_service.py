# SPDX-License-Identifier: Apache-2.0
"""The enricher as a real process: collector-side stream in, rule-engine-side stream out, real runtimes and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from enricher.cli import check_health
from lanner.v1 import event_pb2, services_pb2_grpc
from tests.enricher.enricher_testlib import (
    BOOKWORM,
    CRI_ENDPOINT,
    RedisProcess,
    container_pid,
    cri_pod,
    docker_rm,
    docker_run,
    free_port,
    host_cgroup_lines,
)

pytestmark = pytest.mark.integration


class RuleEngineSink(services_pb2_grpc.RuleEngineServiceServicer):
    """A real RuleEngineService endpoint that keeps what it receives (the test's view of the next stage)."""

    def __init__(self) -> None:
        self.events: list[event_pb2.Event] = []
        self.arrived = asyncio.Event()

    async def PushEvents(
        self, request_iterator: AsyncIterator[event_pb2.EventBatch], context: object
    ) -> AsyncIterator[event_pb2.BatchAck]:
        async for batch in request_iterator:
            self.events.extend(batch.events)
            self.arrived.set()
            yield event_pb2.BatchAck(batch_seq=batch.batch_seq, accepted=len(batch.events))

    async def wait_for(self, n: int, timeout: float = 15.0) -> list[event_pb2.Event]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < n:
            self.arrived.clear()
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"only {len(self.events)} of {n} events reached the rule engine"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return self.events


@contextlib.contextmanager
def enricher_process(port: int, ruleengine: str, redis_url: str, log_path: str) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    env.update(
        LANNER_ENRICHER__BIND=f"127.0.0.1:{port}",
        LANNER_ENRICHER__METRICS_BIND="",
        LANNER_ENRICHER__RULEENGINE_TARGET=ruleengine,
        LANNER_ENRICHER__REDIS_URL=redis_url,
        LANNER_ENRICHER__WAIT_MS="500",
        LANNER_ENRICHER__CRI_SOCKETS=f"[{CRI_ENDPOINT}]",
    )
    env.pop("LANNER_CONFIG", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "enricher"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not check_health(f"127.0.0.1:{port}", "lanner.v1.EnricherService", 0.5)[0]:
            assert proc.poll() is None, Path(log_path).read_text()
            assert time.monotonic() < deadline, "enricher did not become healthy: " + Path(log_path).read_text()
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_event(seq: int, pid: int, cgroups: list[str]) -> event_pb2.Event:
    ev = event_pb2.Event(type="execve", source="syscall")
    ev.id.seq = seq
    ev.timing.event_ns = time.time_ns()
    ev.proc.pid = pid
    ev.proc.comm = b"bash"
    ev.proc.cgroups.extend(c.encode() for c in cgroups)
    return ev


async def push(target: str, batches: list[list[event_pb2.Event]]) -> list[event_pb2.BatchAck]:
    async with grpc.aio.insecure_channel(target) as channel:
        call = services_pb2_grpc.EnricherServiceStub(channel).PushEvents()
        acks = []
        for i, events in enumerate(batches, 1):
            await call.write(event_pb2.EventBatch(batch_seq=i, events=events))
            acks.append(await call.read())
        await call.done_writing()
        return acks


@pytest.mark.containers
async def test_enricher_process_end_to_end(
    tmp_path: object, redis_url: str, redis_server: RedisProcess, docker_ready: None, cri_ready: None
) -> None:
    sink = RuleEngineSink()
    server = grpc.aio.server()
    services_pb2_grpc.add_RuleEngineServiceServicer_to_server(sink, server)
    sink_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port = free_port()
    cid = docker_run("--name", f"lanner-svc-test-{port}", BOOKWORM, "sleep", "300")
    try:
        with (
            cri_pod(name="svc-pod", namespace="svc-ns") as pod,
            enricher_process(port, f"127.0.0.1:{sink_port}", redis_url, f"{tmp_path}/enricher.log"),
        ):
            docker_pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", cid], text=True))
            pod_pid = container_pid(pod.container_id)
            batch1 = [
                make_event(1, os.getpid(), host_cgroup_lines(os.getpid())),
                make_event(2, docker_pid, host_cgroup_lines(docker_pid)),
                make_event(3, pod_pid, host_cgroup_lines(pod_pid)),
            ]
            batch2 = [make_event(4, docker_pid, host_cgroup_lines(docker_pid))]
            acks = await push(f"127.0.0.1:{port}", [batch1, batch2])
            assert [(a.batch_seq, a.accepted) for a in acks] == [(1, 3), (2, 1)]
            events = await sink.wait_for(4)
            by_seq = {e.id.seq: e for e in events}
            assert [e.id.seq for e in events] == [1, 2, 3, 4]  # order kept

            host = by_seq[1]
            assert host.container.id == "host"
            docker_ev = by_seq[2]
            assert docker_ev.container.id == cid[:12]
            assert docker_ev.container.name == f"lanner-svc-test-{port}"
            assert docker_ev.container.image == BOOKWORM
            assert docker_ev.container.image_repository == "local/bookworm"
            assert docker_ev.container.metadata_complete
            pod_ev = by_seq[3]
            assert pod_ev.container.full_id == pod.container_id
            assert (pod_ev.k8s.pod_name, pod_ev.k8s.ns_name, pod_ev.k8s.pod_uid) == ("svc-pod", "svc-ns", pod.uid)
            for e in events:
                assert e.timing.enriched_ns >= e.timing.event_ns > 0

            # Metadata went through the Redis cache.
            client = redis_server.client()
            keys = {k.decode() for k in client.keys("lanner:container:*")}
            client.close()
            assert f"lanner:container:{cid}" in keys and f"lanner:container:{pod.container_id}" in keys
    finally:
        docker_rm(cid)
        await server.stop(0)


async def test_enricher_starts_with_dead_redis_and_no_ruleengine(tmp_path: object) -> None:
    """Redis down and rule engine away at start: the service comes up, says why, and acks what it takes."""
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    log_path = f"{tmp_path}/enricher.log"
    with enricher_process(port, f"127.0.0.1:{free_port()}", dead_redis, log_path):
        acks = await push(f"127.0.0.1:{port}", [[make_event(1, os.getpid(), host_cgroup_lines(os.getpid()))]])
        assert acks[0].accepted == 1
        deadline = asyncio.get_running_loop().time() + 60
        while "redis unavailable" not in Path(log_path).read_text():
            assert asyncio.get_running_loop().time() < deadline, "the enricher never said Redis was unavailable"
            await asyncio.sleep(0.05)
    log = Path(log_path).read_text()
    assert "Traceback" not in log


def test_healthcheck_cli_reports_down(capsys: pytest.CaptureFixture[str]) -> None:
    from lanner.cli import main

    port = free_port()
    rc = main(["healthcheck", "--target", f"127.0.0.1:{port}", "--timeout", "0.5"])
    assert rc == 1
    out = capsys.readouterr().out
    assert out.startswith(f"127.0.0.1:{port} (server): ") and ("UNAVAILABLE" in out or "DEADLINE_EXCEEDED" in out)
