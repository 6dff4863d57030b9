# SPDX-License-Identifier: Apache-2.0
"""``python -m dispatcher [--config F]``."""

from __future__ import annotations

import sys

from dispatcher.cli import main

if __name__ == "__main__":
    sys.exit(main())
