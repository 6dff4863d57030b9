# SPDX-License-Identifier: Apache-2.0
"""The routing tree (Alertmanager-like) and its matchers, unit and end to end on real Redis."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from dispatcher_testlib import base_config, lines, make_alert, push, running, wait_for

from dispatcher.matchers import MatcherError, parse_matcher
from dispatcher.model import Alert, Priority
from dispatcher.routes_cli import explain
from dispatcher.routetree import outputs_for, parse_tree
from lanner.config import ConfigError
from lanner.v1 import alert_pb2

OUTPUTS = ["slack", "pagerduty", "file"]
TREE: dict[str, Any] = {
    "outputs": ["slack"],
    "routes": [
        {
            "name": "prod critical",
            "match": ["k8s.ns.name~prod-*"],
            "min_priority": "critical",
            "outputs": ["pagerduty"],
            "continue": True,
        },
        {"name": "shop team", "match": ["k8s.pod.label[team]=shop"], "outputs": ["file"]},
        {"name": "never", "rules": ["Never*"], "outputs": ["pagerduty"]},
    ],
}


def alert(priority: Priority = Priority.WARNING, rule: str = "Terminal shell in container", **fields: Any) -> Alert:
    return Alert(rule=rule, priority=priority, tags=("shell",), hostname="h1", output_fields=MappingProxyType(fields))


def test_matchers() -> None:
    a = alert(**{"k8s.ns.name": "prod-eu", "container.image.repository": "docker.io/library/nginx", "n": 3})
    assert parse_matcher("k8s.ns.name=prod-eu").matches(a)
    assert parse_matcher("k8s.ns.name ~ prod-*").matches(a)
    assert parse_matcher("container.image.repository~*/nginx").matches(a)
    assert parse_matcher("k8s.ns.name!=shop").matches(a)
    assert not parse_matcher("k8s.pod.name=x").matches(a)  # absent field: only negative operators match
    assert parse_matcher("k8s.pod.name!~x*").matches(a)
    assert parse_matcher("priority=WARNING").matches(a) and parse_matcher("tags=shell").matches(a)
    assert parse_matcher("evt.hostname=h1").matches(a) and parse_matcher("rule~Terminal*").matches(a)
    assert parse_matcher("n=3").matches(a)
    assert parse_matcher("k8s.pod.label[app]=web").matches(alert(**{"k8s.pod.label.app": "web"}))
    with pytest.raises(MatcherError, match="FIELD OP VALUE"):
        parse_matcher("k8s.ns.name shop")


def test_tree_first_match_continue_and_default() -> None:
    root = parse_tree(TREE, OUTPUTS)
    assert root is not None
    prod = {"k8s.ns.name": "prod-eu"}
    shop = {"k8s.pod.label[team]": "shop"}
    assert outputs_for(root, alert(Priority.CRITICAL, **prod)) == {"pagerduty"}
    assert outputs_for(root, alert(Priority.CRITICAL, **prod, **shop)) == {"pagerduty", "file"}  # continue
    assert outputs_for(root, alert(Priority.WARNING, **prod)) == {"slack"}  # no child matches: the default
    assert outputs_for(root, alert(**shop)) == {"file"}
    assert outputs_for(root, alert(rule="Never again", **shop)) == {"file"}  # first match wins


def test_tree_errors_name_the_route() -> None:
    with pytest.raises(ConfigError, match=r"dispatcher.routes.routes\[0\].outputs\[0\]: 'teams' is not an enabled"):
        parse_tree({"routes": [{"outputs": ["teams"]}]}, OUTPUTS)
    with pytest.raises(ConfigError, match=r"routes\[0\].match\[1\]"):
        parse_tree({"routes": [{"match": ["a=b", "oops"]}]}, OUTPUTS)
    with pytest.raises(ConfigError, match=r"routes\[0\].contine: unknown key"):
        parse_tree({"routes": [{"contine": True}]}, OUTPUTS)
    with pytest.raises(ConfigError, match="root route matches everything"):
        parse_tree({"match": ["a=b"]}, OUTPUTS)


@pytest.mark.integration
async def test_routed_delivery_on_real_redis(redis_url: str, bind: str, tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.jsonl" for name in ("all", "prod", "shop")}
    outputs = {f"file:{name}": {"path": str(path)} for name, path in files.items()}
    routes = {
        "outputs": ["file:all"],
        "routes": [
            {"name": "archive everything", "continue": True},  # inherits file:all
            {"match": ["k8s.ns.name~prod-*"], "min_priority": "error", "outputs": ["file:prod"], "continue": True},
            {"match": ["k8s.ns.name=shop"], "outputs": ["file:shop"]},
        ],
    }
    cfg = base_config(redis_url, bind, outputs=outputs, routes=routes)
    alerts = [
        make_alert(0, fields={"k8s.ns.name": "prod-eu"}, priority=alert_pb2.PRIORITY_CRITICAL),  # prod + all
        make_alert(1, fields={"k8s.ns.name": "prod-eu"}),  # notice: all only
        make_alert(2, fields={"k8s.ns.name": "shop"}),  # shop + all
        make_alert(3, fields={}),  # all
    ]
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(lines(files["all"])) == 4 and lines(files["prod"]) and lines(files["shop"]))

    def ns(name: str) -> list[str]:
        return [json.loads(x)["output"] for x in lines(files[name])]

    assert ns("prod") == [alerts[0].output]
    assert ns("shop") == [alerts[2].output]
    assert ns("all") == [a.output for a in alerts]


def test_lanner_routes_test_command(tmp_path: Path) -> None:
    config = tmp_path / "lanner.yaml"
    outputs = {"stdout": {"enabled": False}, "file": {"path": str(tmp_path / "a.jsonl")}, "http": {"url": "http://x/"}}
    config.write_text(yaml.safe_dump({"dispatcher": {"outputs": outputs, "routes": {
        "outputs": ["file"],
        "routes": [{"name": "prod", "match": ["k8s.ns.name=prod"], "outputs": ["http"], "continue": True}],
    }}}))  # fmt: skip
    falco = {
        "hostname": "host1",
        "output": "13:53:31.726060287: Critical Shell (ns=prod)",
        "output_fields": {"evt.time": 1718000011726060287, "k8s.ns.name": "prod"},
        "priority": "Critical",
        "rule": "Terminal shell in container",
        "source": "syscall",
        "tags": ["shell"],
        "time": "2024-06-10T06:13:31.726060287Z",
    }
    out = io.StringIO()
    assert explain(str(config), json.dumps(falco), out) == 0
    assert out.getvalue().splitlines() == [
        "file: no (no route sends it here)",
        "http: yes via dispatcher.routes.routes[0] (prod)",
    ]
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps(falco | {"output_fields": {"k8s.ns.name": "dev"}}))
    res = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "routes", "test", str(alert_file), "-c", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["file: yes via dispatcher.routes", "http: no (no route sends it here)"]
    alert_file.write_text('{"rule": ""}')
    res = subprocess.run(
        [sys.executable, "-m", "lanner.cli", "routes", "test", str(alert_file), "-c", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 2 and "rule: missing or empty" in res.stderr


@pytest.mark.integration
async def test_cluster_name_and_node_identity_on_every_alert(redis_url: str, bind: str, tmp_path: Path) -> None:
    out = tmp_path / "prod.jsonl"
    routes = {"outputs": [], "routes": [{"match": ["lanner.cluster=prod-eu", "hostname=node-7"], "outputs": ["file"]}]}
    cfg = base_config(
        redis_url,
        bind,
        cluster_name="prod-eu",
        hostname="dispatcher-host",
        outputs={"file": {"path": str(out)}},
        routes=routes,
    )
    from_node = make_alert(0)
    from_node.hostname = "node-7"
    from_node.output_fields_json = '{"proc.name":"bash"}'
    async with running(cfg) as d:
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=[from_node, make_alert(1)])])
        await wait_for(lambda: len(lines(out)) == 1)
    alert = json.loads(lines(out)[0])
    assert alert["hostname"] == "node-7"
    assert alert["output_fields"] == {"lanner.cluster": "prod-eu", "proc.name": "bash"}


def test_the_on_call_setup_in_the_docs_routes_as_described(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "outputs" / "routing.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "lanner.yaml"
    config.write_text(block.replace("/var/log/lanner/alerts.jsonl", str(tmp_path / "alerts.jsonl")))

    def reach(priority: str, ns: str) -> set[str]:
        falco = {"rule": "Terminal shell in container", "priority": priority, "output_fields": {"k8s.ns.name": ns}}
        out = io.StringIO()
        explain(str(config), json.dumps(falco), out)
        return {line.split(":")[0] for line in out.getvalue().splitlines() if ": yes" in line}

    assert reach("Critical", "prod-shop") == {"file", "slack", "pagerduty"}
    assert reach("Warning", "prod-shop") == {"file", "slack"}
    assert reach("Critical", "dev") == {"file", "slack"}
