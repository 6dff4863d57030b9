# SPDX-License-Identifier: Apache-2.0
"""``lanner rules validate|list|test`` and ``lanner replay``."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ruleengine.engine import EngineOptions, LoadResult, load_rules
from ruleengine.priority import Priority

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


def default_rules() -> list[str]:
    """The project's rules: ``rules/*.yaml`` in sorted order."""
    if not DEFAULT_RULES_DIR.is_dir():
        return []
    return [str(p) for p in sorted(DEFAULT_RULES_DIR.glob("*.yaml"))]


def _expand(paths: Sequence[str] | None) -> list[str]:
    if not paths:
        return default_rules()
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(str(f) for f in sorted(Path(p).iterdir()) if f.suffix in (".yaml", ".yml"))
        else:
            out.append(p)
    return out


def _print_messages(res: LoadResult) -> None:
    for m in res.errors:
        print(m.format())
    for m in res.warnings:
        print(m.format())


def cmd_validate(args: argparse.Namespace) -> int:
    """Like ``falco -V``: load the files in order as one set; exit 1 on any error."""
    files = _expand(args.files)
    res = load_rules(files)
    _print_messages(res)
    for f in files:
        bad = any(m.location.file == f for m in res.errors)
        print(f"{f}: {'Invalid' if bad else 'Ok'}")
    print(f"{len(res.errors)} error(s), {len(res.warnings)} warning(s)")
    return 1 if res.errors else 0


def _options(args: argparse.Namespace) -> EngineOptions:
    if (getattr(args, "disable_rule", None) or getattr(args, "disable_tag", None)) and getattr(
        args, "enable_tag", None
    ):
        raise SystemExit("lanner: Error: You can not specify both disabled (-D/-T) and enabled (-t) rules")  # Falco's
    try:
        prio = Priority.parse(args.priority) if getattr(args, "priority", None) else Priority.DEBUG
    except ValueError as exc:
        raise SystemExit(f"lanner: {exc}") from None
    return EngineOptions(
        min_priority=prio,
        rule_matching=getattr(args, "rule_matching", "first") or "first",
        disabled_rules=tuple(getattr(args, "disable_rule", None) or ()),
        enabled_tags=tuple(getattr(args, "enable_tag", None) or ()),
        disabled_tags=tuple(getattr(args, "disable_tag", None) or ()),
    )


