# SPDX-License-Identifier: Apache-2.0
"""``stdout``: one line per alert on standard output, as Falco prints it (text, or JSON with json_output)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TextIO

from dispatcher.falco_format import safe_line
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output


@dataclass(frozen=True, slots=True)
class StdoutConfig:
    """Settings of the stdout output."""

    # Print Falco's JSON alert instead of the text line.
    json_output: bool = False


def build_stdout_line(alert: Alert, cfg: StdoutConfig, ctx: OutputContext) -> str:
    """The line printed for the alert, without the newline."""
    return safe_line(alert, cfg.json_output, ctx.json, ctx.hostname)


@register_output("stdout")
class StdoutOutput:
    """Writes each alert line to stdout and flushes, so a pipe reader sees it at once."""

    Config: ClassVar[type[StdoutConfig]] = StdoutConfig

    def __init__(self, config: StdoutConfig, ctx: OutputContext, stream: TextIO | None = None) -> None:
        self.config = config
        self.ctx = ctx
        self._stream = stream

    async def send(self, alert: Alert) -> None:
        """Print the alert."""
        out = self._stream or sys.stdout
        out.write(build_stdout_line(alert, self.config, self.ctx) + "\n")
        out.flush()

    async def send_batch(self, alerts: Sequence[Alert]) -> int:
        """Print the alerts with one write and one flush (on an error the driver sends them one by one)."""
        out = self._stream or sys.stdout
        out.write("".join([build_stdout_line(alert, self.config, self.ctx) + "\n" for alert in alerts]))
        out.flush()
        return len(alerts)

    async def close(self) -> None:
        """Flush what is buffered."""
        (self._stream or sys.stdout).flush()
