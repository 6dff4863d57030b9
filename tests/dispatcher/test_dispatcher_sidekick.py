# SPDX-License-Identifier: Apache-2.0
"""The Falcosidekick drop-in: alerts POSTed exactly as Falco 0.44's http_output (libcurl) sends them."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest
from dispatcher_testlib import RedisProcess, base_config, free_port, lines, running, wait_for

from dispatcher.config import DispatcherConfig
from dispatcher.sidekick import SidekickConfig

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "fixtures" / "falco_alert.json"


def curl(url: str, body: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """libcurl, configured as Falco's output_http.cpp configures it (the CLI flags map one to one)."""
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/stderr", "-w", "%{http_code}", "-X", "POST", "--data-binary", f"@{body}",
         "-H", "Content-Type: application/json", "-A", "falcosecurity/falco", *extra, url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


async def posts_ok(url: str, *extra: str) -> bool:
    """One POST of the fixture from a thread (the dispatcher serves on this test's event loop)."""
    return (await asyncio.to_thread(curl, url, FIXTURE, *extra)).stdout == "200"


def sidekick_cfg(redis_url: str, tmp_path: Path, **sidekick: object) -> tuple[DispatcherConfig, str]:
    port = free_port()
    cfg = base_config(
        redis_url,
        f"127.0.0.1:{free_port()}",
        outputs={"file": {"path": str(tmp_path / "out.jsonl")}},
        sidekick=SidekickConfig(bind=f"127.0.0.1:{port}", **sidekick),  # type: ignore[arg-type]
    )
    return cfg, f"127.0.0.1:{port}"


async def _wait_http(url: str) -> None:
    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(url + "/ping") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(up, timeout=20)


async def test_falco_http_output_payloads_are_delivered_byte_for_byte(redis_url: str, tmp_path: Path) -> None:
    cfg, addr = sidekick_cfg(redis_url, tmp_path)
    url = f"http://{addr}"
    async with running(cfg):
        await _wait_http(url)
        # json_output: true, compress_uploads: false
        res = await asyncio.to_thread(curl, url + "/", FIXTURE)
        assert res.stdout == "200", res.stderr
        # compress_uploads: true is CURLOPT_TRANSFER_ENCODING: "TE: gzip" asks for a compressed answer.
        res = await asyncio.to_thread(curl, url + "/", FIXTURE, "--tr-encoding")
        assert res.stdout == "200", res.stderr
        # A gzip-encoded body (a proxy, or another sender) is inflated.
        async with aiohttp.ClientSession() as s:
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            async with s.post(url + "/", data=gzip.compress(FIXTURE.read_bytes()), headers=headers) as r:
                assert r.status == 200, await r.text()
        await wait_for(lambda: len(lines(tmp_path / "out.jsonl")) == 3)
    # Through Lanner's queue, the file output writes exactly what Falco's own JSON output would.
    expected = FIXTURE.read_text().strip()
    assert lines(tmp_path / "out.jsonl") == [expected] * 3


async def test_health_test_and_bad_requests(redis_url: str, tmp_path: Path) -> None:
    cfg, addr = sidekick_cfg(redis_url, tmp_path, max_body_bytes=4096)
    url = f"http://{addr}"
    async with running(cfg), aiohttp.ClientSession() as s:
        await _wait_http(url)
        async with s.get(url + "/healthz") as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        async with s.post(url + "/test") as r:
            assert r.status == 200
        await wait_for(lambda: len(lines(tmp_path / "out.jsonl")) == 1)
        assert json.loads(lines(tmp_path / "out.jsonl")[0])["rule"] == "Test rule"
        bad = {"output": "x", "priority": "Warning", "time": "2024-06-10T06:13:31.726060287Z"}
        async with s.post(url + "/", json=bad) as r:
            assert r.status == 400 and "rule: missing" in await r.text()
        async with s.post(url + "/", json=bad | {"rule": "r", "priority": "Loud"}) as r:
            assert r.status == 400 and "priority: unknown priority 'Loud'" in await r.text()
        async with s.post(url + "/", data="x" * 5000, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
        async with s.post(url + "/", data="12:00:00: Warning x", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 400 and "json_output: true" in await r.text()
        async with s.post(url + "/", data="[" * 100000, headers={"Content-Type": "application/json"}) as r:
            assert r.status in (400, 413)
        async with s.get(url + "/healthz") as r:
            assert r.status == 200  # still serving


async def test_redis_down_answers_503_not_a_hang(tmp_path: Path) -> None:
    redis = RedisProcess()
    redis.start()
    cfg, addr = sidekick_cfg(redis.url, tmp_path, ack_timeout_s=1.0)
    async with running(cfg):
        await _wait_http(f"http://{addr}")
        redis.stop()
        res = await asyncio.to_thread(curl, f"http://{addr}/", FIXTURE)
        assert res.stdout == "503"
        redis.start()
        await wait_for(lambda: posts_ok(f"http://{addr}/"), timeout=30)
    redis.stop()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(tmp: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI."""
    p = {n: tmp / f"{n}.pem" for n in ("ca", "ca-key", "srv", "srv-key", "cli", "cli-key")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["ca-key"]), "-out", str(p["ca"]),
             "-days", "1", "-subj", "/CN=test-ca")  # fmt: skip
    for name, cn, ext in (("srv", "localhost", "subjectAltName=IP:127.0.0.1"), ("cli", "falco", "")):
        csr = tmp / f"{name}.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p[f"{name}-key"]), "-out", str(csr),
                 "-subj", f"/CN={cn}")  # fmt: skip
        extfile = tmp / f"{name}.ext"
        extfile.write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(p["ca"]), "-CAkey", str(p["ca-key"]),
                 "-CAcreateserial", "-out", str(p[name]), "-days", "1", "-extfile", str(extfile))  # fmt: skip
    return p


async def test_mutual_tls_as_falco_http_output_mtls(redis_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    cfg, addr = sidekick_cfg(
        redis_url, tmp_path, tls_cert=str(pki["srv"]), tls_key=str(pki["srv-key"]), client_ca=str(pki["ca"])
    )
    url = f"https://{addr}/"
    async with running(cfg):
        with_cert = ("--cacert", str(pki["ca"]), "--cert", str(pki["cli"]), "--key", str(pki["cli-key"]))
        await wait_for(lambda: posts_ok(url, *with_cert), timeout=20)
        without = await asyncio.to_thread(curl, url, FIXTURE, "--cacert", str(pki["ca"]))
        assert without.stdout != "200"
        await wait_for(lambda: len(lines(tmp_path / "out.jsonl")) == 1)
