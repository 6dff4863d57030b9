# SPDX-License-Identifier: Apache-2.0
"""Regenerate the Python code for every .proto under protos/ (make protos).

Generated modules land next to the handwritten common package (protos/lanner/v1/x.proto ->
lanner/v1/x_pb2.py), so their own imports (`from lanner.v1 import event_pb2`) resolve without rewriting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def main() -> int:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        f"--mypy_out={ROOT}",
        f"--mypy_grpc_out={ROOT}",
        *sources,
    ]
    # protoc finds the mypy plugins on PATH; make the running interpreter's bin directory visible.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    rc = protoc.main(args)
    if rc != 0:
        print("protoc failed", file=sys.stderr)
        return int(rc)
    for proto in sources:
        package_dir = ROOT / Path(proto).parent
        init = package_dir / "__init__.py"
        if not init.exists():
            init.write_text("# Generated protobuf package: regenerate with `make protos`, never edit.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
