# SPDX-License-Identifier: Apache-2.0
"""Falco rule priorities (the shared ``lanner.priority.Priority``)."""

from __future__ import annotations

from lanner.priority import Priority

__all__ = ["Priority"]
