# SPDX-License-Identifier: Apache-2.0
"""The output contract and the registry outputs add themselves to.

An output is one module under ``dispatcher/outputs/``: a frozen config dataclass, a pure payload builder and a
class decorated with ``@register_output("name")``. Everything else (routing, retries, metrics, limits) is the
driver's job, so an output only turns an alert into a delivery.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from dispatcher.falco_format import DEFAULT_JSON, JsonOptions
from dispatcher.model import Alert


class PermanentError(Exception):
    """The destination refused the alert for good (bad request, bad credentials); retrying cannot help."""


class RetryLater(Exception):
    """The destination asked to be left alone for a while (HTTP 429/503 with Retry-After)."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


@runtime_checkable
class Output(Protocol):
    """A destination for alerts. ``send`` returns only once the destination accepted the alert."""

    async def send(self, alert: Alert) -> None:
        """Deliver one alert; raise PermanentError if it can never succeed, anything else to retry."""
        ...

    async def close(self) -> None:
        """Release files, processes and connections."""
        ...


@runtime_checkable
class BatchOutput(Protocol):
    """Outputs that deliver many alerts in one operation (one write for a batch) implement this too."""

    async def send_batch(self, alerts: Sequence[Alert]) -> int:
        """Deliver the alerts in order; return how many, from the first, the destination accepted. The driver
        sends the rest one by one through ``send``, with its retries and dead letters."""
        ...


@runtime_checkable
class Reopenable(Protocol):
    """Outputs holding a file or process implement this to honour SIGUSR1 (log rotation)."""

    async def reopen(self) -> None:
        """Close and reopen the underlying file or process."""
        ...


@runtime_checkable
class Background(Protocol):
    """Outputs with work of their own (resolving quiet incidents) implement this; the driver runs it beside them."""

    async def run(self) -> None:
        """Run until cancelled."""
        ...


@dataclass(frozen=True, slots=True)
class OutputContext:
    """What every output may need beyond its own config."""

    hostname: str = ""
    json: JsonOptions = field(default=DEFAULT_JSON)
    # Where outputs keep shared state (open incidents), so it survives restarts and replicas share it.
    redis_url: str = ""
    state_prefix: str = "lanner:alerts:state:"


@dataclass(frozen=True, slots=True)
class OutputType:
    """A registered output: its name, its config dataclass and how to build it."""

    name: str
    config_cls: type[Any]
    factory: Callable[[Any, OutputContext], Output]


class RegistryError(Exception):
    """Two outputs claimed the same name, or an output class is malformed."""


_REGISTRY: dict[str, OutputType] = {}
C = TypeVar("C", bound=type)


def register_output(name: str) -> Callable[[C], C]:
    """Class decorator: make the output available as ``outputs: {<name>: {...}}`` in the config."""

    def deco(cls: C) -> C:
        if name in _REGISTRY:
            raise RegistryError(f"output {name!r} is registered twice ({_REGISTRY[name].factory!r} and {cls!r})")
        config_cls = getattr(cls, "Config", None)
        if not isinstance(config_cls, type):
            raise RegistryError(f"output {name!r}: {cls.__name__} has no Config dataclass")
        _REGISTRY[name] = OutputType(name, config_cls, cls)
        return cls

    return deco


def unregister_output(name: str) -> None:
    """Remove an output (tests register throwaway outputs)."""
    _REGISTRY.pop(name, None)


def load_builtin_outputs() -> None:
    """Import every module of ``dispatcher.outputs`` so their ``@register_output`` lines run."""
    import dispatcher.outputs as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def registered_outputs() -> Mapping[str, OutputType]:
    """The registered outputs by name (built-ins are loaded first)."""
    load_builtin_outputs()
    return dict(_REGISTRY)
