# SPDX-License-Identifier: Apache-2.0
"""lanner.example.yaml documents every setting: it must validate, and name every key of every service."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import yaml

from dispatcher import config as dispatcher_config
from lanner.up import CONFIG_SCHEMAS, check_configs

EXAMPLE = Path(__file__).resolve().parents[2] / "lanner.example.yaml"


def test_example_config_validates() -> None:
    check_configs(str(EXAMPLE))
    dispatcher_config.load(str(EXAMPLE))  # also builds every configured output


def test_example_config_names_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    for section, (module, cls) in CONFIG_SCHEMAS.items():
        schema = getattr(importlib.import_module(module), cls)
        missing = {f.name for f in dataclasses.fields(schema) if f.init} - set(data[section])
        assert not missing, f"{section}: {sorted(missing)} missing from lanner.example.yaml"
