# SPDX-License-Identifier: Apache-2.0
"""The lean Redis path (dispatcher.resp) against real Redis: the same entries, dedup and errors as redis-py's.

Every other dispatcher test runs on it too (their ``redis://`` URLs take it); these compare it with the redis-py
path it replaced, and cover what those tests do not: a Unix socket with a database number, a Redis that forgot the
persist script, a dropped connection, a reply that never comes, and the ack carried by the next read.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dispatcher_testlib import RedisProcess

from dispatcher.resp import RespConnection
from dispatcher.store import PAYLOAD_FIELD, TARGET_FIELD, AlertStore, Entry

STREAM = "lanner:test"


def _stores(url: str) -> tuple[AlertStore, AlertStore]:
    lean = AlertStore(url, STREAM, "lanner:dedup:", 60_000)
    plain = AlertStore(url, STREAM, "lanner:dedup:", 60_000)
    plain._lean, plain._cmd = False, None  # the redis-py path, as before dispatcher.resp
    return lean, plain


@pytest.fixture
def unix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server that listens on a Unix socket only; the URL selects database 3."""
    d = Path(tmp_path_factory.mktemp("r"))
    sock = d / "r.sock"
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", "0", "--unixsocket", str(sock), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert time.monotonic() < deadline, "redis-server never made its socket"
        time.sleep(0.02)
    yield f"unix://{sock}?db=3"
    proc.terminate()
    proc.wait(10)


async def _same_reads(url: str) -> None:
    lean, plain = _stores(url)
    try:
        await lean.ensure_group("g")
        items = [(f"id{i}", f"payload {i}".encode()) for i in range(40)] + [("", b"no identity")]
        assert await lean.persist(items) == 41
        assert await lean.persist(items[:10]) == 0  # the dedup window holds
        assert await plain.persist(items[10:20]) == 0  # the same keys, whichever path wrote them
        r = lean.redis
        await r.xadd(STREAM, {PAYLOAD_FIELD: b"digest", TARGET_FIELD: b"file", b"n": b"3"})
        assert await lean.read_range("0-0", 100) == await plain.read_range("0-0", 100)
        first = (await lean.read_range("0-0", 1))[0].id.decode()
        assert await lean.read_range(first, 5, inclusive=True) == await plain.read_range(first, 5, inclusive=True)
        assert await lean.read_after(first, 100, 10) == await plain.read_after(first, 100, 10)
        got = await lean.read_group("g", "c1", ">", 100, 10)
        assert [e.payload for e in got[:41]] == [p for _, p in items]
        assert got[-1] == Entry(
            got[-1].id, b"digest", "file", {PAYLOAD_FIELD: b"digest", TARGET_FIELD: b"file", b"n": b"3"}
        )
        # The same pending list, either path; then the ack rides with the next read and empties it.
        assert await lean.read_group("g", "c1", "0", 100, 0) == await plain.read_group("g", "c1", "0", 100, 0) == got
        assert await lean.read_group("g", "c1", "0", 100, 0, ack=[e.id for e in got[:30]]) == got[30:]
        assert await lean.read_group("g", "c1", ">", 100, 10, ack=[e.id for e in got[30:]]) == []
        assert await lean.read_group("g", "c1", "0", 100, 0) == []
        # A pending entry trimmed away comes back without its payload, as redis-py gives it.
        await lean.persist([("late", b"late")])
        [late] = await lean.read_group("g", "c1", ">", 10, 10)
        await r.xdel(STREAM, late.id)
        assert await lean.read_group("g", "c1", "0", 10, 0) == [Entry(late.id, None)]
        assert await plain.read_group("g", "c1", "0", 10, 0) == [Entry(late.id, None)]
    finally:
        await lean.close()
        await plain.close()


async def test_lean_reads_equal_redis_py_over_tcp(redis_url: str) -> None:
    await _same_reads(redis_url)


async def test_lean_reads_equal_redis_py_over_a_unix_socket_and_its_database(unix_url: str) -> None:
    await _same_reads(unix_url)
    sock = unix_url.removeprefix("unix://").split("?")[0]
    assert redis.Redis(unix_socket_path=sock, db=3).xlen(STREAM) == 42
    assert redis.Redis(unix_socket_path=sock, db=0).exists(STREAM) == 0


async def test_dedup_holds_across_a_restart_and_a_forgotten_script(redis_url: str) -> None:
    first, _ = _stores(redis_url)
    assert await first.persist([("a", b"1"), ("b", b"2")]) == 2
    await first.close()
    # Redis lost its script cache (a restart, SCRIPT FLUSH): EVALSHA says NOSCRIPT, the store runs EVAL instead.
    redis.Redis.from_url(redis_url).script_flush()
    again, _ = _stores(redis_url)
    try:
        assert await again.persist([("a", b"1"), ("c", b"3")]) == 1
        assert await again.persist([("c", b"3"), ("d", b"4")]) == 1
        assert [e.payload for e in await again.read_range("0-0", 10)] == [b"1", b"2", b"3", b"4"]
    finally:
        await again.close()


async def test_a_missing_group_is_recreated_and_read_from_the_start(redis_url: str) -> None:
    store, _ = _stores(redis_url)
    try:
        await store.persist([("a", b"1")])
        assert await store.read_group("nogroup", "c", ">", 10, 10) == []  # NOGROUP: recreated at "0"
        assert [e.payload for e in await store.read_group("nogroup", "c", ">", 10, 10)] == [b"1"]
    finally:
        await store.close()


async def test_a_dropped_connection_fails_the_call_and_the_next_one_reconnects(redis_url: str) -> None:
    conn = RespConnection(redis_url)
    try:
        assert await conn.call("PING") == b"PONG"
        redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)
        with pytest.raises(redis.ConnectionError):
            await conn.call("BLPOP", "nothing", 30)
        assert await conn.call("PING") == b"PONG"
        with pytest.raises(redis.ResponseError, match="unknown command"):
            await conn.call("NOSUCHCOMMAND")
        assert await conn.pipeline([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]
    finally:
        await conn.close()


async def test_a_reply_that_never_comes_times_out_and_the_connection_is_replaced(redis_url: str) -> None:
    conn = RespConnection(redis_url, timeout=0.05)
    try:
        with pytest.raises(redis.TimeoutError):
            await conn.call("BLPOP", "nothing", 5)
        # The late BLPOP reply can never be taken for this one's: a new connection answers.
        assert await conn.call("PING") == b"PONG"
    finally:
        await conn.close()


async def test_an_unreachable_redis_is_a_connection_error() -> None:
    conn = RespConnection(RedisProcess().url)  # a free port nobody listens on
    with pytest.raises(redis.ConnectionError, match="cannot connect"):
        await conn.call("PING")
