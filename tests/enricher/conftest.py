# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the enricher tests: a real redis-server per session, skips with reasons for Docker and CRI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.enricher.enricher_testlib import RedisProcess, cri_unavailable, docker_unavailable


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def docker_ready() -> None:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def cri_ready() -> None:
    reason = cri_unavailable()
    if reason:
        pytest.skip(reason)
