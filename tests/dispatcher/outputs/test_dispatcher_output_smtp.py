# SPDX-License-Identifier: Apache-2.0
"""smtp output: mails delivered to a real local SMTP server (aiosmtpd), refusals dead-lettered, no header injection."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dispatcher_testlib import RedisProcess, base_config, free_port, make_alert, push, running, wait_for
from outputs_testlib import SAMPLE

from dispatcher.outputs.smtp import SmtpConfig, build_email
from dispatcher.registry import OutputContext
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")


def test_message() -> None:
    cfg = SmtpConfig(host="mx", from_addr="lanner@example.com", to=("sec@example.com", "ops@example.com"))
    msg = build_email(SAMPLE, cfg, CTX)
    assert msg["Subject"] == "[Lanner] Error: Write below etc on node-1"
    assert msg["To"] == "sec@example.com, ops@example.com" and msg["Date"] == "Mon, 10 Jun 2024 06:13:31 +0000"
    text = msg.get_content()
    assert SAMPLE.output in text and '"fd.name": "/etc/passwd"' in text
    with pytest.raises(ValueError, match="to"):
        SmtpConfig(host="mx", from_addr="a@b", to=("x@y\r\nBcc: evil@z",))
    with pytest.raises(ValueError, match="tls"):
        SmtpConfig(host="mx", from_addr="a@b", to=("c@d",), tls="ssl")


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses one address with 550."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"lanner", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, authenticator=_auth, auth_require_tls=False)
    ctl.start()
    yield port, box
    ctl.stop()


@pytest.mark.integration
async def test_mailed_through_dispatcher(smtp_server: tuple[int, Mailbox], redis_url: str, bind: str,
                                         redis_proc: RedisProcess) -> None:  # fmt: skip
    port, box = smtp_server
    common = {"host": "127.0.0.1", "port": port, "tls": "none", "username": "lanner", "password": "s3cret",
              "from_addr": "lanner@example.com"}  # fmt: skip
    outputs = {"smtp": {**common, "to": ["sec@example.com"]}, "smtp:bad": {**common, "to": ["nobody@example.com"]}}
    cfg = base_config(redis_url, bind, outputs=outputs)
    r = redis_proc.client()
    injected = make_alert(1, rule="Injected\r\nBcc: evil@example.com")
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[make_alert(0), injected])])
        await wait_for(lambda: len(box.messages) == 2 and r.xlen(f"{cfg.stream}:dead") == 2, timeout=30)
    assert all(rcpts == ["sec@example.com"] for _, rcpts, _ in box.messages)
    mails = [email.message_from_bytes(raw, policy=email.policy.default) for _, _, raw in box.messages]
    assert mails[0]["Subject"] == "[Lanner] Notice: Terminal shell in container on host1"
    assert mails[1]["Subject"] == "[Lanner] Notice: Injected\\r\\nBcc: evil@example.com on host1"
    assert mails[1]["Bcc"] is None
    errors = [f[b"error"] for _, f in r.xrange(f"{cfg.stream}:dead")]
    assert all(b"every recipient refused" in e for e in errors)
    r.close()
