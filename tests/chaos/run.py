# SPDX-License-Identifier: Apache-2.0
"""``make chaos``: the chaos run at length, printing its table (see chaoslib for what each column means)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.chaos.chaoslib import format_table, run_chaos

STAGES = ["dispatcher", "ruleengine", "enricher", "collector", "redis"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="markers per second (default 100)")
    parser.add_argument("--markers", type=int, default=1000, help="markers before and after each kill")
    parser.add_argument("--stage", action="append", choices=STAGES, help="only these stages (repeatable)")
    parser.add_argument("--state-dir", default="", help="keep the run's state (logs, alerts) here")
    args = parser.parse_args()
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="lanner-chaos-"))
    rows = run_chaos(state / "stack", args.stage or STAGES, args.rate, args.markers)
    print(format_table(rows))
    print(f"(state, logs and alerts: {state})")
    bad = [r.stage for r in rows if r.unaccounted or r.duplicates or r.only_in_one_output]
    if bad:
        print(f"FAILED: unaccounted markers, duplicates or outputs that disagree after killing {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
