# SPDX-License-Identifier: Apache-2.0
"""syslog output: the pure message builder, then real UDP, TCP and Unix-socket receivers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
from pathlib import Path

import pytest
from dispatcher_testlib import self_signed

from dispatcher.model import Alert, Priority
from dispatcher.outputs.syslog import SyslogConfig, SyslogOutput, build_syslog_message
from dispatcher.registry import OutputContext

CTX = OutputContext(hostname="fallback-host")
ALERT = Alert(
    rule="Terminal shell",
    priority=Priority.WARNING,
    output="13:53:31.726060287: Warning A shell was spawned",
    time_ns=1718000011726060287,
    hostname="host1",
    tags=("shell",),
)


def test_rfc3164_message() -> None:
    msg = build_syslog_message(ALERT, SyslogConfig(), CTX).decode()
    # facility user (1) * 8 + warning (4) = 12
    assert re.fullmatch(
        rf"<12>Jun 10 \d\d:\d\d:\d\d lanner\[{os.getpid()}\]: 13:53:31\.726060287: Warning A shell was spawned", msg
    ), msg


def test_rfc5424_json_message() -> None:
    cfg = SyslogConfig(format="rfc5424", facility="local0", json_output=True, ident="lnr")
    msg = build_syslog_message(ALERT, cfg, CTX).decode()
    head, body = msg.split(" - - ", 1)
    assert head == f"<132>1 2024-06-10T06:13:31.726060Z host1 lnr {os.getpid()}"
    assert json.loads(body)["rule"] == "Terminal shell"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"facility": "nope"}, "facility"), ({"format": "x"}, "format"), ({"address": "http://x"}, "address")],
)
def test_bad_config(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyslogConfig(**kwargs)  # type: ignore[arg-type]


async def test_udp_receiver() -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Rx, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    out = SyslogOutput(SyslogConfig(address=f"udp://127.0.0.1:{port}"), CTX)
    try:
        await out.send(ALERT)
        data = await asyncio.wait_for(got.get(), 5)
        assert data.startswith(b"<12>") and data.endswith(b"Warning A shell was spawned")
    finally:
        await out.close()
        transport.close()


@pytest.mark.parametrize("framing", ["octet-counting", "newline"])
async def test_tcp_receiver(framing: str) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    out = SyslogOutput(SyslogConfig(address=f"tcp://127.0.0.1:{port}", framing=framing), CTX)
    try:
        await out.send(ALERT)
        data = await asyncio.wait_for(got.get(), 5)
        msg = build_syslog_message(ALERT, out.config, CTX)
        assert data == (f"{len(msg)} ".encode() + msg if framing == "octet-counting" else msg + b"\n")
    finally:
        await out.close()
        server.close()
        await server.wait_closed()


async def test_unix_socket_receiver_and_refused_destination(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    out = SyslogOutput(SyslogConfig(address=str(path)), CTX)
    # Nothing listens yet: the error reaches the driver, which retries.
    with pytest.raises(OSError):
        await out.send(ALERT)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)
    try:
        await out.send(ALERT)
        assert rx.recv(65536).startswith(b"<12>")
    finally:
        await out.close()
        rx.close()


async def test_tls_receiver(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    out = SyslogOutput(SyslogConfig(address=f"tls://127.0.0.1:{port}", ca_cert=str(cert), format="rfc5424"), CTX)
    try:
        await out.send(ALERT)
        data = await asyncio.wait_for(got.get(), 5)
        msg = build_syslog_message(ALERT, out.config, CTX)
        assert data == f"{len(msg)} ".encode() + msg
    finally:
        await out.close()
        server.close()
        await server.wait_closed()
    with pytest.raises(ValueError, match="client_cert and client_key"):
        SyslogConfig(address="tls://h", client_cert="c.pem")
