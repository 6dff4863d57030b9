# SPDX-License-Identifier: Apache-2.0
"""elasticsearch output: bulk NDJSON, daily index, idempotent ids, and per-item status handling."""

from __future__ import annotations

import json

import pytest
from dispatcher_testlib import RedisProcess, base_config, make_alert, push, running, wait_for
from fakeapi import FakeApi, Request
from outputs_testlib import SAMPLE

from dispatcher.outputs.elasticsearch import (
    ElasticsearchConfig,
    build_bulk_body,
    check_bulk_response,
    index_name,
)
from dispatcher.registry import OutputContext, PermanentError
from lanner.v1 import alert_pb2

CTX = OutputContext(hostname="fallback")


def test_bulk_body() -> None:
    cfg = ElasticsearchConfig(url="http://es:9200")
    body = build_bulk_body(SAMPLE, cfg, CTX)
    assert body.endswith(b"\n") and body.count(b"\n") == 2
    action, doc = (json.loads(x) for x in body.splitlines())
    assert action == {"create": {"_index": "lanner-2024.06.10", "_id": "a1b2c3"}}
    assert doc["@timestamp"] == "2024-06-10T06:13:31.726060287Z" and doc["rule"] == "Write below etc"
    assert index_name(SAMPLE, ElasticsearchConfig(url="http://es", index_date_format="")) == "lanner"
    with pytest.raises(ValueError, match="index"):
        ElasticsearchConfig(url="http://es", index="Bad Name")


def test_item_status() -> None:
    def resp(status: int, err: str = "") -> str:
        item: dict[str, object] = {"_index": "i", "_id": "x", "status": status}
        if err:
            item["error"] = {"type": err, "reason": "why"}
        return json.dumps({"took": 1, "errors": status >= 300, "items": [{"create": item}]})

    check_bulk_response(resp(201))
    check_bulk_response(resp(409, "version_conflict_engine_exception"))  # indexed by an earlier attempt
    with pytest.raises(PermanentError, match="mapper_parsing_exception"):
        check_bulk_response(resp(400, "mapper_parsing_exception"))
    with pytest.raises(RuntimeError, match="429"):
        check_bulk_response(resp(429, "es_rejected_execution_exception"))


class FakeCluster:
    """The bulk API as documented: NDJSON pairs, each line ending in a newline; 200 with per-item statuses."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, object]] = {}
        self.busy_once = True

    def bulk(self, req: Request) -> tuple[list[str], int, object]:
        problems: list[str] = []
        if not req.headers.get("Content-Type", "").startswith("application/x-ndjson"):
            problems.append("Content-Type: expected application/x-ndjson")
        if not req.body.endswith(b"\n"):
            problems.append("the last line must end with a newline")
        if req.headers.get("Authorization") != "ApiKey c2VjcmV0":
            return ["Authorization"], 401, None
        lines = req.body.splitlines()
        items = []
        for action_line, doc_line in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = json.loads(action_line).items()
            doc = json.loads(doc_line)
            key = (meta["_index"], meta["_id"])
            if op != "create":
                problems.append(f"op {op}")
            if doc.get("rule") == "Unmappable":
                items.append({op: {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}})
            elif self.busy_once:
                self.busy_once = False
                items.append({op: {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                                             "reason": "queue full"}}})  # fmt: skip
            elif key in self.docs:
                items.append({op: {"status": 409, "error": {"type": "version_conflict_engine_exception",
                                                             "reason": "exists"}}})  # fmt: skip
            else:
                self.docs[key] = doc
                items.append({op: {"_index": key[0], "_id": key[1], "status": 201, "result": "created"}})
        errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
        return problems, 200, {"took": 3, "errors": errors, "items": items}


@pytest.mark.integration
async def test_indexed_through_dispatcher(fake_api: FakeApi, redis_url: str, bind: str,
                                          redis_proc: RedisProcess) -> None:  # fmt: skip
    cluster = FakeCluster()
    fake_api.route("POST", "/_bulk", cluster.bulk)
    cfg = base_config(redis_url, bind, outputs={"elasticsearch": {"url": fake_api.base, "api_key": "c2VjcmV0",
                                                                  "backoff_initial_s": 0.01}})  # fmt: skip
    r = redis_proc.client()
    async with running(cfg) as d:
        alerts = [make_alert(0), make_alert(1), make_alert(2, rule="Unmappable")]
        await push(d.target, [alert_pb2.AlertBatch(batch_seq=1, alerts=alerts)])
        await wait_for(lambda: len(cluster.docs) == 2 and r.xlen(f"{cfg.stream}:dead") == 1)
    assert not fake_api.refused
    assert sorted(cluster.docs) == [("lanner-2024.06.10", "alert-0"), ("lanner-2024.06.10", "alert-1")]
    assert b"mapper_parsing_exception" in r.xrange(f"{cfg.stream}:dead")[0][1][b"error"]
    r.close()
