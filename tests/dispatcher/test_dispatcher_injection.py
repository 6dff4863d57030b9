# SPDX-License-Identifier: Apache-2.0
"""Output injection (issue 10 item 7): hostile alert text reaches every output as inert data.

A real dispatcher process delivers one hostile alert to stdout, text and JSON files, a shell program, syslog over
a Unix socket and over TCP with newline framing, and an HTTP receiver; each destination is then read as an
attacker would hope it is read (by lines, by a terminal, by a syslog parser, as headers).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from dispatcher_testlib import RedisProcess, free_port, lines, make_alert, push, wait_for, wait_listening

from dispatcher.sanitize import escape_json
from lanner.text import terminal_safe
from lanner.v1 import alert_pb2

pytestmark = pytest.mark.integration

# Clear the screen, set the terminal title, CR/LF then a forged syslog line, Unicode and C1 line breaks, a
# one-character CSI, DEL, NUL, and shell syntax. (Protobuf strings are valid UTF-8, so undecodable bytes reach the
# dispatcher already escaped; ``test_escapes`` covers them.)
HOSTILE = (
    "ok\x1b[2J\x1b]0;pwned\x07\r\n<13>Jan  1 00:00:00 host sshd[1]: forged root login\u2028U2028\u0085NEL"
    "\x9b31mC1\x00NUL\x7fDEL $(touch {marker}) `touch {marker}` ; touch {marker}"
)
FORBIDDEN = ("\x1b", "\r", "\n", "\u2028", "\u0085", "\x9b", "\x00", "\x07", "\x7f")


def test_escapes() -> None:
    assert terminal_safe("a\x1b[31mb\r\nc\u2028d\x85e\udcff\tf") == "a\\x1b[31mb\\r\\nc\\u2028d\\x85e\\xff\tf"
    assert terminal_safe("plain C:\\path ünïcode") == "plain C:\\path ünïcode"
    text = json.dumps({"k": "\u2028\x85\x7f\udcff"}, ensure_ascii=False)
    assert json.loads(escape_json(text)) == json.loads(text)
    assert escape_json(text) == '{"k": "\\u2028\\u0085\\u007f\\udcff"}'


def _assert_inert(line: str) -> None:
    for ch in FORBIDDEN:
        assert ch not in line, (ch, line)


class Receivers:
    """The network destinations: syslog over Unix datagrams and over TCP, and an HTTP endpoint."""

    def __init__(self, tmp: Path) -> None:
        self.unix_path = str(tmp / "syslog.sock")
        self.datagrams: list[bytes] = []
        self.tcp_bytes = bytearray()
        self.http: list[tuple[dict[str, str], bytes]] = []
        self.tcp_port = 0
        self.http_url = ""

    async def start(self, stack: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        got = self.datagrams

        class Dgram(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(data)

        transport, _ = await loop.create_datagram_endpoint(Dgram, local_addr=self.unix_path, family=1)
        stack.append(transport.close)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                self.tcp_bytes.extend(data)
            writer.close()

        server = await asyncio.start_server(on_tcp, "127.0.0.1", 0)
        self.tcp_port = server.sockets[0].getsockname()[1]
        stack.append(server.close)

        async def post(request: web.Request) -> web.Response:
            self.http.append((dict(request.headers), await request.read()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/", post)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.http_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
        stack.append(runner.cleanup)


@pytest.fixture
async def receivers(tmp_path: Path) -> AsyncIterator[Receivers]:
    r = Receivers(tmp_path)
    stack: list[Any] = []
    await r.start(stack)
    yield r
    for close in reversed(stack):
        res = close()
        if asyncio.iscoroutine(res):
            await res


async def test_hostile_alert_is_inert_everywhere(
    redis_proc: RedisProcess, redis_url: str, tmp_path: Path, receivers: Receivers
) -> None:
    marker = tmp_path / "pwned"
    hostile = HOSTILE.format(marker=marker)
    bind = f"127.0.0.1:{free_port()}"
    text_file, json_file, prog_file = tmp_path / "a.txt", tmp_path / "a.jsonl", tmp_path / "prog.txt"
    outputs = {
        "stdout": {"json_output": False},
        "file": {"path": str(text_file), "json_output": False},
        "file:json": {"path": str(json_file)},
        "program": {"program": f"cat >> {prog_file}"},
        "program:argv": {"args": ["/usr/bin/dd", f"of={prog_file}", "oflag=append", "conv=notrunc", "status=none"]},
        "syslog": {"address": receivers.unix_path},
        "syslog:tcp": {"address": f"tcp://127.0.0.1:{receivers.tcp_port}", "framing": "newline",
                       "format": "rfc5424"},
        "http": {"url": receivers.http_url},
    }  # fmt: skip
    config = tmp_path / "lanner.yaml"
    config.write_text(json.dumps({"dispatcher": {"bind": bind, "metrics_bind": "", "redis_url": redis_url,
                                                 "consumer": "inj", "outputs": outputs}}))  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lanner.cli", "dispatcher", "--config", str(config), stdout=asyncio.subprocess.PIPE
    )
    try:
        await wait_listening(bind)
        alert = make_alert(0, output=hostile, fields={"proc.cmdline": hostile, "fd.name": "/tmp/\x1b[2J"})
        alert.message = hostile
        alert.hostname = "evil host\n<13>forged"
        alert.alert_id = "id\r\nX-Injected: 1"
        await push(bind, [alert_pb2.AlertBatch(batch_seq=1, alerts=[alert])])
        assert proc.stdout is not None
        stdout_line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        await wait_for(lambda: len(lines(text_file)) and len(lines(json_file)) and len(lines(prog_file)) == 2,
                       timeout=20)  # fmt: skip
        await wait_for(lambda: receivers.datagrams and receivers.tcp_bytes.endswith(b"\n") and receivers.http,
                       timeout=20)  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)

    # Terminal and line readers: exactly one line each, no control character, the forged line is inside it.
    assert stdout_line.endswith("\n") and stdout_line.count("\n") == 1
    for line in [stdout_line.rstrip("\n"), *lines(text_file), *lines(prog_file)]:
        _assert_inert(line)
        assert "\\r\\n<13>Jan" in line and "\\x1b[2J" in line and "\\u2028" in line and "\\x7fDEL" in line
    assert len(lines(text_file)) == 1 and len(lines(prog_file)) == 2
    # JSON lines: still one line, and the value decodes back to exactly what the rule engine sent.
    [json_line] = json_file.read_text().splitlines()
    _assert_inert(json_line)
    decoded = json.loads(json_line)
    assert decoded["output"] == hostile and decoded["output_fields"]["fd.name"] == "/tmp/\x1b[2J"
    # Nothing in the alert ran: the shell never saw it.
    assert not marker.exists()

    # Syslog: one datagram, one TCP line, each starting with our own priority and a clean header.
    [dgram] = receivers.datagrams
    tcp_messages = bytes(receivers.tcp_bytes).split(b"\n")
    assert tcp_messages[-1] == b"" and len(tcp_messages) == 2
    for msg in (dgram, tcp_messages[0]):
        text = msg.decode()
        _assert_inert(text)
        # Our priority first; the forgery stays in the body behind an escaped CR LF.
        assert text.startswith("<13>") and "\\r\\n<13>Jan" in text
    assert tcp_messages[0].split(b" ")[2] == b"evil_host_<13>forged"  # RFC 5424 HOSTNAME: printable, no space

    # HTTP: the body is JSON; no header carries alert text.
    [(headers, body)] = receivers.http
    assert json.loads(body)["output"] == hostile
    assert "X-Injected" not in headers
    assert headers["webhook-id"].startswith("sha256-")
    for value in headers.values():
        assert "\r" not in value and "\n" not in value and "evil" not in value
