# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the output tests: the local fake of outside APIs."""

from __future__ import annotations

from fakeapi import fake_api as fake_api
