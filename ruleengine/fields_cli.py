# SPDX-License-Identifier: Apache-2.0
"""``lanner fields [--source S] [--json] [--markdown]``: list every field, like ``falco --list``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from ruleengine.fields import ArgKind, FieldInfo, known_sources, list_fields

_FAMILY_TITLES = {
    "evt": "Event fields (evt.*)",
    "proc": "Process fields (proc.*)",
    "thread": "Thread fields (thread.*)",
    "user": "User fields (user.*)",
    "group": "Group fields (group.*)",
    "fd": "File descriptor fields (fd.*)",
    "container": "Container fields (container.*, from the container runtime)",
    "k8s": "Kubernetes pod fields (k8s.*, from the container runtime)",
    "ka": "Kubernetes audit fields (ka.*)",
    "jevt": "JSON fields (jevt.*)",
}


def _signature(info: FieldInfo) -> str:
    name = info.name
    if info.arg is ArgKind.REQUIRED:
        name += "[...]" if info.arg_form != "index" else "[N]"
    elif info.arg is ArgKind.OPTIONAL:
        name += "[N]" if info.arg_form == "index" else "[KEY]"
    return name


def _flags(info: FieldInfo) -> str:
    flags = []
    if info.is_list:
        flags.append("LIST")
    if info.filter_only:
        flags.append("FILTER ONLY")
    if info.deprecated:
        flags.append("DEPRECATED")
    return f" ({', '.join(flags)})" if flags else ""


def format_text(fields: list[FieldInfo]) -> str:
    """Human-readable listing grouped by source and family."""
    lines: list[str] = []
    source = family = ""
    for info in fields:
        fam = info.name.split(".", 1)[0]
        if info.source != source:
            source, family = info.source, ""
            lines.append(f"\nEvent source: {source}")
        if fam != family:
            family = fam
            lines.append(f"\n{_FAMILY_TITLES.get(fam, fam + '.*')}")
            lines.append("-" * 60)
        head = f"{_signature(info):<40} {info.type.value}{_flags(info)}"
        lines.append(head)
        lines.extend(textwrap.wrap(info.description, 100, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines).lstrip("\n")


def _as_dict(info: FieldInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "type": info.type.value,
        "source": info.source,
        "desc": info.description,
        "arg": info.arg.value,
        "arg_form": info.arg_form,
        "is_list": info.is_list,
        "filter_only": info.filter_only,
        "no_rhs": info.no_rhs,
        "deprecated": info.deprecated,
    }


def cmd_fields(args: argparse.Namespace) -> int:
    """Print the field catalogue."""
    if args.source and args.source not in known_sources():
        print(
            f"lanner fields: unknown source '{args.source}' (known: {', '.join(sorted(known_sources()))})",
            file=sys.stderr,
        )
        return 2
    fields = list_fields(args.source or None)
    if args.names:
        print("\n".join(f.name for f in fields))
    elif args.json:
        print(json.dumps([_as_dict(f) for f in fields], indent=1))
    else:
        print(format_text(fields))
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``lanner fields``."""
    p = subparsers.add_parser(
        "fields",
        help="list the fields usable in rule conditions and outputs",
        description="List every field with its type and description (like falco --list).",
    )
    p.add_argument("--source", help="only fields of this event source (syscall, k8s_audit)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--names", action="store_true", help="print only the field names")
    p.set_defaults(func=cmd_fields)
