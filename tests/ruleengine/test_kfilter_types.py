# SPDX-License-Identifier: Apache-2.0
"""The kernel filter of the socket calls and file operations never drops an event a rule would alert on.

The same differential check as ``test_kfilter.py`` (opens), over generated connect/accept/socket/send records and
file operations: each is built as the probe's raw record, decoded by the collector's real decoder (after an
optional earlier ``socket`` call on the same fd, so the fd table has something to say), and evaluated by the full
engine; the same event as the probe sees it goes through the filter evaluator that mirrors ``bpf/lanner.bpf.c``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import layout
from collector.decode import Decoder, Identity
from ruleengine.fields import EventContext
from ruleengine.kfilter import FILEOP_ARGS, NET_TYPES, AtomKind
from ruleengine.kfilter_eval import ProbeView, passes
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc
from tests.ruleengine.test_kfilter import RULE_SETS, _table, loaded

NET_SC = {
    "connect": layout.SC_CONNECT,
    "accept": layout.SC_ACCEPT,
    "accept4": layout.SC_ACCEPT4,
    "sendto": layout.SC_SENDTO,
    "sendmsg": layout.SC_SENDMSG,
}
NET_MSG = {"connect": layout.MSG_CONNECT, "accept": layout.MSG_ACCEPT, "accept4": layout.MSG_ACCEPT}
FILEOP_SC = {t: getattr(layout, "SC_" + t.upper()) for t in FILEOP_ARGS}
IPS = ["1.2.3.4", "127.0.0.1", "10.1.2.3", "192.168.0.9", "8.8.8.8", "0.0.0.0", "::1", "2001:db8::1", "::ffff:8.8.4.4"]
FD = 3


def sockaddr(family: int, ip: str, port: int, cut: int | None) -> bytes:
    """A struct sockaddr as a process passes it; ``cut`` truncates it (a short or partly unreadable address)."""
    fam = family.to_bytes(2, "little")
    if family == 2:
        raw = fam + port.to_bytes(2, "big") + ipaddress.ip_address(ip).packed[-4:] + bytes(8)
    elif family == 10:
        raw = fam + port.to_bytes(2, "big") + bytes(4) + ipaddress.IPv6Address(_v6(ip)).packed + bytes(4)
    elif family == 1:
        raw = fam + b"/run/x.sock\0"
    else:
        raw = fam + bytes(14)
    return raw if cut is None else raw[:cut]


def _v6(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return ip if addr.version == 6 else "::ffff:" + ip


NetCase = tuple[str, str, int, int, int, int, str, int, int | None, tuple[int, int] | None]


@st.composite
def net_events(draw: st.DrawFn, words: tuple[str, ...]) -> NetCase:
    names = [w for w in words if 0 < len(w.encode()) <= 15] or ["curl"]
    ports = [int(w) for w in words if w.isdigit() and int(w) < 65536] or [80]
    evt_type = draw(st.sampled_from(NET_TYPES))
    comm = draw(st.one_of(st.sampled_from(names), st.sampled_from(["curl", "bash", "nc", "python3"])))
    res = draw(st.sampled_from([-115, -111, -13, -2, 0, 0, 4, 7]))
    family = draw(st.sampled_from([0, 1, 2, 2, 10, 10, 16, 17]))
    port = draw(st.one_of(st.sampled_from(ports), st.integers(0, 65535)))
    ip = draw(st.sampled_from(IPS))
    cut = draw(st.sampled_from([None, None, None, 0, 1, 2, 6, 8, 20]))
    domain = draw(st.sampled_from([1, 2, 10, 16, 17]))
    sock_type = draw(st.sampled_from([1, 2, 3, 0o2000001]))
    # An earlier socket() on the fd (or none: the table knows nothing of it).
    earlier = draw(st.one_of(st.none(), st.tuples(st.sampled_from([1, 2, 10, 17]), st.sampled_from([1, 2, 3]))))
    return evt_type, comm, res, family, port, domain, ip, sock_type, cut, earlier


def _net_check(name: str, every_rule: bool, case: NetCase) -> bool:
    engine, spec, _words = loaded(name, every_rule)
    evt_type, comm, res, family, port, domain, ip, sock_type, cut, earlier = case
    table = _table()
    add_proc(table, 1, 0, "systemd")
    add_proc(table, 100, 1, comm, cwd="/", exepath=f"/usr/bin/{comm}")
    decoder = Decoder(table, Identity("n", "b", "p"))
    raw_marked = False
    if earlier is not None:
        assert decoder.decode(rec.socket_record(100, FD, earlier[0], earlier[1], 0, comm=comm)) is not None
        raw_marked = earlier[1] == 3  # the probe remembers raw sockets (kf_rawsk)
    addr = sockaddr(family, ip, port, cut)
    fam: int | None = None
    sport: int | None = None
    if evt_type == "socket":
        raw = rec.socket_record(100, res, domain, sock_type, 0, comm=comm)
        fam = domain
    else:
        msg = NET_MSG.get(evt_type, layout.MSG_SEND)
        raw = rec.sock_record(msg, 100, FD, addr, res=res, sc=NET_SC[evt_type], comm=comm)
        if len(addr) >= 2 and (evt_type.startswith("accept") or not raw_marked):
            fam = family
        if not evt_type.startswith("accept") and (
            (family == 2 and len(addr) >= 8) or (family == 10 and len(addr) >= 24)
        ):
            sport = port
    ev = decoder.decode(raw)
    assert ev is not None
    if passes(spec, ProbeView(evt_type, b"", comm.encode()[:15], 0, res, family=fam, sport=sport)):
        return True
    matches = [m.name for m in engine.process(EventContext(ev))]
    assert not matches, f"filter dropped {case} which alerts {matches}"
    return False


FileCase = tuple[str, str, str, str, int]


@st.composite
def file_events(draw: st.DrawFn, words: tuple[str, ...]) -> FileCase:
    paths = [w for w in words if "/" in w] or ["/etc/shadow"]
    names = [w for w in words if 0 < len(w.encode()) <= 15] or ["sh"]
    evt_type = draw(st.sampled_from(sorted(FILEOP_ARGS)))

    def path() -> str:
        base = draw(st.sampled_from(paths))
        tail = draw(st.sampled_from(["", "", "/", "x", "/x", "/../etc/shadow", "/./a", "//b"]))
        return draw(
            st.one_of(
                st.just(base + tail),
                st.just(base.lstrip("/") + tail),  # relative
                st.sampled_from(words or ["x"]),
                st.text(alphabet="/.ab", max_size=12),
                st.just("/" + "a" * 300),
            )
        )

    p1, p2 = path(), path()
    comm = draw(st.one_of(st.sampled_from(names), st.text(alphabet="abcdefgh-", min_size=1, max_size=15)))
    res = draw(st.sampled_from([-2, -13, -1, 0, 0]))
    return evt_type, p1, p2, comm, res


def _file_check(name: str, every_rule: bool, case: FileCase) -> bool:
    engine, spec, _words = loaded(name, every_rule)
    evt_type, p1, p2, comm, res = case
    nargs = len(FILEOP_ARGS[evt_type])
    p1 = p1 if nargs >= 1 else ""
    p2 = p2 if nargs >= 2 else ""
    table = _table()
    add_proc(table, 1, 0, "systemd")
    add_proc(table, 100, 1, comm, cwd="/tmp/")
    decoder = Decoder(table, Identity("n", "b", "p"))
    ev = decoder.decode(rec.fileop_record(100, FILEOP_SC[evt_type], p1, p2, res=res, comm=comm))
    assert ev is not None
    # The record holds each path as the probe read it (at most PATH_MAX bytes with the NUL); absent ones are empty.
    b1 = p1.encode()[: layout.PATH_MAX - 1] if p1 else None
    b2 = p2.encode()[: layout.PATH_MAX - 1] if p2 else None
    view = ProbeView(evt_type, b"", comm.encode()[:15], 0, res, path1=b1, path2=b2)
    if passes(spec, view):
        return True
    matches = [m.name for m in engine.process(EventContext(ev))]
    assert not matches, f"filter dropped {case} which alerts {matches}"
    return False


@pytest.mark.parametrize("every_rule", [False, True], ids=["enabled", "all-rules"])
@pytest.mark.parametrize("name", list(RULE_SETS))
def test_net_filter_never_drops_an_alert(name: str, every_rule: bool) -> None:
    _engine, _spec, words = loaded(name, every_rule)

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(net_events(words))
    def run(case: NetCase) -> None:
        _net_check(name, every_rule, case)

    run()


@pytest.mark.parametrize("every_rule", [False, True], ids=["enabled", "all-rules"])
@pytest.mark.parametrize("name", list(RULE_SETS))
def test_fileop_filter_never_drops_an_alert(name: str, every_rule: bool) -> None:
    _engine, _spec, words = loaded(name, every_rule)

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(file_events(words))
    def run(case: FileCase) -> None:
        _file_check(name, every_rule, case)

    run()


def test_ordinary_connects_and_file_operations_are_dropped() -> None:
    """With the stable rules, unix-socket connects, a client's sends to unlisted ports and a program's file
    housekeeping never leave the kernel, while a shell's connect out and a symlink over /etc/shadow do. (IP
    connects all pass: "Contact K8S API Server From Container" holds for any of them in a container, which the
    probe cannot tell.)"""
    _engine, spec, _ = loaded("falco+lanner", False)
    kinds = {a.kind for a in spec.atoms}
    assert {AtomKind.FAMILY, AtomKind.SPORT} <= kinds
    assert any(a.arg == 1 for a in spec.atoms)
    drop = [
        ("sendto", "curl", 10, 2, 5353, 2, "8.8.8.8", 2, None, (2, 2)),
        ("connect", "python3", -115, 1, 0, 1, "1.2.3.4", 1, None, None),
    ]
    for case in drop:
        assert not _net_check("falco+lanner", False, case), case
    assert _net_check("falco+lanner", False, ("connect", "bash", 0, 2, 4444, 2, "8.8.8.8", 1, None, (2, 1)))
    # connect is wanted, and reads the protocol socket() left in the fd table: socket() is never dropped then.
    assert "socket" not in spec.clauses
    _engine, k8s, _ = loaded("k8s_audit_rules.yaml", False)
    assert k8s.clauses["socket"] == ()  # no rule wants socket calls: all dropped
    assert not _file_check("falco+lanner", False, ("unlink", "/tmp/x", "", "apt", 0))
    assert not _file_check("falco+lanner", False, ("rename", "/tmp/a.tmp", "/tmp/a", "vim", 0))
    assert _file_check("falco+lanner", False, ("symlink", "/etc/shadow", "/tmp/s", "sh", 0))