def cmd_list(args: argparse.Namespace) -> int:
    """List loaded rules: name, priority, source, enabled, tags."""
    res = load_rules(_expand(args.rules), _options(args))
    if res.engine is None:
        _print_messages(res)
        return 1
    enabled = {r.name for r in res.engine.enabled}
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "priority": r.priority.falco_name,
                        "source": r.source,
                        "enabled": r.name in enabled,
                        "tags": list(r.tags),
                        "evttypes": sorted(r.evttypes.names) if not r.evttypes.complement else "all",
                    }
                    for r in res.engine.rules
                ],
                indent=2,
            )
        )
        return 0
    for r in res.engine.rules:
        flag = "enabled " if r.name in enabled else "disabled"
        print(f"{flag}  {r.priority.falco_name:<13} {r.source:<9} {r.name}  [{', '.join(r.tags)}]")
    print(f"{len(res.engine.rules)} rule(s), {len(enabled)} enabled")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run rule test files; pytest-like report; non-zero exit on any failure."""
    from ruleengine.harness import Harness

    harness = Harness(_expand(args.rules))
    report = harness.run_files(args.files)
    for o in report.outcomes:
        status = "PASSED" if o.passed else "FAILED"
        print(f"{o.file}::{o.name} {status}")
    failures = [o for o in report.outcomes if not o.passed]
    if failures:
        print("\n=================================== FAILURES ===================================")
        for o in failures:
            print(f"___ {o.file}:{o.line}: {o.name} ___")
            for d in o.details:
                print(d)
    print(f"\n{report.summary()}")
    return 1 if failures or not report.outcomes else 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Evaluate recorded events (any format ``ruleengine.replay_input`` detects) and print alerts as the live
    pipeline would. Bad records are skipped with a located warning (fatal with ``--strict``)."""
    from dispatcher.sanitize import escape_json
    from lanner.text import terminal_safe
    from ruleengine.events_json import EventFormatError
    from ruleengine.fields import EventContext
    from ruleengine.output import OutputOptions, alert_to_json
    from ruleengine.replay_input import EventReader

    opts = OutputOptions()
    hostname = args.hostname
    if args.config:
        # same output settings as the running service (time format, suggested_output, append_output)
        from lanner.config import load_section
        from ruleengine.config import RuleEngineConfig
        from ruleengine.server import output_options

        cfg = load_section("ruleengine", RuleEngineConfig, args.config)
        opts = output_options(cfg)
        hostname = hostname or cfg.hostname
    hostname = hostname or os.uname().nodename
    res = load_rules(_expand(args.rules), _options(args))
    if res.engine is None:
        _print_messages(res)
        return 1
    engine = res.engine
    # Replay allocates several objects per event, none of them in reference cycles, while the rules and the
    # per-file memos stay: the cyclic collector only rescans them (20% of the run), so it is off for the replay.
    gc.freeze()
    gc.disable()
    rule_types = {r.name: min(r.evttypes.names) for r in engine.rules if not r.evttypes.complement and r.evttypes.names}
    reader = EventReader(
        args.events,
        args.source,
        strict=args.strict,
        warn_inconsistent=args.warn_inconsistent,
        warn=lambda m: print(f"lanner replay: {m}", file=sys.stderr),
        rule_type=rule_types.get,
        wanted=engine.has_rules_for,
        wanted_types=engine.types_with_rules,
    )
    count = 0
    out = sys.stdout
    process = engine.process
    try:
        for event in reader:
            ctx = EventContext(event)
            for m in process(ctx):
                alert = m.render(ctx, hostname, opts)
                # Alert text is attacker-controlled: one line each, nothing a terminal would act on.
                line = escape_json(alert_to_json(alert, opts)) if args.json else terminal_safe(alert.output)
                out.write(line + "\n")
                count += 1
    except (OSError, EventFormatError) as exc:
        print(f"lanner replay: {exc}", file=sys.stderr)
        return 1
    st = reader.stats
    extra = f", {st.bad} bad record(s) skipped" if st.bad else ""
    extra += f", {st.enter_merged} enter event(s) merged into their exit" if st.enter_merged else ""
    print(f"{count} alert(s) from {st.events + st.skipped} event(s){extra}", file=sys.stderr)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Write the events of any replayable input in Lanner's recording format (``lanner.recording``) or as a
    ``.scap`` capture."""
    from lanner.recording import event_line
    from ruleengine.events_json import EventFormatError
    from ruleengine.replay_input import EventReader

    reader = EventReader(args.events, args.source, warn=lambda m: print(f"lanner record: {m}", file=sys.stderr))
    try:
        if args.format == "scap":
            from ruleengine.scap import write_scap

            written, skipped = write_scap(args.output, reader)
            extra = f" ({skipped} event(s) of other types not written)" if skipped else ""
            print(f"{written} event(s) written to {args.output}{extra}", file=sys.stderr)
            return 0
        with open(args.output, "w", encoding="utf-8") as out:
            n = 0
            for event in reader:
                out.write(event_line(event) + "\n")
                n += 1
        print(f"{n} event(s) written to {args.output}", file=sys.stderr)
    except (OSError, EventFormatError) as exc:
        print(f"lanner record: {exc}", file=sys.stderr)
        return 1
    return 0


def _selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--priority", metavar="PRIORITY", help="minimum rule priority (falco.yaml 'priority'), e.g. warning")
    p.add_argument(
        "--rule-matching",
        choices=("first", "all"),
        default="first",
        help="first (default): an event raises at most one alert; all: one per matching rule",
    )
    p.add_argument(
        "-D",
        "--disable-rule",
        action="append",
        metavar="NAME",
        help="disable rules whose name contains NAME (or matches it, with * wildcards)",
    )
    p.add_argument("-t", "--enable-tag", action="append", metavar="TAG", help="only enable rules with this tag")
    p.add_argument("-T", "--disable-tag", action="append", metavar="TAG", help="disable rules with this tag")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``rules`` and ``replay``."""
    rules = subparsers.add_parser("rules", help="validate, list and test Falco rules files")
    sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    v = sub.add_parser("validate", help="validate rules files like 'falco -V'")
    v.add_argument("files", nargs="+", metavar="FILE", help="rules file; errors print as FILE:LINE:COL")
    v.set_defaults(func=cmd_validate)
    ls = sub.add_parser("list", help="list the rules of a rule set")
    ls.add_argument("--rules", nargs="+", metavar="FILE", help="rules files (default: the project's rules/)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _selection_args(ls)
    ls.set_defaults(func=cmd_list)
    t = sub.add_parser("test", help="run rule test files (events -> expected alerts)")
    t.add_argument("files", nargs="+", metavar="TESTS.yaml", help="rule test file (events and expected alerts)")
    t.add_argument("--rules", nargs="+", metavar="FILE", help="rules for tests without their own 'rules:'")
    t.set_defaults(func=cmd_test)
    r = subparsers.add_parser(
        "replay", help="evaluate recorded events (JSON lines, Falco alerts, k8s audit, .scap) and print alerts"
    )
    r.add_argument("events", metavar="EVENTS", help="recorded events: JSON lines, Falco alerts, k8s audit or .scap")
    r.add_argument("--rules", nargs="+", metavar="FILE", help="rules files (default: the project's rules/)")
    r.add_argument("--json", action="store_true", help="print Falco JSON alerts")
    r.add_argument(
        "--source",
        choices=("syscall", "k8s_audit"),
        default=None,
        help="event source of the file (default: syscall, or k8s_audit for audit Event objects)",
    )
    r.add_argument("--hostname", default="", metavar="NAME", help="hostname to put in the alerts")
    r.add_argument("--config", metavar="FILE", help="take output settings from this Lanner config file")
    r.add_argument("--strict", action="store_true", help="stop at the first bad record instead of skipping it")
    r.add_argument(
        "--warn-inconsistent",
        action="store_true",
        help="report given values that differ from what the other fields give (once per field)",
    )
    _selection_args(r)
    r.set_defaults(func=cmd_replay)
    rec = subparsers.add_parser(
        "record", help="write recorded events as a Lanner recording (JSON lines) or a .scap capture"
    )
    rec.add_argument("events", metavar="EVENTS", help="any input 'lanner replay' takes")
    rec.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write (replaced if it exists)")
    rec.add_argument(
        "--format",
        choices=("jsonl", "scap"),
        default="jsonl",
        help="scap: a capture 'sysdig -r' and Falco read (processes and file opens)",
    )
    rec.add_argument(
        "--source",
        choices=("syscall", "k8s_audit"),
        default=None,
        help="event source of the input (default: syscall, or k8s_audit for audit Event objects)",
    )
    rec.set_defaults(func=cmd_record)
