# SPDX-License-Identifier: Apache-2.0
"""The ctypes mirror in collector.layout must match bpf/lanner_events.h byte for byte."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from collector import layout


def _c_probe_source() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", f'#include "{layout.HEADER_PATH}"', "int main(void) {"]
    for cls, cname in layout.C_NAMES.items():
        lines.append(f'printf("{cname} sizeof %zu\\n", sizeof(struct {cname}));')
        for fname, _ in cls._fields_:
            lines.append(f'printf("{cname} {fname} %zu\\n", offsetof(struct {cname}, {fname}));')
    lines.append("return 0; }")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], int]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    d: Path = tmp_path_factory.mktemp("layout")
    src = d / "probe.c"
    src.write_text(_c_probe_source())
    exe = d / "probe"
    subprocess.run([gcc, "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    result: dict[tuple[str, str], int] = {}
    for line in out.splitlines():
        struct_name, field, value = line.split()
        result[(struct_name, field)] = int(value)
    return result


def test_sizes_and_offsets_match_header(c_layout: dict[tuple[str, str], int]) -> None:
    for cls, cname in layout.C_NAMES.items():
        assert ctypes.sizeof(cls) == c_layout[(cname, "sizeof")], cname
        for fname, _ in cls._fields_:
            assert getattr(cls, fname).offset == c_layout[(cname, fname)], f"{cname}.{fname}"


def test_struct_formats_have_ctypes_sizes() -> None:
    for cls in layout.C_NAMES:
        assert layout.struct_of(cls).size == ctypes.sizeof(cls)


def test_constants_match_header() -> None:
    text = layout.HEADER_PATH.read_text()
    defines = dict(re.findall(r"#define LANNER_(\w+) (\d+)", text))
    assert defines, "no #define found"
    for name, value in defines.items():
        assert getattr(layout, name) == int(value), name


def test_generic_body_format() -> None:
    assert layout.GENERIC.size == ctypes.sizeof(layout.GenericBody)
