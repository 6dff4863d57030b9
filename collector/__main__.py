# SPDX-License-Identifier: Apache-2.0
"""``python -m collector [--config FILE]``."""

from __future__ import annotations

import sys

from collector.cli import main

if __name__ == "__main__":
    sys.exit(main())
