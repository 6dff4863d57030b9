# SPDX-License-Identifier: Apache-2.0
"""Chaos, measured: marker events through a real ``lanner up`` while one stage at a time is killed with SIGKILL.

A marker is a real ``openat`` of ``/tmp/lanner-marker-<run>-<n>``, traced by the collector's eBPF probes, enriched,
matched by the marker rule and delivered by the dispatcher to its file output and to an HTTP receiver here. After
each kill the supervisor restarts the stage; the writer keeps writing. When every stage has had its turn, a final
marker is waited for, and each marker is classified:

* delivered: in the file output and at the HTTP receiver (each must hold every marker the other holds);
* counted as dropped: the stages' drop alerts ("Falco internal: syscall event drop", ``n_drops``) say how many
  events were lost upstream of the dispatcher, and lost markers are covered by that count;
* unaccounted: lost markers beyond the counted drops (must be 0);
* duplicates after dedup: markers that reached an output as two different alerts (different alert ids at the
  HTTP receiver, whose ``Idempotency-Key`` is the alert id; must be 0). Re-deliveries of the same alert are
  at-least-once by design and are reported apart.

Markers written while the collector itself is down are not seen by anyone, as with any tracer; the writer pauses
from the kill of the collector until it is back, so that "sent" means "written while a collector was tracing".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.lanner_stack import Stack, wait_until

DROP_RULE = "Falco internal: syscall event drop"
MARKER_DIR = "/tmp"


class Receiver:
    """An HTTP endpoint for the dispatcher's ``http`` output: keeps every request's alert id and marker."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        # While set, requests are read and never answered (a receiver that hangs); ``hung`` counts them.
        self.hang = threading.Event()
        self.hung = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hang.is_set():
                    with receiver.lock:
                        receiver.hung += 1
                    while receiver.hang.is_set():
                        time.sleep(0.05)
                    self.close_connection = True
                    return
                with contextlib.suppress(ValueError), receiver.lock:
                    receiver.requests.append((self.headers.get("Idempotency-Key", ""), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MarkerWriter:
    """Opens marker files at a steady rate in a thread; ``pause``/``resume`` around a collector outage."""

    def __init__(self, run: str, rate_per_s: float) -> None:
        self.run = run
        self.interval = 1.0 / rate_per_s
        self.sent: list[int] = []
        self._go = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def path(self, n: int) -> str:
        return f"{MARKER_DIR}/lanner-marker-{self.run}-{n}"

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            if not self._go.is_set():
                self._idle.set()
                self._go.wait(0.1)
                continue
            self._idle.clear()
            n += 1
            path = self.path(n)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
            os.unlink(path)
            self.sent.append(n)
            time.sleep(self.interval)

    def resume(self) -> None:
        self._go.set()

    def pause(self) -> None:
        self._go.clear()
        self._idle.wait(5)

    def close(self) -> None:
        self._stop.set()
        self._go.set()
        self._thread.join(5)


@dataclass
class Row:
    stage: str
    sent: int = 0
    delivered: int = 0
    counted_dropped: int = 0
    unaccounted: int = 0
    duplicates: int = 0
    redelivered: int = 0
    only_in_one_output: int = 0
    notes: list[str] = field(default_factory=list)


def marker_of(fields: dict[str, Any], prefix: str) -> int | None:
    name = str(fields.get("fd.name", ""))
    return int(name[len(prefix) :]) if name.startswith(prefix) else None


def counted_drops(stack: Stack) -> int:
    """Events the stages reported lost so far, from their delivered drop alerts."""
    return sum(int(a.get("output_fields", {}).get("n_drops", 0)) for a in stack.alerts() if a.get("rule") == DROP_RULE)


def analyse(
    stage: str, writer: MarkerWriter, stack: Stack, receiver: Receiver, first: int, last: int, dropped: int
) -> Row:
    """Classify markers ``first..last`` (the ones written during this stage's turn); ``dropped`` is what the
    drop alerts counted over the same turn."""
    prefix = f"{MARKER_DIR}/lanner-marker-{writer.run}-"
    file_lines: dict[int, list[str]] = defaultdict(list)
    for alert in stack.alerts():
        if alert.get("rule") == DROP_RULE:
            continue
        n = marker_of(alert.get("output_fields", {}), prefix)
        if n is not None and first <= n <= last:
            file_lines[n].append(str(alert.get("time")))
    http_ids: dict[int, set[str]] = defaultdict(set)
    http_count: dict[int, int] = defaultdict(int)
    with receiver.lock:
        requests = list(receiver.requests)
    for key, body in requests:
        n = marker_of(body.get("output_fields", {}), prefix)
        if n is not None and first <= n <= last:
            http_ids[n].add(key)
            http_count[n] += 1
    sent = [n for n in writer.sent if first <= n <= last]
    row = Row(stage, sent=len(sent), counted_dropped=dropped)
    delivered = {n for n in sent if n in file_lines and n in http_ids}
    row.delivered = len(delivered)
    row.only_in_one_output = len({n for n in sent if (n in file_lines) != (n in http_ids)})
    lost = len(sent) - len({n for n in sent if n in file_lines or n in http_ids})
    row.unaccounted = max(0, lost - dropped)
    row.duplicates = sum(1 for n in sent if len(http_ids.get(n, ())) > 1 or len(set(file_lines.get(n, ()))) > 1)
    row.redelivered = sum(1 for n in sent if http_count.get(n, 0) > 1 or len(file_lines.get(n, ())) > 1)
    return row


def dispatcher_outputs(receiver_url: str) -> dict[str, Any]:
    return {"stdout": {"enabled": False}, "http": {"enabled": True, "url": receiver_url}}


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def kill_stage(stack: Stack, stage: str, writer: MarkerWriter, marks_before: int, timeout: float = 180) -> float:
    """Let ``marks_before`` markers go out, SIGKILL the stage, wait for the supervisor to bring it back (the
    collector: with the writer paused while no collector traces). Returns the outage in seconds."""
    start = len(writer.sent)
    wait_until(lambda: len(writer.sent) - start >= marks_before, 120, f"{marks_before} markers before the kill")
    name = "redis" if stage == "redis" else stage
    old = stack.child_pid(name)
    if stage == "collector":
        writer.pause()
    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)

    def back() -> bool:
        try:
            pid = stack.child_pid(name)
        except AssertionError:
            return False
        if pid == old:
            return False
        if stage == "redis":
            return stack.metric("dispatcher", "lanner_dispatcher_redis_up") == 1
        return _listening(stack.target(stage))

    wait_until(back, timeout, f"{stage} to be restarted by lanner up")
    outage = time.monotonic() - killed_at
    writer.resume()
    return outage


def _listening(target: str) -> bool:
    import socket

    host, port = target.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=0.5):
        return True
    return False


