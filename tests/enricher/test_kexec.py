# SPDX-License-Identifier: Apache-2.0
"""kubectl exec attribution: an audit ``pods/exec`` request joined with the process the runtime's exec path started
in that container, and its descendants. The live test runs a real CRI pod, execs into it through the runtime
(``ExecSync``, the runtime side of ``crictl exec``), collects the processes with the eBPF source, enriches them
from CRI and replays the API server's audit event for that request through the collector's audit webhook code."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from collector.decode import Identity
from collector.encode import EventEncoder
from collector.k8s_audit import AuditWebhook
from collector.source import KernelSource
from enricher.cri import detect_cri
from enricher.enrich import Enricher
from enricher.kexec import ExecSessions, parse_exec_request
from lanner.convert import BatchTables, event_from_pb, event_to_pb
from lanner.cri.v1 import cri_pb2 as pb
from lanner.cri.v1 import cri_pb2_grpc
from lanner.model import Event
from lanner.v1 import event_pb2
from lanner.wire import shared_batch_wire
from ruleengine.engine import EngineOptions, load_texts
from ruleengine.fields import EventContext
from tests.enricher.enricher_testlib import CRI_ENDPOINT, Pod, cri_pod
from tests.support.kernel_source import collect, drain, kernel_source

USER = "alice@example.com"
GROUPS = ["devs", "system:authenticated"]


def audit_item(pod: Pod, command: list[str], *, when_ns: int, code: int = 101, container: str = "app") -> dict:
    """A pods/exec audit event as the API server writes it (stage ResponseStarted, streaming upgrade 101)."""
    query = "&".join(
        [
            *(f"command={c.replace(' ', '%20').replace(';', '%3B')}" for c in command),
            f"container={container}",
            "stdin=true",
            "stdout=true",
            "tty=false",
        ]
    )
    ts = datetime.fromtimestamp(when_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": str(uuid.uuid4()),
        "stage": "ResponseStarted",
        "requestURI": f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/exec?{query}",
        "verb": "create",
        "user": {"username": USER, "groups": GROUPS},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.30.0",
        "objectRef": {
            "resource": "pods",
            "namespace": pod.namespace,
            "name": pod.name,
            "apiVersion": "v1",
            "subresource": "exec",
        },
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": ts,
        "stageTimestamp": ts,
    }


def test_parse_an_exec_request() -> None:
    pod = Pod("s", "c", "web-1", "shop", "u", "app")
    req = parse_exec_request(json.dumps(audit_item(pod, ["sh", "-c", "id; true"], when_ns=5 * 10**9)), 7)
    assert req is not None
    assert (req.namespace, req.pod, req.container) == ("shop", "web-1", "app")
    assert req.command == ("sh", "-c", "id; true")
    assert (req.user, req.groups, req.ts_ns) == (USER, tuple(GROUPS), 7)
    refused = audit_item(pod, ["sh"], when_ns=0, code=403)
    assert parse_exec_request(json.dumps(refused), 0) is None
    logs = {**audit_item(pod, ["sh"], when_ns=0), "objectRef": {"resource": "pods", "subresource": "log"}}
    assert parse_exec_request(json.dumps(logs), 0) is None


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source()


def exec_in(container_id: str, cmd: list[str]) -> bytes:
    with grpc.insecure_channel(CRI_ENDPOINT) as ch:
        rt = cri_pb2_grpc.RuntimeServiceStub(ch)
        resp = rt.ExecSync(pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=20), timeout=60)
    assert resp.exit_code == 0, resp.stderr
    return resp.stdout


def enrich_all(batches: list[list[Event]], sessions: ExecSessions, frames: bool) -> list[Event]:
    """Through the enricher as the service runs it: batch frames with a shared process table (``frames``, what the
    collector sends), or events carrying their processes inline."""
    encoder = EventEncoder()

    async def run() -> list[Event]:
        providers = await detect_cri([CRI_ENDPOINT], timeout_s=30.0)
        enr = Enricher(providers[0], wait_s=60.0, lookup_timeout_s=60.0, sessions=sessions)
        out: list[Event] = []
        try:
            for seq, batch in enumerate(batches, 1):
                if frames:
                    wire = shared_batch_wire(seq, [encoder.encode_shared(e) for e in batch], 0)
                    frame = event_pb2.EventBatchFrame.FromString(wire)
                    await enr.enrich_frame(frame)
                    tables = BatchTables(frame)
                    out.extend(event_from_pb(event_pb2.Event.FromString(d), tables) for d in frame.events)
                else:
                    pbs = [event_to_pb(e) for e in batch]
                    await enr.enrich(pbs)
                    out.extend(event_from_pb(p) for p in pbs)
        finally:
            await enr.close()
            for p in providers:
                await p.close()
        return out

    return asyncio.run(run())


@pytest.mark.containers
@pytest.mark.bpf
@pytest.mark.parametrize(
    ("audit_first", "frames"),
    [(False, True), (True, True), (False, False)],
    ids=["audit-after-exec", "audit-before-exec", "inline-events"],
)
def test_kubectl_exec_names_the_user_on_the_session_and_its_children(
    cri_ready: None, source: KernelSource, audit_first: bool, frames: bool
) -> None:
    command = ["sh", "-c", "cat /etc/hostname; id -u"]
    webhook = AuditWebhook("127.0.0.1:0", Identity(node="node-a", boot_id="b", producer_id="p"))
    with cri_pod(name=f"kexec-{int(audit_first)}{int(frames)}", namespace="lanner-tests") as pod:
        drain(source)
        started = time.time_ns()
        exec_in(pod.container_id, command)

        def in_pod(e: Event) -> bool:
            return any(pod.container_id in line for line in e.proc.cgroups)

        def session_over(evs: list[Event]) -> bool:
            # The session's shell runs its last command (id) itself: its exit ends the session.
            shells = {e.proc.pid for e in evs if e.type == "execve" and e.proc.args == tuple(command[1:]) and in_pod(e)}
            return any(e.type == "procexit" and e.proc.pid in shells for e in evs)

        events = collect(source, session_over)
        # Only the pod's events: the rest of this busy host is not what is tested (and may carry undecodable bytes).
        events = [e for e in events if in_pod(e)]
        audit = webhook.to_event(audit_item(pod, command, when_ns=started), time.time_ns())
        if audit_first:
            batches = [[audit], events]
        else:
            # The audit event arrives just after the session's first process started: from then on, what the session
            # does (here: its children) is attributed.
            cut = next(i for i, e in enumerate(events) if e.type == "execve" and e.proc.exe == "sh") + 1
            batches = [events[:cut], [audit], events[cut:]]
        sessions = ExecSessions()
        enriched = enrich_all(batches, sessions, frames)
        assert sessions.attributed == 1
    in_pod = [e for e in enriched if e.k8s.pod_name == pod.name and e.source == "syscall"]
    sh = [e for e in in_pod if e.type == "execve" and e.proc.exe == "sh" and e.proc.args == tuple(command[1:])]
    # busybox sh runs its applets by re-executing /proc/self/exe with argv[0] = the applet (comm "exe").
    cat = [e for e in in_pod if e.type == "execve" and e.proc.exe == "cat"]
    assert sh and cat
    assert cat[0].k8s.exec_user == USER and cat[0].k8s.exec_groups == tuple(GROUPS)
    if audit_first:
        assert sh[0].k8s.exec_user == USER
    # The container's own process (sleep) was not exec'd by anyone.
    assert all(e.k8s.exec_user == "" for e in in_pod if e.proc.comm == "sleep")

    rules = load_texts(
        [
            (
                "kexec.yaml",
                """
