# SPDX-License-Identifier: Apache-2.0
"""``lanner tokens new FILE --name NAME``: add a scoped Subscribe token to a token file and print the token.

Only the token's sha256 goes into the file (``dispatcher.tokens_file``); the token itself is printed once, on
stdout, and kept nowhere. The file is replaced atomically, so a running dispatcher reloads either the old or the new
file, never half of one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import tempfile
from typing import Any

import yaml

from dispatcher.tokens import TokenFileError, parse_tokens
from lanner.priority import Priority


def add_token(path: str, entry: dict[str, Any]) -> str:
    """Append a new token with the scope ``entry`` (without its secret) to ``path``; return the token."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    doc = yaml.safe_load(text) if text.strip() else {"tokens": []}
    parse_tokens(yaml.safe_dump(doc), path)  # the existing file must be valid before it is extended
    if any(t.get("name") == entry["name"] for t in doc["tokens"]):
        raise TokenFileError(f"{path}: a token named {entry['name']!r} exists already")
    token = secrets.token_urlsafe(32)
    doc["tokens"].append({"name": entry["name"], "sha256": hashlib.sha256(token.encode()).hexdigest(), **entry})
    new_text = yaml.safe_dump(doc, sort_keys=False)
    parse_tokens(new_text, path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tokens-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return token


def _new(args: argparse.Namespace) -> int:
    entry: dict[str, Any] = {"name": args.name}
    if args.source:
        entry["sources"] = list(args.source)
    if args.min_priority:
        try:
            entry["min_priority"] = Priority.parse(args.min_priority).name.lower()
        except ValueError as exc:
            print(f"lanner tokens new: --min-priority: {exc}", file=sys.stderr)
            return 2
    if args.namespace:
        entry["namespaces"] = list(args.namespace)
    if args.hide_output_fields:
        entry["output_fields"] = False
    entry["max_subscribers"] = args.max_subscribers
    try:
        token = add_token(args.file, entry)
    except (OSError, TokenFileError) as exc:
        print(f"lanner tokens new: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``tokens`` on the ``lanner`` command."""
    tokens = sub.add_parser("tokens", help="manage scoped bearer tokens for Subscribe")
    actions = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="add a token to FILE (created if missing) and print it")
    new.add_argument("file", metavar="FILE", help="the dispatcher's tokens_file")
    new.add_argument("--name", required=True, help="who holds the token (shown in logs and metrics)")
    new.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    new.add_argument("--min-priority", default="", metavar="PRIORITY", help="only alerts at least this severe")
    new.add_argument("--namespace", action="append", default=[], help="only alerts from this namespace (repeatable)")
    new.add_argument("--hide-output-fields", action="store_true", help="hide output fields and the rendered text")
    new.add_argument("--max-subscribers", type=int, default=4, metavar="N", help="concurrent streams (default 4)")
    new.set_defaults(func=_new)
