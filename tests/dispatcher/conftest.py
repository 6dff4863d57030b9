# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dispatcher_testlib import RedisProcess, free_port


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisProcess]:
    """One real redis-server for the session; each test gets a flushed database."""
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_proc: RedisProcess) -> str:
    client = redis_proc.client()
    client.flushall()
    client.close()
    return redis_proc.url


@pytest.fixture
def bind() -> str:
    return f"127.0.0.1:{free_port()}"
