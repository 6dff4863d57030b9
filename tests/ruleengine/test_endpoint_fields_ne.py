# SPDX-License-Identifier: Apache-2.0
"""`fd.ip`, `fd.port` and `fd.net` test both socket endpoints: `=` holds when either matches, and `!=` (as in
libsinsp) only when neither does. Index-less ancestor fields keep "any ancestor satisfies the operator"."""

from __future__ import annotations

import pytest

from ruleengine.engine import EngineOptions, load_texts
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

RULES = "\n".join(
    f"- rule: {name}\n  desc: x\n  condition: evt.type = connect and {cond}\n  output: x\n  priority: info"
    for name, cond in [
        ("ip_eq", "fd.ip = 10.0.0.1"),
        ("ip_ne", "fd.ip != 10.0.0.1"),
        ("net_eq", "fd.net = 10.0.0.0/8"),
        ("net_ne", "fd.net != 10.0.0.0/8"),
        ("port_eq", "fd.port = 80"),
        ("port_ne", "fd.port != 80"),
        ("aname_ne", "proc.aname != bash"),
    ]
)
BASE = {
    "evt.type": "connect",
    "proc.name": "curl",
    "proc.aname[1]": "bash",
    "proc.aname[2]": "sshd",
    "fd.l4proto": "tcp",
    "fd.cport": 40000,
}


@pytest.mark.parametrize(
    ("cip", "sip", "sport", "expected"),
    [
        ("10.0.0.1", "10.0.0.2", 80, {"ip_eq", "net_eq", "port_eq", "aname_ne"}),
        ("10.0.0.1", "8.8.8.8", 443, {"ip_eq", "net_eq", "port_ne", "aname_ne"}),
        ("192.168.1.1", "8.8.8.8", 443, {"ip_ne", "net_ne", "port_ne", "aname_ne"}),
    ],
)
def test_both_endpoint_fields(cip: str, sip: str, sport: int, expected: set[str]) -> None:
    res = load_texts([("rules.yaml", RULES)], EngineOptions(rule_matching="all"))
    assert res.engine is not None, [e.format() for e in res.errors]
    event = event_from_fields(dict(BASE, **{"fd.cip": cip, "fd.sip": sip, "fd.sport": sport}))
    assert {m.name for m in res.engine.process(EventContext(event))} == expected
