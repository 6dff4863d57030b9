# SPDX-License-Identifier: Apache-2.0
"""``python -m ruleengine [--config FILE] [--rules FILE]...``."""

from __future__ import annotations

import sys

from lanner.cli import main

if __name__ == "__main__":
    sys.exit(main(["ruleengine", *sys.argv[1:]]))
