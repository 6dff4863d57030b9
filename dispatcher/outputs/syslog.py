# SPDX-License-Identifier: Apache-2.0
"""``syslog``: each alert as one syslog message, severity taken from the Falco priority.

Falco logs through syslog(3), so by default this writes to the local ``/dev/log`` socket with facility
``user``. ``address`` may instead name a remote collector: ``udp://host:514``, ``tcp://host:514`` or
``tls://host:6514`` (RFC 5425; the TLS keys are those of the http output). Stream transports use RFC 6587
octet counting, or newlines with ``framing: newline``. ``format`` picks RFC 3164 (what syslog(3) sends
locally) or RFC 5424.

Alert text cannot forge a message: CR, LF, NUL and every other control character in the body are escaped
(``dispatcher.sanitize``), so a body holding ``\n<13>...`` stays inside one message under any framing, and the
header fields taken from the alert (host name) are reduced to the printable ASCII that RFC 5424 allows there.
A message longer than ``max_message_bytes`` is cut (at a character boundary) and ends with a marker, so an
oversized alert is delivered shortened instead of failing with EMSGSIZE for ever.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from dispatcher.falco_format import rfc3339_ns, safe_line
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output
from dispatcher.sanitize import utf8_prefix
from dispatcher.tls import TlsSettings, ssl_context

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SyslogConfig(TlsSettings):
    """Settings of the syslog output (the TLS keys apply to ``tls://`` addresses)."""

    # "/dev/log" (a local Unix datagram socket path), "udp://host:port", "tcp://host:port" or "tls://host:port".
    address: str = "/dev/log"
    facility: str = "user"
    # APP-NAME / tag of each message.
    ident: str = "lanner"
    # "rfc3164" or "rfc5424".
    format: str = "rfc3164"
    # TCP only: "octet-counting" (RFC 6587) or "newline".
    framing: str = "octet-counting"
    json_output: bool = False
    # Longest message sent, header included (rsyslog's default maxMessageSize is 8 KiB; RFC 5426 UDP: 65507).
    max_message_bytes: int = 8192

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not 480 <= self.max_message_bytes <= 65507:
            raise ValueError("max_message_bytes: must be between 480 (RFC 5424's minimum) and 65507 (a UDP datagram)")
        if self.facility not in FACILITIES:
            raise ValueError(f"facility: unknown {self.facility!r} (expected one of {', '.join(FACILITIES)})")
        if self.format not in ("rfc3164", "rfc5424"):
            raise ValueError(f"format: expected rfc3164 or rfc5424, got {self.format!r}")
        if self.framing not in ("octet-counting", "newline"):
            raise ValueError(f"framing: expected octet-counting or newline, got {self.framing!r}")
        parse_address(self.address)


def parse_address(address: str) -> tuple[str, str, int]:
    """Split an address into (scheme, host or path, port); raise ValueError if it is not usable."""
    if address.startswith("/"):
        return "unix", address, 0
    parts = urlsplit(address)
    if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname:
        raise ValueError(
            f"address: expected a socket path, udp://host:port, tcp://host:port or tls://host:port, got {address!r}"
        )
    return parts.scheme, parts.hostname, parts.port or (6514 if parts.scheme == "tls" else 514)


def build_syslog_message(alert: Alert, cfg: SyslogConfig, ctx: OutputContext, now_ns: int | None = None) -> bytes:
    """The syslog message for an alert (without TCP framing). Severity = Falco priority (same 0..7 scale)."""
    pri = FACILITIES[cfg.facility] * 8 + int(alert.priority)
    body = safe_line(alert, cfg.json_output, ctx.json, ctx.hostname)
    host = header_field(alert.hostname or ctx.hostname, 255)
    ident = header_field(cfg.ident, 48)
    pid = os.getpid()
    if cfg.format == "rfc5424":
        stamp = rfc3339_ns(alert.time_ns or (now_ns if now_ns is not None else time.time_ns()))
        # RFC 5424 allows at most microseconds in TIMESTAMP.
        stamp = stamp[:26] + "Z"
        head = f"<{pri}>1 {stamp} {host} {ident} {pid} - - "
    else:
        secs = (alert.time_ns or (now_ns if now_ns is not None else time.time_ns())) // 1_000_000_000
        tm = time.localtime(secs)
        stamp = time.strftime("%b ", tm) + f"{tm.tm_mday:2d}" + time.strftime(" %H:%M:%S", tm)
        head = f"<{pri}>{stamp} {ident}[{pid}]: "
    return fit(head.encode(), body.encode("utf-8", "backslashreplace"), cfg.max_message_bytes)


TRUNCATED = b"...[truncated]"


def fit(head: bytes, body: bytes, limit: int) -> bytes:
    """Header plus body, the body cut at a character boundary with a marker if the whole exceeds ``limit``."""
    if len(head) + len(body) <= limit:
        return head + body
    return head + utf8_prefix(body, max(0, limit - len(head) - len(TRUNCATED))) + TRUNCATED


def header_field(value: str, limit: int) -> str:
    """A syslog header field: printable ASCII without spaces (RFC 5424 PRINTUSASCII), or "-" when empty."""
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in value[:limit])
    return cleaned or "-"


@register_output("syslog")
class SyslogOutput:
    """Sends alerts to a syslog socket; a lost connection is re-established on the next attempt."""

    Config: ClassVar[type[SyslogConfig]] = SyslogConfig

    def __init__(self, config: SyslogConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._scheme, self._host, self._port = parse_address(config.address)
        # Built now so a bad CA or key file is a start-up error naming this output.
        self._ssl = ssl_context(config) if self._scheme == "tls" else None
        self._dgram: socket.socket | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, alert: Alert) -> None:
        """Send the alert's message; socket errors propagate so the driver retries."""
        msg = build_syslog_message(alert, self.config, self.ctx)
        if self._scheme in ("tcp", "tls"):
            await self._send_stream(msg)
            return
        if self._dgram is None:
            family = socket.AF_UNIX if self._scheme == "unix" else socket.AF_INET
            if self._scheme == "udp" and ":" in self._host:
                family = socket.AF_INET6
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._dgram = sock
        dest: str | tuple[str, int] = self._host if self._scheme == "unix" else (self._host, self._port)
        try:
            self._dgram.sendto(msg, dest)
        except OSError:
            self._dgram.close()
            self._dgram = None
            raise

    async def _send_stream(self, msg: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            _, self._writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        frame = msg + b"\n" if self.config.framing == "newline" else f"{len(msg)} ".encode() + msg
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except OSError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the socket or connection."""
        if self._dgram is not None:
            self._dgram.close()
            self._dgram = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
