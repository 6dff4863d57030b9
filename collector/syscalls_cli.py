# SPDX-License-Identifier: Apache-2.0
"""``lanner collector syscalls [--rules FILE...]``: which syscalls the collector traces for a rule set, and why.

A CLI tool rather than a service, so it may load the rules itself (``ruleengine.kspec`` builds the same spec the
rule engine sends the collector).
"""

from __future__ import annotations

import argparse
import json
import sys

from collector.kfilter import LIFECYCLE, SLOTS, syscalls_of, wanted_syscalls


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# The syscalls each family of the probe program traces (bpf/lanner.bpf.c).
FAMILY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "process": _words("execve execveat clone clone3 fork vfork exit exit_group"),
    "file": _words(
        "open openat openat2 creat open_by_handle_at dup dup2 dup3 close pipe pipe2 eventfd eventfd2 fcntl userfaultfd"
    ),
    "network": _words("socket connect accept accept4 listen sendto sendmsg socketpair recvfrom recvmsg"),
    "fileop": _words(
        "unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir chdir fchdir chmod fchmod fchmodat symlink "
        "symlinkat link linkat mount umount"
    ),
    "privilege": _words(
        "setuid setgid setreuid setregid setresuid setresgid ptrace unshare setns bpf prctl init_module finit_module"
    ),
}


def cmd_syscalls(args: argparse.Namespace) -> int:
    """Print the traced syscalls and, for each, the rules or state that need it."""
    from collector.config import CollectorConfig, load_config
    from lanner.config import ConfigError, load_section
    from ruleengine.config import RuleEngineConfig, resolve_rules_paths
    from ruleengine.engine import EngineOptions, load_rules
    from ruleengine.kspec import build_spec
    from ruleengine.server import engine_options

    try:
        ccfg: CollectorConfig = load_config(args.config)
        rcfg = load_section("ruleengine", RuleEngineConfig, args.config)
    except ConfigError as exc:
        print(f"lanner collector syscalls: config error: {exc}", file=sys.stderr)
        return 2
    files = resolve_rules_paths(tuple(args.rules or ()) or rcfg.rules_files)
    options: EngineOptions = engine_options(rcfg)
    res = load_rules(files, options)
    if res.engine is None:
        for e in res.errors:
            print(e.format(), file=sys.stderr)
        return 1
    spec = build_spec(res.engine.enabled)
    compiled = [s for fam in ccfg.families for s in FAMILY_SYSCALLS.get(fam, ())]
    traced = wanted_syscalls(spec, compiled, ccfg.trace_all)
    why: dict[str, list[str]] = {}
    for t in spec.types:
        for sc in syscalls_of(t.event_type):
            why.setdefault(sc, []).extend(t.reasons)
    filters = {f.event_type: len(f.clauses) for f in spec.filters} if ccfg.kernel_filter else {}
    rows = []
    for sc in sorted(traced):
        reasons = why.get(sc) or (["state: process table"] if sc in LIFECYCLE else ["trace_all / every event type"])
        note = ""
        if sc in SLOTS:
            n = filters.get(sc)
            note = "not filtered" if n is None else ("all dropped in the kernel" if n == 0 else f"{n} kernel clauses")
        rows.append({"syscall": sc, "reasons": reasons, "kernel_filter": note})
    untraced = sorted(set(compiled) - traced)
    if args.json:
        print(json.dumps({"fingerprint": spec.fingerprint, "traced": rows, "not_traced": untraced}, indent=1))
        return 0
    print(f"# {len(traced)} of {len(compiled)} syscalls traced for {len(files)} rules file(s); spec {spec.fingerprint}")
    if spec.all_types:
        print("# some enabled rule matches every event type: everything is traced")
    for r in rows:
        filt = f"  [{r['kernel_filter']}]" if r["kernel_filter"] else ""
        print(f"{r['syscall']:<18} {'; '.join(r['reasons'])}{filt}")
    if untraced:
        print(f"# not traced: {', '.join(untraced)}")
    return 0


def add_command(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lanner collector syscalls``."""
    s = csub.add_parser("syscalls", help="print the syscalls traced for the rules, and what needs each")
    s.add_argument(
        "--config", "-c", metavar="FILE", default=argparse.SUPPRESS, help="lanner YAML config (collector, ruleengine)"
    )
    s.add_argument("--rules", "-r", nargs="+", metavar="FILE", help="rules files or directories (default: config's)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(collector_func=cmd_syscalls)
