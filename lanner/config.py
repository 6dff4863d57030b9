# SPDX-License-Identifier: Apache-2.0
"""Configuration: one YAML file with a section per service, environment overrides, validated at start-up.

``load_section("enricher", EnricherConfig, "lanner.yaml")`` reads the ``enricher:`` mapping into the frozen
dataclass ``EnricherConfig``. ``LANNER_ENRICHER__REDIS_URL=...`` overrides ``enricher.redis_url`` (nested keys
join with ``__``; values are parsed as YAML scalars, so ``true``/``5``/``[a, b]`` work). An unknown key or a value
of the wrong type raises ``ConfigError`` naming the file and the key path, so a typo never goes unnoticed.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
ENV_PREFIX = "LANNER_"
# Sections every service may find in the shared file; unknown top-level sections are errors too.
KNOWN_SECTIONS = frozenset({"collector", "enricher", "ruleengine", "dispatcher", "up"})


class ConfigError(Exception):
    """A configuration problem, with the file and key path in the message."""


def _describe(origin: str, path: str) -> str:
    return f"{origin}: {path}" if path else origin


def _coerce(value: Any, hint: Any, origin: str, path: str) -> Any:
    """Check/convert ``value`` against the type hint ``hint``; raise ConfigError naming the key."""
    origin_type = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin_type in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors: list[str] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, origin, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{_describe(origin, path)}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_describe(origin, path)}: expected a mapping, got {type(value).__name__}")
        return build(hint, value, origin, path)
    if origin_type is tuple:
        items = value if isinstance(value, list | tuple) else None
        if items is None:
            raise ConfigError(f"{_describe(origin, path)}: expected a list, got {type(value).__name__}")
        elem = args[0] if args else Any
        return tuple(_coerce(v, elem, origin, f"{path}[{i}]") for i, v in enumerate(items))
    if origin_type in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_describe(origin, path)}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return types.MappingProxyType({str(k): _coerce(v, vt, origin, f"{path}.{k}") for k, v in value.items()})
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{_describe(origin, path)}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{_describe(origin, path)}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{_describe(origin, path)}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{_describe(origin, path)}: expected a string, got {value!r}")
    return value


def build(schema: type[T], data: Mapping[str, Any], origin: str = "<config>", path: str = "") -> T:
    """Build the dataclass ``schema`` from a mapping, rejecting unknown keys."""
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"{schema!r} is not a dataclass")
    hints = typing.get_type_hints(schema)
    known = {f.name: f for f in dataclasses.fields(schema) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        key_path = f"{path}.{key}" if path else str(key)
        if name not in known:
            suggestion = _closest(name, known)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise ConfigError(f"{origin}: {key_path}: unknown key{hint}")
        kwargs[name] = _coerce(value, hints[name], origin, key_path)
    try:
        return schema(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_describe(origin, path)}: {exc}") from None


def _closest(name: str, known: Mapping[str, object]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and minimally validate the whole config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    for section in data:
        if section not in KNOWN_SECTIONS:
            raise ConfigError(f"{p}: {section}: unknown section (expected one of {', '.join(sorted(KNOWN_SECTIONS))})")
    return data


def _env_overrides(section: str, env: Mapping[str, str]) -> dict[str, Any]:
    prefix = f"{ENV_PREFIX}{section.upper()}__"
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(prefix):
            continue
        parts = [p.lower() for p in key[len(prefix) :].split("__") if p]
        if not parts:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_section(section: str, schema: type[T], path: str | None = None, env: Mapping[str, str] | None = None) -> T:
    """Load one service's section from ``path`` (optional) plus ``LANNER_<SECTION>__*`` environment overrides."""
    env = os.environ if env is None else env
    path = path or env.get("LANNER_CONFIG") or None
    data: dict[str, Any] = {}
    origin = "<defaults>"
    if path:
        whole = read_file(path)
        raw = whole.get(section) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: {section}: expected a mapping")
        data = raw
        origin = str(path)
    overrides = _env_overrides(section, env)
    if overrides:
        data = _merge(data, overrides)
        origin = f"{origin} (+ {ENV_PREFIX}{section.upper()}__* environment)"
    return build(schema, data, origin, section)
