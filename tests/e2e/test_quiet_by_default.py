# SPDX-License-Identifier: Apache-2.0
"""Quiet by default: routine operations on a host with containers raise no alert with Lanner's default rules.

Under `lanner up` (default rules), this runs what an ordinary day brings: docker build, docker import, docker push
and pull through a local registry (docker-registry from apt), containerd pulling and unpacking an image, apt-get
installing a package, pip installing into a venv, logrotate, and cron running the daily jobs. Then it checks that
none of it raised an alert.

Not covered: systemd starting a unit, because systemd is not pid 1 on this host (it cannot start units here).

The kernel is shared with whatever else runs on the machine, so an alert counts as caused by these operations when
it names the run's marker (every path of the run contains it), or names one of the programs these operations run
(dockerd's `exe` helper, containerd, apt, dpkg, pip, logrotate, cron...) as the process, its parent or
grandparent. Python programs are the exception to the second way (other tests rename themselves like daemons with
PR_SET_NAME; pip runs below the marked folder anyway), and so are container shims and runc: they are the parents of
every process in every container, another test's included. A sentinel alert raised after the operations proves the
pipeline has caught up.

With the upstream stable rules loaded as well (`lanner up --rules falco_rules.yaml --rules rules/lanner_rules.yaml`)
the same operations raised nothing either (checked by hand; the upstream rules file is not part of this test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanner.v1 import alert_pb2
from tests.e2e.conftest import AlertCollector, free_port
from tests.e2e.test_pipeline import docker_ready, fields
from tests.enricher.enricher_testlib import CRI_ENDPOINT

pytestmark = [pytest.mark.e2e, pytest.mark.bpf, pytest.mark.containers]

ROUTINE_PROGRAMS = {
    "exe", "dockerd", "docker", "containerd", "ctr", "docker-registry", "registry", "apt", "apt-get", "dpkg",
    "dpkg-deb", "http", "gpgv", "pip", "logrotate", "cron", "run-parts", "dpkg-db-backup", "gzip",
}  # fmt: skip
BASE = "local/busybox:latest"


def run(*cmd: str | Path, timeout: float = 120, **kw: object) -> None:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]} {out.stderr[-2000:]}"


@contextlib.contextmanager
def daemon(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def registry_up(port: int) -> bool:
    r = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/v2/"], capture_output=True, timeout=10)
    return r.returncode == 0


@pytest.fixture
def work(tmp_path: Path) -> Path:
    missing = [p for p in ("docker-registry", "logrotate", "cron", "ctr", "apt-get", "curl") if not shutil.which(p)]
    if missing:
        pytest.skip(f"missing {missing} (scripts/setup-host.sh and scripts/container-stack.sh install them)")
    if not docker_ready():
        pytest.skip("Docker engine not running (make container-stack starts one)")
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_routine_operations_raise_nothing(subscriber: AlertCollector, work: Path) -> None:
    mark = f"lanner-quiet-{uuid.uuid4().hex[:8]}"
    work = work / mark  # every path of the run (venv, registry, logrotate config) names the marker
    work.mkdir(mode=0o755)
    start = len(subscriber.alerts)
    cron_done = work / "cron-done"
    crontab = Path("/etc/cron.d") / mark.replace("-", "_")
    port = free_port()
    image = f"127.0.0.1:{port}/{mark}:latest"
    ctr = ["ctr", "--address", CRI_ENDPOINT.removeprefix("unix://"), "-n", "lanner-quiet"]
    # cron: the Debian daily jobs that matter here (account file backups, logrotate), run by a real cron daemon at
    # the next minute, while the other operations go on.
    crontab.write_text(f"* * * * * root run-parts --regex '^(dpkg|logrotate)$' /etc/cron.daily; touch {cron_done}\n")
    crontab.chmod(0o644)
    registry_conf = work / "registry.yml"
    registry_conf.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {work}/registry\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    try:
        with (
            daemon(["cron", "-f"], work / "cron.log"),
            daemon(["docker-registry", "serve", str(registry_conf)], work / "registry.log"),
        ):
            # docker build (COPY into /usr/local/bin: dockerd's helper writes it into the layer) and docker import
            ctx = work / "build"
            ctx.mkdir()
            shutil.copy("/bin/busybox", ctx / "tool")
            (ctx / "Dockerfile").write_text(f"FROM {BASE}\nCOPY tool /usr/local/bin/tool\nRUN echo {mark} > /marker\n")
            run("docker", "build", "-q", "-t", image, ctx, timeout=300)
            rootfs = work / "rootfs"
            (rootfs / "usr" / "bin").mkdir(parents=True)
            shutil.copy("/bin/busybox", rootfs / "usr" / "bin" / "busybox")
            tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
            subprocess.run(["docker", "import", "-", f"{mark}:imported"], input=tar, capture_output=True, check=True)
            # docker push and pull through the local registry (the pull unpacks the layers again)
            wait_until(lambda: registry_up(port), 30, "docker-registry")
            run("docker", "push", image)
            run("docker", "rmi", image, f"{mark}:imported")
            run("docker", "pull", image)
            # containerd pulling and unpacking the same image
            run(*ctr, "images", "pull", "--plain-http", image)
            run(*ctr, "images", "rm", image)
            # apt-get installing a package (a reinstall, so the host keeps its package set)
            run("apt-get", "install", "-y", "-q", "--reinstall", "--no-install-recommends", "busybox-static",
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=300)  # fmt: skip
            # pip installing into a venv
            run(sys.executable, "-m", "venv", work / "venv")
            run(work / "venv" / "bin" / "pip", "install", "-q", "--no-deps", "six", timeout=300)
            # logrotate with a postrotate script
            log = work / "app.log"
            log.write_text("x" * 100)
            (work / "logrotate.conf").write_text(
                f"{log} {{\n  rotate 2\n  size 1\n  compress\n  postrotate\n    /bin/true\n  endscript\n}}\n"
            )
            run("logrotate", "-s", work / "logrotate.status", work / "logrotate.conf")
            wait_until(cron_done.exists, 90, "cron to run the daily jobs")
    finally:
        crontab.unlink(missing_ok=True)
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)

    # The sentinel: once its alert is in, everything before it has gone through the pipeline.
    subprocess.run(["cat", "/etc/shadow", f"/nonexistent/{mark}"], capture_output=True)

    def sentinel(a: alert_pb2.Alert) -> bool:
        return fields(a).get("proc.name") == "cat" and mark in a.output

    subscriber.wait_for(sentinel, timeout=60)
    window = subscriber.alerts[start:]

    def ours(a: alert_pb2.Alert) -> bool:
        if sentinel(a):
            return False
        if mark in a.output:
            return True
        f = fields(a)
        if "python" in os.path.basename(str(f.get("proc.exepath") or "")):
            return False  # another test's Python naming itself like a daemon (prctl PR_SET_NAME)
        names = {str(f.get(k)) for k in ("proc.name", "proc.pname", "proc.aname[2]")}
        return bool(names & ROUTINE_PROGRAMS)

    noisy = [f"{a.rule}: {a.output}" for a in window if ours(a)]
    assert noisy == [], "\n".join(noisy)
