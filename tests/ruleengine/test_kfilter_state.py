# SPDX-License-Identifier: Apache-2.0
"""Filtering does not corrupt state: a reverse shell's shape (socket, connect, then dup2 of the socket onto stdin)
alerts on the dup2 whether the kernel dropped the socket call or the connect or not.

Two pipelines decode the same generated records: one gets every record, the other only those the kernel filter
(its Python mirror) passes, with the kernel's stale-fd marks for the dropped ones and a /proc that shows the socket
as the kernel would (``/proc/PID/fd/3`` and a row of ``/proc/PID/net``). Every alert the dup2 raises in the first
must be raised in the second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import layout
from collector.decode import Decoder, Identity
from collector.proctable import ProcessTable
from ruleengine.fields import EventContext
from ruleengine.kfilter_eval import ProbeView, passes
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc
from tests.ruleengine import test_kfilter
from tests.ruleengine.test_kfilter import RULE_SETS, _table, loaded
from tests.ruleengine.test_kfilter_types import sockaddr

FD, INODE, LOCAL_PORT = 3, 777, 40000
# Falco's "Redirect STDOUT/STDIN to Network Connection in Container" without the container check (the test's
# processes are on the host), next to the stable rules, so the dup2 has something to alert on.
HOST_REDIRECT = Path(__file__).with_name("kfilter_host_redirect.yaml")
SETS = {**RULE_SETS, "falco+host-redirect": (RULE_SETS["falco_rules.yaml"][0], str(HOST_REDIRECT))}
Case = tuple[str, int, int, int, int, str, int]


@st.composite
def shells(draw: st.DrawFn, words: tuple[str, ...]) -> Case:
    names = [w for w in words if 0 < len(w.encode()) <= 15] or ["bash"]
    comm = draw(st.one_of(st.sampled_from(names), st.sampled_from(["bash", "python3", "nc", "perl"])))
    domain = draw(st.sampled_from([2, 10]))
    sock_type = draw(st.sampled_from([1, 2]))
    family = draw(st.sampled_from([domain, domain, 1, 0]))
    port = draw(st.sampled_from([22, 53, 443, 4444, 8080]))
    ip = draw(st.sampled_from(["8.8.8.8", "127.0.0.1", "10.1.2.3"]))
    res = draw(st.sampled_from([0, 0, -115, -111]))
    return comm, domain, sock_type, family, port, ip, res


def _proc_view(table: ProcessTable, case: Case) -> None:
    """/proc/100 as the kernel would show it at the dup2: fd 3 is the socket, connected when the connect was."""
    _comm, domain, sock_type, family, port, ip, res = case
    root = Path(table.proc_root) / "100"
    (root / "fd").mkdir(parents=True, exist_ok=True)
    (root / "net").mkdir(exist_ok=True)
    os.symlink(f"socket:[{INODE}]", root / "fd" / str(FD))
    v6 = domain == 10
    connected = family == domain and (res == 0 or (res == -115 and sock_type == 1))
    packed = sockaddr(10, ip, port, None)[8:24] if v6 else sockaddr(2, ip, port, None)[4:8]

    def hexaddr(raw: bytes, p: int) -> str:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        return f"{words.hex().upper()}:{p:04X}"

    local = hexaddr(bytes(16 if v6 else 4), LOCAL_PORT)
    remote = hexaddr(packed, port) if connected else hexaddr(bytes(16 if v6 else 4), 0)
    state = "01" if connected or sock_type == 2 else "07"
    row = f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000 0 0 {INODE} 1\n"
    name = ("tcp" if sock_type == 1 else "udp") + ("6" if v6 else "")
    for n in ("tcp", "tcp6", "udp", "udp6"):
        (root / "net" / n).write_text("  sl  local_address rem_address   st ...\n" + (row if n == name else ""))


def _alerts_on_dup2(name: str, every_rule: bool, case: Case, filtered: bool) -> list[str]:
    engine, spec, _words = loaded(name, every_rule)
    comm, domain, sock_type, family, port, ip, res = case
    table = _table()
    add_proc(table, 1, 0, "systemd")
    add_proc(table, 100, 1, comm)
    _proc_view(table, case)
    decoder = Decoder(table, Identity("n", "b", "p"))
    marks: dict[tuple[int, int], int] = {}
    table.stale_fd = (lambda pid, fd: marks.get((pid, fd), 0)) if filtered else None
    addr = sockaddr(family, ip, port, None)
    sport = port if family in (2, 10) else None
    steps = [
        (
            rec.socket_record(100, FD, domain, sock_type, 0, comm=comm),
            ProbeView("socket", b"", comm.encode(), 0, FD, family=domain),
        ),
        (
            rec.sock_record(layout.MSG_CONNECT, 100, FD, addr, res=res, comm=comm),
            ProbeView("connect", b"", comm.encode(), 0, res, family=family, sport=sport),
        ),
    ]
    ts = rec.BOOT_NS
    for raw, view in steps:
        ts += 1000
        if filtered and not passes(spec, view):
            marks[(100, FD)] = ts  # kf_mark_stale: the socket's fd, or the connect's
            continue
        assert decoder.decode(ts.to_bytes(8, "little") + raw[8:]) is not None
    dup = rec.generic_record(100, layout.SC_DUP2, (FD, 0), res=0, comm=comm)
    ev = decoder.decode((ts + 1000).to_bytes(8, "little") + dup[8:])
    assert ev is not None
    return sorted(m.name for m in engine.process(EventContext(ev)))


@pytest.mark.parametrize("every_rule", [False, True], ids=["enabled", "all-rules"])
@pytest.mark.parametrize("name", list(SETS))
def test_dup2_alerts_alike_with_the_filter(name: str, every_rule: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(test_kfilter.RULE_SETS, name, SETS[name])
    _engine, _spec, words = loaded(name, every_rule)
    seen: list[list[str]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(shells(words))
    def run(case: Case) -> None:
        full = _alerts_on_dup2(name, every_rule, case, filtered=False)
        kept = _alerts_on_dup2(name, every_rule, case, filtered=True)
        # No alert is lost. The filtered side may alert more: /proc describes the socket as it is, where the full
        # decoding takes the family of whatever address a connect named (AF_UNSPEC, say) as the socket's.
        assert set(full) <= set(kept), (case, full, kept)
        seen.append(full)

    run()
    if name == "falco+host-redirect" and not every_rule:  # (an untagged rule is off when tags select rules)
        assert any(seen), "no case alerted: the comparison is void"
