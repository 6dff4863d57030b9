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
    build = f"/lib/modules/{release}/build"
    if not os.path.isdir(f"{build}/include") and not os.path.exists("/sys/kernel/kheaders.tar.xz"):
        candidates = sorted(glob.glob("/usr/src/linux-headers-*-amd64") + glob.glob("/usr/src/linux-headers-*-arm64"))
        if candidates:
            src = candidates[-1]
            common = src.rsplit("-", 1)[0] + "-common"
            fix = f"mkdir -p /lib/modules/{release} && ln -sfn {src} {build}"
            if os.path.isdir(common):
                fix += f" && ln -sfn {common} /lib/modules/{release}/source"
            found.append(
                f"kernel headers for {release} not found at {build}. Headers of another version are "
                f"installed; bcc can use them for tracepoints. Link them with: {fix}"
            )
        else:
            found.append(
                f"kernel headers for {release} not found at {build}. Install them with: "
                f"apt-get install linux-headers-{release} (or linux-headers-amd64)"
            )
    try:
        import_bcc()
    except SetupError as exc:
        found.append(str(exc))
    return found


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
