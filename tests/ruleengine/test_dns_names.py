# SPDX-License-Identifier: Apache-2.0
"""fd.*.name as Falco does it: the names rules compare with are resolved in the background, and an address has
every watched name that resolves to it. Uses the system resolver on names this machine knows (/etc/hosts)."""

from __future__ import annotations

import ipaddress
import time

from ruleengine import dnsnames
from ruleengine.fields import EventContext, resolve_field
from tests.ruleengine.helpers import ctx, load, rule_with


def _wait_for(names: dnsnames.DnsNames, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            name in names.names
            and names.rounds
            and any(name in names.names_for(ip) for ip in dnsnames.system_resolve(name))
        ):
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} never resolved")


def test_a_rule_comparing_a_server_name_matches_its_addresses() -> None:
    res = load(rule_with('evt.type=connect and fd.sip.name in (localhost, "lanner-never-resolves.invalid")'))
    assert res.engine is not None, [e.format() for e in res.errors]
    assert {"localhost", "lanner-never-resolves.invalid"} <= dnsnames.WATCHED.names
    _wait_for(dnsnames.WATCHED, "localhost")
    to_local = ctx(evt__type="connect", fd__sip="127.0.0.1", fd__sport=443, fd__cip="127.0.0.1", fd__cport=40000)
    elsewhere = ctx(evt__type="connect", fd__sip="192.0.2.7", fd__sport=443, fd__cip="10.0.0.2", fd__cport=40000)
    assert [m.name for m in res.engine.process(to_local)] == ["r"]
    assert list(res.engine.process(elsewhere)) == []
    sip_name = resolve_field("syscall", "fd.sip.name")
    assert "localhost" in (to_local.get(sip_name) or ())
    assert EventContext(elsewhere.event).get(sip_name) is None


def test_a_name_passed_with_the_event_comes_first() -> None:
    c = ctx(evt__type="connect", fd__sip="127.0.0.1", fd__sport=443, fd__sip__name="api.example")
    got = c.get(resolve_field("syscall", "fd.sip.name"))
    assert isinstance(got, tuple) and got[0] == "api.example"


def test_refresh_follows_changing_answers() -> None:
    answers: dict[str, set[dnsnames.IpAddr]] = {"svc.test": {ipaddress.ip_address("10.0.0.1")}}
    names = dnsnames.DnsNames(resolver=lambda n: answers.get(n, set()), refresh_s=3600)
    names.watch(["svc.test."])
    deadline = time.monotonic() + 30
    while not names.rounds and time.monotonic() < deadline:
        time.sleep(0.01)
    assert names.names_for(ipaddress.ip_address("10.0.0.1")) == ("svc.test",)
    answers["svc.test"] = {ipaddress.ip_address("10.0.0.2")}
    names.refresh()
    assert names.names_for(ipaddress.ip_address("10.0.0.1")) == ()
    assert names.names_for(ipaddress.ip_address("10.0.0.2")) == ("svc.test",)
