# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: a decoder over an isolated process table (its /proc is an empty directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cgroups import CgroupMap
from collector.decode import Decoder, Identity
from collector.procfs import BootClock
from collector.proctable import ProcessTable
from collector.users import UserDb


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n"
        "+compat:x:2000:2000::/:/bin/sh\n"
    )
    (root / "etc/group").write_text("root:x:0:\nstaff:x:1000:alice\n")
    return root


@pytest.fixture
def table(tmp_path: Path, host_root: Path) -> ProcessTable:
    proc_root = tmp_path / "proc"
    proc_root.mkdir()
    users = UserDb(host_mntns=1, proc_root=str(proc_root), host_root=str(host_root))
    return ProcessTable(
        users, CgroupMap(cgroup2_root="", proc_root=str(proc_root)), BootClock(), proc_root=str(proc_root)
    )


@pytest.fixture
def decoder(table: ProcessTable) -> Decoder:
    return Decoder(table, Identity(node="node-a", boot_id="boot-1", producer_id="prod-1"))
