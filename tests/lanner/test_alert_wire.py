# SPDX-License-Identifier: Apache-2.0
"""``lanner.alert_wire`` writes an alert's bytes in one pass: parsed back, they must be the message that
``alert_to_pb`` builds through the protobuf API, for any alert (and the same cut alert when it is too large)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.alert import Alert, alert_to_pb
from lanner.alert_wire import alert_batch_wire, alert_bytes
from lanner.priority import Priority
from lanner.v1 import alert_pb2, event_pb2

TEXT = st.text(max_size=10) | st.sampled_from(["", "é", "\udc80x", "a\x00b"])
SCALAR = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | TEXT
VALUE = SCALAR | st.lists(SCALAR | st.lists(SCALAR, max_size=2), max_size=3) | st.dictionaries(TEXT, SCALAR, max_size=2)


def event(seq: int) -> event_pb2.EventView:
    ev = event_pb2.Event(type="openat")
    ev.id.node, ev.id.boot_id, ev.id.producer_id, ev.id.seq = "node", "boot", "collector-1", seq
    ev.timing.event_ns, ev.timing.collected_ns, ev.timing.evaluated_ns = 7, 8 + seq % 1000, 2**62
    return event_pb2.EventView.FromString(ev.SerializeToString())


@settings(max_examples=300, deadline=None)
@given(
    rule=TEXT,
    priority=st.sampled_from(list(Priority)),
    source=st.sampled_from(["syscall", "k8s_audit", "internal", ""]),
    tags=st.lists(TEXT, max_size=4),
    time_ns=st.integers(-(2**62), 2**62),
    output=TEXT,
    message=TEXT,
    fields=st.dictionaries(TEXT, VALUE, max_size=6),
    hostname=TEXT,
    seq=st.none() | st.integers(0, 2**63 - 1),
)
def test_same_message_as_alert_to_pb(
    rule: str,
    priority: Priority,
    source: str,
    tags: list[str],
    time_ns: int,
    output: str,
    message: str,
    fields: dict[str, object],
    hostname: str,
    seq: int | None,
) -> None:
    alert = Alert(rule, priority, source, tuple(tags), time_ns, output, message, fields, hostname)  # type: ignore[arg-type]
    ev = None if seq is None else event(seq)
    try:
        want = alert_to_pb(alert, ev)
    except (UnicodeEncodeError, OverflowError, ValueError) as exc:
        # What protobuf's API refuses, the fast path must not quietly accept either.
        try:
            alert_bytes(alert, ev)
        except type(exc):
            return
        raise AssertionError(f"alert_bytes accepted what alert_to_pb refused: {exc!r}") from None
    assert alert_pb2.Alert.FromString(alert_bytes(alert, ev)) == want


def test_large_alerts_are_cut_like_alert_to_pb() -> None:
    alert = Alert("r", Priority.NOTICE, output="x" * 200_000, output_fields={f"f{i}": "y" * 100 for i in range(900)})
    data = alert_bytes(alert, event(1))
    assert alert_pb2.Alert.FromString(data) == alert_to_pb(alert, event(1))
    assert len(data) < 200_000


def test_batch_wire() -> None:
    alerts = [alert_bytes(Alert(f"r{i}", Priority.ERROR, time_ns=i), event(i)) for i in range(3)]
    batch = alert_pb2.AlertBatch.FromString(alert_batch_wire(9, alerts))
    assert batch.batch_seq == 9 and [a.rule for a in batch.alerts] == ["r0", "r1", "r2"]
    assert alert_pb2.AlertBatch.FromString(alert_batch_wire(0, [])) == alert_pb2.AlertBatch()
