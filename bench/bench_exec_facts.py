# SPDX-License-Identifier: Apache-2.0
"""Short-lived processes: how many exec events carry their executable facts, and the collector's CPU per event,
with the process facts read in the kernel (BTF offsets) and without (read from /proc after the exec).

A child shell starts /bin/true in a loop; every process exits within about a millisecond of its exec.

    sudo .venv/bin/python bench/bench_exec_facts.py [--processes 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from collector.source import BpfProbe, KernelSource


def run(use_btf: bool, n: int) -> None:
    # Not excluding itself: the load is this process's child.
    src = KernelSource(BpfProbe(ring_buffer_pages=1024, exclude_self=False, use_btf=use_btf))
    src.start()
    src.poll()
    load = subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"])
    cpu = 0.0
    events = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        t0 = time.process_time()
        got = src.poll()
        cpu += time.process_time() - t0
        events.extend(e for e in got if e.type in ("execve", "procexit", "clone") and e.proc.comm == "true")
        if load.poll() is not None and not got:
            break
        time.sleep(0.001)
    src.close()
    execs = [e for e in events if e.type == "execve" and e.res == 0]
    with_facts = sum(1 for e in execs if e.proc.exe_ino is not None and e.proc.cap_effective is not None)
    per = cpu / max(1, len(execs)) * 1e6  # every event of the run (fork, exec, opens, exit...) per process
    mode = "kernel (BTF)" if use_btf else "/proc after exec"
    print(
        f"{mode:18s} execs={len(execs):5d} with exe inode+caps={with_facts / max(1, len(execs)):6.1%} "
        f"collector CPU per process started={per:6.1f} us"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--processes", type=int, default=2000)
    args = ap.parse_args()
    for use_btf in (True, False):
        run(use_btf, args.processes)


if __name__ == "__main__":
    main()
