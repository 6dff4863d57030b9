# SPDX-License-Identifier: Apache-2.0
"""One alert model, one codec, one Falco JSON renderer: what the rule engine prints for an alert is what the
dispatcher delivers for it after the wire."""

from __future__ import annotations

from dispatcher import falco_format, model
from dispatcher.convert import alert_from_pb
from lanner.alert import Alert, alert_to_pb
from lanner.convert import event_to_pb
from lanner.falco_json import JsonOptions, falco_json
from ruleengine import output
from ruleengine.engine import load_texts
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext
from ruleengine.output import OutputOptions, alert_to_json

RULE = """
- rule: shadow
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: "read (file=%fd.name cmd=%proc.cmdline user=%user.uid caps=%proc.aname[2])"
  priority: WARNING
  tags: [b, a]
"""


def test_both_stages_speak_one_model_and_one_renderer() -> None:
    assert output.AlertRecord is Alert is model.Alert
    assert falco_format.falco_json is falco_json


def test_the_rule_engines_json_line_is_the_dispatchers() -> None:
    res = load_texts([("r.yaml", RULE)])
    assert res.engine is not None
    event = event_from_fields(
        {
            "evt.type": "openat",
            "fd.name": "/etc/shadow",
            "proc.cmdline": "cat \u2028/etc/shadow",
            "user.uid": 0,
            "evt.time": 1_700_000_000_123_456_789,
        }
    )
    ctx = EventContext(event)
    (match,) = res.engine.process(ctx)
    record = match.render(ctx, "host-1", OutputOptions())
    delivered = alert_from_pb(alert_to_pb(record, event_to_pb(event)))
    assert len(delivered.alert_id) == 32
    for opts in (OutputOptions(), OutputOptions(json_include_message_property=True, json_include_tags_property=False)):
        line = alert_to_json(record, opts)
        assert "\u2028" not in line and "\\u2028" in line  # one line whatever the process put in its argv
        json_opts = JsonOptions(
            include_message=opts.json_include_message_property, include_tags=opts.json_include_tags_property
        )
        assert falco_format.safe_line(delivered, True, json_opts) == line
