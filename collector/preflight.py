# SPDX-License-Identifier: Apache-2.0
"""Checks that eBPF can run here, and says exactly what is missing and how to fix it when it cannot."""

from __future__ import annotations

import glob
import importlib
import os
import sys
from types import ModuleType

TRACEFS = "/sys/kernel/tracing"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"


class SetupError(Exception):
    """eBPF cannot run on this machine; the message lists each problem with its fix."""


def import_bcc() -> ModuleType:
    """Import bcc, also from the Debian system site-packages (python3-bpfcc) when running in a venv."""
    try:
        return importlib.import_module("bcc")
    except ImportError:
        pass
    if DIST_PACKAGES not in sys.path and os.path.isdir(DIST_PACKAGES):
        sys.path.append(DIST_PACKAGES)
    try:
        return importlib.import_module("bcc")
    except ImportError as exc:
        raise SetupError(
            "bcc (the BPF Compiler Collection's Python module) is not importable: "
            f"{exc}. Install it with: apt-get install python3-bpfcc"
        ) from None


def problems(release: str | None = None, tracefs: str = TRACEFS) -> list[str]:
    """Everything that stops the probes from loading, each with its fix; empty when all is well."""
    found: list[str] = []
    release = release or os.uname().release
    if os.geteuid() != 0:
        found.append(
            "not running as root: loading eBPF programs needs root (or CAP_BPF, CAP_PERFMON and "
            "CAP_SYS_RESOURCE). Run with sudo, or in a container with cap_add: [SYS_ADMIN]."
        )
    if not os.path.isdir(f"{tracefs}/events/syscalls"):
        if _mounted(tracefs):
            if os.geteuid() == 0:
                found.append(
                    f"tracefs at {tracefs} has no events/syscalls: the kernel lacks syscall tracepoints "
                    "(CONFIG_FTRACE_SYSCALLS)"
                )
            # Otherwise it is only unreadable for this user, which the root check above already reports.
        else:
            found.append(f"tracefs is not mounted at {tracefs}. Mount it with: mount -t tracefs tracefs {tracefs}")
    found.extend(_header_problems(release))
    try:
        import_bcc()
    except SetupError as exc:
        found.append(str(exc))
    return found


def _header_problems(release: str) -> list[str]:
    """bcc needs the kernel headers under /lib/modules/RELEASE: ``build`` (generated headers) and, on Debian where
    the package is split, ``source`` (the common headers, e.g. include/linux/kconfig.h)."""
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return []
    base = f"/lib/modules/{release}"
    kconfig = "include/linux/kconfig.h"
    have_build = os.path.isdir(f"{base}/build/include")
    have_common = os.path.exists(f"{base}/build/{kconfig}") or os.path.exists(f"{base}/source/{kconfig}")
    if have_build and have_common:
        return []
    candidates = sorted(glob.glob("/usr/src/linux-headers-*-amd64") + glob.glob("/usr/src/linux-headers-*-arm64"))
    if not candidates:
        return [
            f"kernel headers for {release} not found at {base}/build. Install them with: "
            f"apt-get install linux-headers-{release} (or linux-headers-amd64)"
        ]
    src = candidates[-1]
    common = src.rsplit("-", 1)[0] + "-common"
    steps = [f"mkdir -p {base}"]
    if not have_build:
        steps.append(f"ln -sfn {src} {base}/build")
    if not have_common and os.path.isdir(common):
        steps.append(f"ln -sfn {common} {base}/source")
    what = "kernel headers" if not have_build else "the common kernel headers (include/linux/kconfig.h)"
    return [
        f"{what} for {release} not found under {base}. Headers of another version are installed; bcc can use "
        f"them for tracepoints. Link them with: {' && '.join(steps)}"
    ]


def _mounted(path: str, mounts: str = "/proc/self/mounts") -> bool:
    try:
        with open(mounts, encoding="utf-8") as f:
            return any(line.split()[1:2] == [path] for line in f if line.strip())
    except OSError:
        return False


def check() -> None:
    """Raise SetupError listing every problem found."""
    found = problems()
    if found:
        raise SetupError("eBPF is not available:\n  - " + "\n  - ".join(found))
