# SPDX-License-Identifier: Apache-2.0
"""``lanner alerts dead list|show|replay|drop``: dead letters an operator can act on.

An output that gives up on an alert (a permanent refusal, or retries exhausted) keeps it in ``<stream>:dead`` with
the output's name and the reason. ``replay`` moves it back into the alert stream addressed to that one output (the
other outputs and subscribers skip it, routing and grouping do not apply), in one script with its removal from
the dead letters, so a replayed alert is never both replayed and still dead, nor lost in between.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from redis.exceptions import RedisError

from lanner.config import ConfigError

# KEYS[1] = dead stream, KEYS[2] = alert stream; ARGV = dead entry ids. Returns the new stream ids ('' = not found).
# The entry goes back addressed to its output ('o'), with its alert ('a') and any digest counts; the dead letter's own
# bookkeeping (output, entry, error) stays behind.
_REPLAY_LUA = """
local out = {}
for i, id in ipairs(ARGV) do
  local e = redis.call('XRANGE', KEYS[1], id, id)
  out[i] = ''
  if #e > 0 then
    local f = e[1][2]
    local output, payload = nil, nil
    local args = {}
    for j = 1, #f, 2 do
      local k, v = f[j], f[j + 1]
      if k == 'output' then output = v
      elseif k == 'a' then payload = v
      elseif k ~= 'entry' and k ~= 'error' and k ~= 'o' then
        args[#args + 1] = k
        args[#args + 1] = v
      end
    end
    if output ~= nil and payload ~= nil then
      out[i] = redis.call('XADD', KEYS[2], '*', 'o', output, 'a', payload, 'replayed', id, unpack(args))
      redis.call('XDEL', KEYS[1], id)
    end
  end
end
return out
"""


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


def _describe(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    from dispatcher.convert import AlertError, alert_from_pb
    from dispatcher.falco_format import falco_dict
    from lanner.v1 import alert_pb2

    out: dict[str, Any] = {
        "id": entry_id.decode(),
        "output": _text(fields.get(b"output")),
        "error": _text(fields.get(b"error")),
        "entry": _text(fields.get(b"entry")),
        "dead_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(entry_id.split(b"-")[0]) / 1000)),
    }
    payload = fields.get(b"a")
    try:
        out["alert"] = falco_dict(alert_from_pb(alert_pb2.Alert.FromString(payload))) if payload else None
    except (AlertError, ValueError) as exc:
        out["alert"] = None
        out["undecodable"] = str(exc)
    return out


class DeadLetters:
    """The dead-letter stream of one dispatcher config."""

    def __init__(self, redis_url: str, stream: str, cluster: bool = False) -> None:
        import redis

        self.stream = stream
        self.dead = f"{stream}:dead"
        kind: Any = redis.RedisCluster if cluster else redis.Redis
        self._r: Any = kind.from_url(redis_url, socket_connect_timeout=5, socket_timeout=30)

    def entries(self, output: str = "", limit: int = 0) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Dead letters oldest first, optionally for one output only."""
        found = []
        for entry_id, fields in self._r.xrange(self.dead, "-", "+"):
            if output and fields.get(b"output", b"").decode() != output:
                continue
            found.append((entry_id, fields))
            if limit and len(found) >= limit:
                break
        return found

    def get(self, entry_id: str) -> dict[bytes, bytes] | None:
        """One dead letter by id."""
        got = self._r.xrange(self.dead, entry_id, entry_id)
        return got[0][1] if got else None

    def replay(self, ids: Sequence[str]) -> list[str]:
        """Move dead letters back into the stream for their output; the new stream ids ('' for unknown ids)."""
        result = self._r.eval(_REPLAY_LUA, 2, self.dead, self.stream, *ids)
        return [_text(x) for x in result]

    def drop(self, ids: Sequence[str]) -> int:
        """Delete dead letters; return how many existed."""
        return int(self._r.xdel(self.dead, *ids)) if ids else 0


def _select(dl: DeadLetters, args: argparse.Namespace) -> list[str]:
    if args.all:
        return [i.decode() for i, _ in dl.entries(args.output)]
    if not args.ids:
        raise ConfigError("give dead letter ids, or --all (optionally with --output NAME)")
    return list(args.ids)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Carry out one ``alerts dead`` subcommand."""
    from dispatcher import config as dconfig

    cfg, specs = dconfig.load(args.config)
    dl = DeadLetters(args.redis_url or cfg.redis_url, cfg.stream, cfg.redis_cluster)
    if args.dead_command == "list":
        rows = [_describe(i, f) for i, f in dl.entries(args.output, args.limit)]
        if args.json:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True, default=dict) + "\n")
            return 0
        for row in rows:
            rule = (row["alert"] or {}).get("rule", "?")
            out.write(f"{row['id']}  {row['output']}  {rule!r}  {row['error'][:100]}\n")
        out.write(f"{len(rows)} dead letter(s)\n")
        return 0
    if args.dead_command == "show":
        fields = dl.get(args.id)
        if fields is None:
            print(f"lanner alerts dead show: {args.id}: no such dead letter", file=sys.stderr)
            return 1
        out.write(json.dumps(_describe(args.id.encode(), fields), indent=2, sort_keys=True, default=dict) + "\n")
        return 0
    ids = _select(dl, args)
    if args.dead_command == "replay":
        enabled = {s.name for s in specs}
        for entry_id in ids:
            fields = dl.get(entry_id)
            name = _text(fields.get(b"output")) if fields else ""
            if fields is not None and name not in enabled:
                print(f"lanner alerts dead replay: {entry_id}: output {name!r} is not enabled", file=sys.stderr)
                return 1
        new = dl.replay(ids)
        for old, fresh in zip(ids, new, strict=True):
            out.write(f"{old}: " + (f"replayed as {fresh}\n" if fresh else "no such dead letter\n"))
        return 0 if all(new) else 1
    dropped = dl.drop(ids)
    out.write(f"dropped {dropped} dead letter(s)\n")
    return 0 if dropped == len(ids) else 1


def _main(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except ConfigError as exc:
        print(f"lanner alerts dead {args.dead_command}: {exc}", file=sys.stderr)
        return 2
    except (OSError, RedisError) as exc:
        print(f"lanner alerts dead {args.dead_command}: redis: {exc}", file=sys.stderr)
        return 1


def add_commands(subparsers: Any) -> None:
    """Add ``alerts dead ...`` to the ``lanner`` command."""
    p = subparsers.add_parser("alerts", help="work with the dispatcher's alert queue")
    sub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    dead = sub.add_parser("dead", help="list, show, replay or drop alerts an output gave up on")
    dsub = dead.add_subparsers(dest="dead_command", metavar="ACTION", required=True)
    for name, helptext in (
        ("list", "list dead letters, oldest first"),
        ("show", "print one dead letter with its alert as Falco JSON"),
        ("replay", "send dead letters again to the output that gave up on them"),
        ("drop", "delete dead letters"),
    ):
        a = dsub.add_parser(name, help=helptext)
        a.add_argument("--config", "-c", default=None, metavar="FILE", help="YAML config file (section 'dispatcher')")
        a.add_argument("--redis-url", default="", metavar="URL", help="override dispatcher.redis_url")
        if name == "show":
            a.add_argument("id", metavar="ID", help="dead letter id (from list)")
        else:
            a.add_argument("--output", default="", metavar="NAME", help="only dead letters of this output")
        if name == "list":
            a.add_argument("--limit", type=int, default=0, metavar="N", help="at most N entries")
            a.add_argument("--json", action="store_true", help="one JSON object per line")
        if name in ("replay", "drop"):
            a.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (from list)")
            a.add_argument("--all", action="store_true", help="every dead letter (of --output, if given)")
        a.set_defaults(func=_main)
