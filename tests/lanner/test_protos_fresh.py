# SPDX-License-Identifier: Apache-2.0
"""The committed generated code must match what `make protos` produces from protos/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    shutil.copytree(ROOT / "protos", copy / "protos")
    shutil.copy(ROOT / "scripts" / "gen_protos.py", copy / "scripts" / "gen_protos.py")
    subprocess.run([sys.executable, str(copy / "scripts" / "gen_protos.py")], check=True, capture_output=True)
    generated = sorted(p.relative_to(copy) for p in copy.rglob("*_pb2*.py*"))
    assert generated, "protoc produced nothing"
    stale = [
        str(rel)
        for rel in generated
        if not (ROOT / rel).exists() or not filecmp.cmp(copy / rel, ROOT / rel, shallow=False)
    ]
    assert not stale, f"generated code is stale, run `make protos`: {stale}"
