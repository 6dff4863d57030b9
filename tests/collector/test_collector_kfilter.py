# SPDX-License-Identifier: Apache-2.0
"""The kernel spec on the collector's side, without a kernel: map contents, attachment choice, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collector import layout
from collector.kfilter import LIFECYCLE, KernelFilterMaps, closure, wanted_syscalls
from collector.syscalls_cli import FAMILY_SYSCALLS
from lanner.v1 import kfilter_pb2
from ruleengine.engine import load_texts
from ruleengine.kspec import build_spec

ROOT = Path(__file__).resolve().parents[2]
RULES = """
- rule: shadow
  desc: d
  condition: evt.type in (open, openat) and fd.name in (/etc/shadow, /etc/gshadow) and proc.name != sshd
  output: "o %fd.name"
  priority: WARNING
- rule: keys
  desc: d
  condition: evt.type = openat and (fd.name startswith /root/.ssh/ or fd.name endswith .pem) and evt.rawres >= 0
  output: o
  priority: WARNING
- rule: ptrace
  desc: d
  condition: evt.type = ptrace and proc.name = gdb
  output: o
  priority: WARNING
"""


def _spec(text: str = RULES) -> kfilter_pb2.KernelSpec:
    res = load_texts([("r.yaml", text)])
    assert res.engine is not None, [e.format() for e in res.errors]
    return build_spec(res.engine.enabled)


def test_spec_names_types_rules_and_state() -> None:
    spec = _spec()
    reasons = {t.event_type: list(t.reasons) for t in spec.types}
    assert reasons["ptrace"] == ["rule: ptrace"]
    assert "rule: shadow" in reasons["open"] and "rule: keys" in reasons["openat"]
    assert reasons["execve"] == ["state: process table"] and "chdir" in reasons
    assert not spec.all_types and len(spec.fingerprint) == 16
    assert {f.event_type for f in spec.filters} >= {"open", "openat", "openat2", "creat", "connect", "unlink"}
    assert not {"chdir", "fchdir", "setuid", "dup2", "open_by_handle_at"} & {f.event_type for f in spec.filters}
    assert build_spec(load_texts([("r.yaml", RULES)]).engine.enabled).fingerprint == spec.fingerprint  # type: ignore[union-attr]


def test_maps_hold_keys_masks_and_prefix_closure() -> None:
    maps = KernelFilterMaps(_spec())
    assert set(maps.exact) == {b"/etc/shadow", b"/etc/gshadow"}
    assert set(maps.prefix) == {b"/root/.ssh/"} and set(maps.suffix) == {b"mep."}
    assert maps.comm == {b"sshd": maps.masks["comm"]}
    # open filtered; creat: no rule, every creat dropped; slots are the probe's syscall numbers
    assert maps.clauses[layout.SC_OPEN] and maps.clauses[layout.SC_CREAT] == []
    assert closure({b"/a": 1, b"/a/b": 2, b"/c": 4}) == {b"/a": 1, b"/a/b": 3, b"/c": 4}


def test_attachments_follow_the_spec() -> None:
    compiled = [s for f in FAMILY_SYSCALLS.values() for s in f]
    assert wanted_syscalls(None, compiled, False) == set(compiled)  # no spec yet: everything
    spec = _spec()
    wanted = wanted_syscalls(spec, compiled, False)
    assert "ptrace" in wanted and "openat" in wanted and wanted >= LIFECYCLE
    assert "setuid" not in wanted and "mkdir" not in wanted
    assert wanted_syscalls(spec, compiled, True) == set(compiled)  # trace_all (recording)


def test_cli_prints_each_syscall_and_why() -> None:
    rules = ROOT / "rules" / "lanner_rules.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "collector", "syscalls", "--rules", str(rules)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln and not ln.startswith("#")}
    assert "state: process table" in lines["execve"]
    assert "rule: Credential file read by untrusted program" in lines["openat"] and "kernel clauses" in lines["openat"]
    assert "# not traced:" in out
    js = json.loads(subprocess.run(
        [sys.executable, "-m", "lanner.cli", "collector", "syscalls", "--rules", str(rules), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout)  # fmt: skip
    assert {r["syscall"] for r in js["traced"]} >= {"execve", "openat", "clone"}


def test_probe_constants_match_python() -> None:
    """The C side of the filter and the two Python sides agree on sizes and atom numbers."""
    import re

    from collector import kfilter_maps as ck
    from ruleengine import kfilter as rk

    src = (ROOT / "bpf" / "lanner.bpf.c").read_text()
    defines = dict(re.findall(r"^#define (KF_\w+) (\d+)", src, re.M))
    assert int(defines["KF_PATH_KEY"]) == rk.PATH_KEY == ck.PATH_KEY
    assert int(defines["KF_SUFFIX_KEY"]) == rk.SUFFIX_KEY == ck.SUFFIX_KEY
    assert int(defines["KF_MAX_CLAUSES"]) == rk.MAX_CLAUSES == ck.KF_MAX_CLAUSES
    assert int(defines["KF_SLOTS"]) == ck.KF_SLOTS
    for name in ("ACC_WRITE", "ACC_READ", "FDNUM", "RES", "FAMILY"):
        assert int(defines[f"KF_{name}"]) == rk.AtomKind[name]
    assert [int(defines[f"KF_OP_{n}"]) for n in ("EQ", "NE", "LT", "LE", "GT", "GE")] == [
        ck.OPS[o] for o in ("=", "!=", "<", "<=", ">", ">=")
    ]
    assert (ck.PATH_KINDS, ck.COMM, ck.RAW_DOTDOT) == (
        {
            rk.AtomKind.PATH_EXACT: "exact",
            rk.AtomKind.PATH_PREFIX: "prefix",
            rk.AtomKind.PATH_SUFFIX: "suffix",
            rk.AtomKind.PATH_PMATCH: "pmatch",
        },
        rk.AtomKind.COMM,
        rk.AtomKind.RAW_DOTDOT,
    )
    assert (ck.FAMILY, ck.SPORT) == (rk.AtomKind.FAMILY, rk.AtomKind.SPORT)
    assert int(defines["KF_PATH_ARGS"]) == ck.KF_PATH_ARGS
    # Every filterable type has a probe slot, and every slot fits the probe's arrays.
    assert set(rk.FILTER_TYPES) <= set(ck.SLOTS) and max(ck.SLOTS.values()) < ck.KF_SLOTS


def test_maps_of_socket_and_file_operation_atoms() -> None:
    spec = _spec(
        RULES
        + """
