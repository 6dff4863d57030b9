# SPDX-License-Identifier: Apache-2.0
"""``smtp``: mail each alert (plain text) through an SMTP server.

The subject is ``[Lanner] <Priority>: <rule> on <host>``; the body has the alert text, the facts and the output
fields as JSON. ``tls: starttls`` (default) upgrades port 587 connections, ``tls: implicit`` speaks TLS from the
start (port 465), ``tls: none`` is for a local relay. The TLS keys are the shared ones (``ca_cert``...).
Refusals the server gives with a 5xx code (unknown recipient, bad credentials) are permanent; 4xx codes and
connection errors are retried. Alert text never reaches a header unescaped: the subject has its control
characters escaped, so no alert can add a header or a recipient.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import ClassVar

from dispatcher.falco_format import json_default, text_line
from dispatcher.model import Alert
from dispatcher.outputs._chat import facts
from dispatcher.registry import OutputContext, PermanentError, register_output
from dispatcher.sanitize import clip
from dispatcher.tls import TlsSettings, ssl_context
from lanner.text import terminal_safe


@dataclass(frozen=True, slots=True)
class SmtpConfig(TlsSettings):
    """Settings of the smtp output, plus the shared TLS keys."""

    host: str = ""
    port: int = 587
    # "starttls", "implicit" or "none".
    tls: str = "starttls"
    username: str = ""
    password: str = ""
    from_addr: str = ""
    to: tuple[str, ...] = ()
    subject_prefix: str = "[Lanner]"
    # Seconds for the connection and each SMTP command (the driver's timeout_s bounds the whole attempt too).
    command_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        TlsSettings.__post_init__(self)
        if not self.host:
            raise ValueError("host: the SMTP server is required")
        if self.tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls: expected starttls, implicit or none, got {self.tls!r}")
        if "@" not in self.from_addr or not self.to or not all("@" in a for a in self.to):
            raise ValueError("from_addr and to: give a sender address and at least one recipient address")
        for addr in (self.from_addr, *self.to):
            if any(c in addr for c in "\r\n,;"):
                raise ValueError(f"to/from_addr: {addr!r} must be one plain address")


def build_email(alert: Alert, cfg: SmtpConfig, ctx: OutputContext) -> EmailMessage:
    """The message for an alert."""
    msg = EmailMessage()
    host = alert.hostname or ctx.hostname
    subject = f"{cfg.subject_prefix} {alert.priority.falco_name}: {alert.rule} on {host}".strip()
    msg["Subject"] = clip(terminal_safe(subject), 200)
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(alert.time_ns / 1e9 if alert.time_ns else None, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="lanner.local")
    lines = [terminal_safe(text_line(alert)), ""]
    lines += [f"{k}: {terminal_safe(v)}" for k, v in facts(alert, ctx, (), limit=6)]
    lines += ["", "Output fields:",
              json.dumps(dict(alert.output_fields), indent=2, sort_keys=True, default=json_default)]  # fmt: skip
    msg.set_content("\n".join(lines) + "\n")
    return msg


@register_output("smtp")
class SmtpOutput:
    """Sends one mail per alert (a new SMTP session each time: mail servers drop idle sessions)."""

    Config: ClassVar[type[SmtpConfig]] = SmtpConfig

    def __init__(self, config: SmtpConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._ssl: ssl.SSLContext | None = ssl_context(config) if config.tls != "none" else None

    def _send_sync(self, msg: EmailMessage) -> None:
        cfg = self.config
        try:
            if cfg.tls == "implicit":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.command_timeout_s,
                                                      context=self._ssl)  # fmt: skip
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.command_timeout_s)
            with smtp:
                if cfg.tls == "starttls":
                    smtp.starttls(context=self._ssl)
                if cfg.username:
                    smtp.login(cfg.username, cfg.password)
                smtp.send_message(msg, from_addr=cfg.from_addr, to_addrs=list(cfg.to))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentError(f"every recipient refused: {exc.recipients}") from None
            raise RuntimeError(f"recipients refused for now: {exc.recipients}") from None
        except smtplib.SMTPResponseException as exc:
            err = exc.smtp_error
            detail = f"SMTP {exc.smtp_code}: {(err.decode(errors='replace') if isinstance(err, bytes) else err)[:200]}"
            if exc.smtp_code >= 500:
                raise PermanentError(detail) from None
            raise RuntimeError(detail) from None

    async def send(self, alert: Alert) -> None:
        """Mail the alert (the blocking SMTP session runs in a worker thread)."""
        await asyncio.to_thread(self._send_sync, build_email(alert, self.config, self.ctx))

    async def close(self) -> None:
        """Nothing is held between alerts."""
