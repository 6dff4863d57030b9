# SPDX-License-Identifier: Apache-2.0
"""Hostile inputs for any port: garbage, truncated and oversized messages, valid protobuf with absurd values,
and connections that open and then say nothing (idle) or stop half-way (half-open). Deterministic (seeded)."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator

import grpc

from lanner.v1 import alert_pb2, event_pb2, services_pb2
from lanner.wire import event_batch_wire

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def garbage(rng: random.Random, n: int = 40) -> list[bytes]:
    """Random bytes of many lengths, plus a few classic shapes (all 0xff, a varint that never ends...)."""
    out = [b"", b"\x00", b"\xff" * 64, b"\x80" * 20, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\xff\xff\xff\xff\x07"]
    out += [rng.randbytes(rng.choice((1, 7, 64, 1000, 70_000))) for _ in range(n)]
    return out


def absurd_event(rng: random.Random) -> event_pb2.Event:
    """A well-formed Event whose values no kernel would produce."""
    ev = event_pb2.Event(type=rng.choice(["openat", "execve", "x" * 10_000, "", "\u2028"]), source="syscall")
    ev.id.seq, ev.id.node, ev.id.producer_id = UINT64_MAX, "n" * 5000, ""
    ev.timing.event_ns = rng.choice([INT64_MAX, -INT64_MAX, 0, -1])
    ev.res, ev.cpu = -INT64_MAX, 2**32 - 1
    p = ev.proc
    p.pid, p.tid, p.ppid, p.vpid = -INT64_MAX, INT64_MAX, -1, 0
    p.comm, p.exe, p.exepath, p.cwd = b"\xff" * 300, b"\x00" * 10, rng.randbytes(5000), b""
    p.args.extend([b"", b"\xff\xfe", b"a" * 100_000])
    p.env.extend([b"=", b"\x00=\x00"])
    p.uid, p.gid, p.loginuid, p.cap_effective = 2**32 - 1, 2**32 - 1, -INT64_MAX, UINT64_MAX
    p.cgroups.extend([b"0::/" + b"\xff" * 300, b"garbage"])
    ev.ancestors.extend([event_pb2.Process(pid=i, comm=b"\xff") for i in range(200)])
    ev.fd.num, ev.fd.type, ev.fd.path = INT64_MAX, 9999, rng.randbytes(8000)  # type: ignore[assignment]
    ev.fd.client_ip, ev.fd.server_ip, ev.fd.client_port = b"\x01" * 7, b"", 2**32 - 1
    ev.fd.l4proto = 12345  # type: ignore[assignment]
    ev.args.add(name="flags", uint_value=UINT64_MAX)
    ev.args.add(name="", str_value=b"\xff")
    ev.args.add(name="data", bytes_value=rng.randbytes(3000))
    ev.container.id, ev.container.labels["\u2028"] = "c" * 300, "v" * 1000
    ev.audit_json = "{" * 5000
    return ev


def absurd_batches(rng: random.Random) -> list[bytes]:
    """EventBatch bytes: absurd events, truncated batches, batches with a malformed event in the middle."""
    good = event_pb2.Event(type="openat", source="syscall").SerializeToString()
    absurd = [absurd_event(rng).SerializeToString() for _ in range(3)]
    whole = event_batch_wire(UINT64_MAX, [good, *absurd, good], UINT64_MAX)
    out = [whole, event_batch_wire(0, [], 0), event_batch_wire(1, [b"\xff\xff", good, b"\x22\x01\xff"], 0)]
    out += [whole[: rng.randrange(1, len(whole))] for _ in range(10)]
    out.append(event_batch_wire(1, [good] * 50_000, 0))  # a huge batch of tiny events: capped, not accepted whole
    return out


def absurd_alert_batches(rng: random.Random) -> list[bytes]:
    """AlertBatch bytes: out-of-range priorities, empty rules, huge ids, truncations."""
    batch = alert_pb2.AlertBatch(batch_seq=UINT64_MAX)
    batch.alerts.add(rule="", priority=99, alert_id="x" * 10_000)  # type: ignore[arg-type]
    batch.alerts.add(rule="r" * 100_000, priority=-5, source="\u2028", output="\x1b[2J")  # type: ignore[arg-type]
    data = batch.SerializeToString()
    return [data, *(data[: rng.randrange(1, len(data))] for _ in range(5))]


def absurd_subscribe_requests() -> list[bytes]:
    return [
        services_pb2.SubscribeRequest(min_priority=99).SerializeToString(),  # type: ignore[arg-type]
        services_pb2.SubscribeRequest(subscriber_name="\u2028" * 100_000, rules=["r"] * 10_000).SerializeToString(),
    ]


def _identity(data: bytes) -> bytes:
    return data


async def push_raw(target: str, method: str, messages: list[bytes], timeout: float = 60.0) -> list[str]:
    """Send each message on its own stream (so an abort costs only that one); the status or reply of each."""
    outcomes: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stream = channel.stream_stream(method, request_serializer=_identity, response_deserializer=_identity)
        for msg in messages:
            call = stream()
            try:
                await call.write(msg)
                await call.done_writing()
                async for _ in call:
                    pass
                outcomes.append("OK")
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
            except grpc.aio.UsageError:
                outcomes.append("closed")
            finally:
                call.cancel()
    return outcomes


async def unary_raw(target: str, method: str, messages: list[bytes], stream_reply: bool = False) -> list[str]:
    outcomes: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        for msg in messages:
            try:
                if stream_reply:
                    call = channel.unary_stream(method, request_serializer=_identity, response_deserializer=_identity)(
                        msg, timeout=2.0
                    )
                    async for _ in call:
                        pass
                else:
                    await channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)(
                        msg, timeout=10.0
                    )
                outcomes.append("OK")
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
    return outcomes


@contextlib.contextmanager
def half_open_sockets(port: int, http2: bool) -> Iterator[list[socket.socket]]:
    """Connections that stop part-way and stay open: a partial preface or request line, garbage then a half
    close, and a bare connect. Closed on exit."""
    openers = [
        HTTP2_PREFACE[:10] if http2 else b"GET /metrics HTTP/1.1\r\nHost: x",
        HTTP2_PREFACE if http2 else b"GET /metrics HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",  # the start of a TLS ClientHello
        b"",
    ]
    socks: list[socket.socket] = []
    try:
        for opener in openers * 5:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if opener:
                s.sendall(opener)
            socks.append(s)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"\xff" * 1000)
        s.shutdown(socket.SHUT_WR)
        socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def http_raw(port: int, request: bytes) -> bytes:
    """Send raw bytes to an HTTP port and return whatever comes back before the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(TimeoutError, OSError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


HTTP_GARBAGE = [
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 100_000 + b"\r\n\r\n",
    b"GET /metrics?name[]=" + b"%ff" * 1000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc",
    b"GET /metrics HTTP/9.9\r\n\r\n",
    b"\x00\xff" * 5000,
    HTTP2_PREFACE,
]


def free_port_pair(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False