- rule: out
  desc: d
  condition: evt.type = connect and fd.typechar = 4 and not fd.sport in (80, 443) and proc.name = nc
  output: o
  priority: WARNING
- rule: ln
  desc: d
  condition: evt.type = symlink and evt.arg.target in (/etc/shadow) and evt.arg.linkpath pmatch (/usr/bin)
  output: o
  priority: WARNING
"""
    )
    maps = KernelFilterMaps(spec)
    assert set(maps.sport) == {80, 443}
    fam = [n for n in maps.num if n[0] == 10]
    assert fam and fam[0][2] == (1 << 2) | (1 << 10)
    assert maps.exact[b"/etc/shadow"] & maps.path_masks[1]["exact"]  # the symlink's target: path argument 1
    assert maps.prefix[b"/usr/bin"] & maps.path_masks[2]["pmatch"]
    assert maps.clauses[layout.SC_CONNECT] and maps.clauses[layout.SC_SYMLINK]


def test_proc_net_names_a_socket_fd(tmp_path: Path) -> None:
    """The fd table's fallback for a socket whose creating call was dropped in the kernel."""
    from collector.procnet import socket_fd, socket_inode
    from lanner.model import FdType

    net = tmp_path / "7" / "net"
    net.mkdir(parents=True)
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (net / "tcp").write_text(
        head
        + "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 111 1\n"
        + "   1: 0100007F:1F90 0200007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 222 1\n"
        + "   2: 0100007F:D432 08080808:01BB 01 00000000:00000000 00:00000000 00000000 0 0 333 1\n"
    )
    (net / "unix").write_text("Num RefCount Protocol Flags Type St Inode Path\nffff: 2 0 0 1 1 444 /run/x.sock\n")
    assert socket_inode("socket:[333]") == 333 and socket_inode("pipe:[1]") is None
    listening = socket_fd(str(tmp_path), 7, 3, 111)
    assert listening is not None and listening.is_server and listening.server_port == 8080
    accepted = socket_fd(str(tmp_path), 7, 4, 222)
    assert accepted is not None and accepted.is_server and accepted.client_ip == bytes([127, 0, 0, 2])
    out = socket_fd(str(tmp_path), 7, 5, 333)
    assert out is not None and out.type == FdType.IPV4 and out.server_ip == bytes([8, 8, 8, 8])
    assert out.server_port == 443 and out.client_port == 0xD432 and out.is_server is False
    unix = socket_fd(str(tmp_path), 7, 6, 444)
    assert unix is not None and unix.type == FdType.UNIX and unix.path == "/run/x.sock"
    assert socket_fd(str(tmp_path), 7, 8, 999) is None