- rule: File read in an exec session
  desc: d
  condition: evt.type=execve and container.id != host and proc.exe=cat
  output: exec'd by %k8s.exec.user (%k8s.exec.groups) pod=%k8s.pod.name cmd=%proc.cmdline parent=%proc.pname
  priority: WARNING
""",
            )
        ],
        EngineOptions(),
    )
    assert rules.engine is not None, [e.format() for e in rules.errors]
    ctx = EventContext(cat[0])
    outputs = [m.render(ctx, "node-a").output for m in rules.engine.process(ctx)]
    assert outputs and f"exec'd by {USER} (devs, system:authenticated) pod={pod.name}" in outputs[0], outputs


def test_an_exec_nobody_asked_for_stays_unattributed() -> None:
    """A request for another pod or command does not attribute the session."""
    sessions = ExecSessions()
    ev = event_pb2.Event(type="execve", source="syscall", res=0)
    ev.id.node = "n"
    ev.proc.pid, ev.proc.ppid, ev.proc.exe = 42, 41, b"sh"
    ev.timing.event_ns = 10**9
    ev.k8s.pod_name, ev.k8s.ns_name = "web-1", "shop"
    ev.container.name = "app"
    ev.ancestors.add(pid=41, comm=b"runc", exepath=b"/usr/sbin/runc")
    other = Pod("s", "c", "web-2", "shop", "u", "app")
    audit = event_pb2.Event(
        type="k8s_audit", source="k8s_audit", audit_json=json.dumps(audit_item(other, ["sh"], when_ns=10**9))
    )
    audit.timing.event_ns = 10**9
    sessions.observe([ev, audit])
    assert sessions.attributed == 0 and ev.k8s.exec_user == ""
