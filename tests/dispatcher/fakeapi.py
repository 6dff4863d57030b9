# SPDX-License-Identifier: Apache-2.0
"""A local HTTP server standing in for an outside SaaS API: it checks each request against the documented payload.

Each route gets a checker that returns a list of problems with the request (empty: valid) and the answer to
give; invalid requests are answered 400 (or the checker's own 4xx) with the problems, so a payload that strays
from the documentation never counts as delivered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A checker gets the request and returns (problems, status, response body).
Checker = Callable[[Request], tuple[list[str], int, Any]]


@dataclass
class FakeApi:
    base: str = ""
    routes: dict[tuple[str, str], Checker] = field(default_factory=dict)
    accepted: list[Request] = field(default_factory=list)
    refused: list[tuple[Request, list[str]]] = field(default_factory=list)

    def route(self, method: str, path: str, checker: Checker) -> None:
        self.routes[(method, path)] = checker

    def accepted_on(self, path: str) -> list[Request]:
        return [r for r in self.accepted if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        req = Request(request.method, request.path, dict(request.query), dict(request.headers), await request.read())
        checker = self.routes.get((req.method, req.path))
        if checker is None:
            self.refused.append((req, ["no such route"]))
            return web.Response(status=404, text="not found")
        try:
            problems, status, answer = checker(req)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            problems, status, answer = [f"malformed: {type(exc).__name__}: {exc}"], 400, None
        if problems:
            self.refused.append((req, problems))
            return web.json_response({"problems": problems}, status=status if status >= 400 else 400)
        self.accepted.append(req)
        if answer is None:
            return web.Response(status=status)
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    api = FakeApi()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield api
    await runner.cleanup()


def require(obj: Any, key: str, kind: type | tuple[type, ...], problems: list[str], max_len: int | None = None) -> Any:
    """Check ``obj[key]`` exists with the type (and length) the documentation gives; note a problem otherwise."""
    if not isinstance(obj, dict) or key not in obj:
        problems.append(f"{key}: missing")
        return None
    value = obj[key]
    if not isinstance(value, kind):
        problems.append(f"{key}: expected {kind}, got {type(value).__name__}")
    elif max_len is not None and len(value) > max_len:
        problems.append(f"{key}: longer than {max_len}")
    return value
