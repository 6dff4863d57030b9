# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the output tests: a sample alert and server binaries that must exist in CI."""

from __future__ import annotations

import os
import shutil
from types import MappingProxyType

import pytest

from dispatcher.model import Alert, Priority


def need_binary(name: str) -> str:
    """The path of a server binary the test runs; with CI=true a missing one fails (setup-host.sh installs it)."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed: run scripts/setup-host.sh")
        pytest.skip(f"{name} is not installed (scripts/setup-host.sh installs it)")
    return path


# One realistic alert for the payload builders.
SAMPLE = Alert(
    rule="Write below etc",
    priority=Priority.ERROR,
    source="syscall",
    tags=("filesystem", "mitre_persistence"),
    time_ns=1718000011726060287,
    output="13:53:31.726060287: Error File below /etc opened for writing (file=/etc/passwd)",
    message="File below /etc opened for writing (file=/etc/passwd)",
    hostname="node-1",
    alert_id="a1b2c3",
    output_fields=MappingProxyType(
        {"container.id": "3ad7b26ded6d", "container.name": "web", "container.image.repository": "nginx",
         "k8s.ns.name": "prod", "proc.pid": 4242, "proc.name": "vi", "proc.exepath": "/usr/bin/vi",
         "fd.name": "/etc/passwd"}
    ),
)  # fmt: skip