def settle(stack: Stack, receiver: Receiver, writer: MarkerWriter, flush_s: float = 12.0, timeout: float = 120) -> None:
    """Pause the writer, then send sentinel markers (not counted) one by one until one sent ``flush_s`` after the
    pause is in both outputs: every earlier event has then had its chance, and the drop reports that a stage
    holds back for its 10 s rate limit have gone out with later batches."""
    writer.pause()
    prefix = f"{MARKER_DIR}/lanner-marker-{writer.run}s-"
    paused_at = time.monotonic()
    deadline = paused_at + timeout
    k = 0
    while True:
        k += 1
        path = f"{prefix}{k}"
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.unlink(path)
        sent_at = time.monotonic()

        def arrived(k: int = k) -> bool:
            in_file = any(marker_of(a.get("output_fields", {}), prefix) == k for a in stack.alerts())
            with receiver.lock:
                in_http = any(marker_of(b.get("output_fields", {}), prefix) == k for _, b in receiver.requests)
            return in_file and in_http

        while not arrived() and time.monotonic() - sent_at < 2.0:
            time.sleep(0.1)
        if arrived() and sent_at - paused_at >= flush_s:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no sentinel marker reached both outputs within {timeout}s")


def format_table(rows: list[Row]) -> str:
    head = ("stage killed", "markers sent", "delivered", "counted dropped", "unaccounted", "duplicates",
            "re-delivered", "outage")  # fmt: skip
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for r in rows:
        outage = next((n for n in r.notes if n.startswith("outage")), "").removeprefix("outage ")
        values = (r.stage, r.sent, r.delivered, r.counted_dropped, r.unaccounted, r.duplicates, r.redelivered, outage)
        lines.append(" | ".join(str(v) for v in values))
    return "\n".join(lines)


def run_chaos(state: Path, stages: list[str], rate: float, marks_per_phase: int) -> list[Row]:
    """One ``lanner up``; each stage in turn: markers, SIGKILL, restart, markers. One row per stage."""
    receiver = Receiver()
    stack = Stack(
        state,
        dispatcher_outputs=dispatcher_outputs(receiver.url),
        extra_env={"LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED": "false"},
    )
    writer = MarkerWriter(new_run_id(), rate)
    rows: list[Row] = []
    try:
        stack.start()
        stack.wait_up()
        writer.resume()
        settle_first = 5
        wait_until(lambda: len(writer.sent) >= settle_first, 60, "the first markers")
        for stage in stages:
            first = writer.sent[-1] + 1 if writer.sent else 1
            drops_before = counted_drops(stack)
            writer.resume()
            outage = kill_stage(stack, stage, writer, marks_per_phase)
            start = len(writer.sent)
            wait_until(lambda s=start: len(writer.sent) - s >= marks_per_phase, 120, "markers after the restart")
            last = writer.sent[-1]
            settle(stack, receiver, writer)
            row = analyse(stage, writer, stack, receiver, first, last, counted_drops(stack) - drops_before)
            row.notes.append(f"outage {outage:.1f}s")
            rows.append(row)
        return rows
    finally:
        writer.close()
        stack.stop()
        receiver.close()
