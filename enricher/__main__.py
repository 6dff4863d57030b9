# SPDX-License-Identifier: Apache-2.0
"""``python -m enricher [--config FILE]``."""

from __future__ import annotations

import sys

from enricher.cli import main

if __name__ == "__main__":
    sys.exit(main())
