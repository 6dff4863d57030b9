# SPDX-License-Identifier: Apache-2.0
"""``file``: append one line per alert to a file, Falco's JSON alert by default (JSON lines).

As in Falco's file output, the file is opened for each alert unless ``keep_alive`` is set; with ``keep_alive``
it stays open and SIGUSR1 reopens it (for log rotation). Each line is flushed before the alert counts as
delivered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from dispatcher.falco_format import safe_line
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output


@dataclass(frozen=True, slots=True)
class FileConfig:
    """Settings of the file output."""

    path: str = "./lanner-alerts.jsonl"
    # Keep the file open between alerts (reopened on SIGUSR1) instead of opening it per alert.
    keep_alive: bool = False
    # Falco JSON lines (default) or Falco text lines.
    json_output: bool = True
    # Also fsync after each line: survives a host crash, at a large cost in throughput.
    fsync: bool = False

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path: must not be empty")


def build_file_line(alert: Alert, cfg: FileConfig, ctx: OutputContext) -> bytes:
    """The bytes appended for the alert, newline included."""
    text = safe_line(alert, cfg.json_output, ctx.json, ctx.hostname)
    return (text + "\n").encode("utf-8", "replace")


def _whole_lines(lines: Sequence[bytes], written: int) -> int:
    """How many of ``lines``, from the first, lie within the first ``written`` bytes."""
    done = 0
    for line in lines:
        written -= len(line)
        if written < 0:
            break
        done += 1
    return done


@register_output("file")
class FileOutput:
    """Appends alert lines to ``path``."""

    Config: ClassVar[type[FileConfig]] = FileConfig

    def __init__(self, config: FileConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._fd: int | None = None

    def _open(self) -> int:
        return os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _write(self, fd: int, data: bytes) -> None:
        # O_APPEND writes of one line are atomic on local filesystems, so concurrent writers never interleave.
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if self.config.fsync:
            os.fsync(fd)

    async def send(self, alert: Alert) -> None:
        """Append the alert's line; an unwritable file raises OSError and the driver retries."""
        data = build_file_line(alert, self.config, self.ctx)
        if not self.config.keep_alive:
            fd = self._open()
            try:
                self._write(fd, data)
            finally:
                os.close(fd)
            return
        if self._fd is None:
            self._fd = self._open()
        try:
            self._write(self._fd, data)
        except OSError:
            # Drop the descriptor so the retry reopens the file (it may have been replaced or its disk fixed).
            await self.close()
            raise

    async def send_batch(self, alerts: Sequence[Alert]) -> int:
        """Append the alerts' lines in one write; on an error, return how many whole lines went out before it."""
        lines = [build_file_line(alert, self.config, self.ctx) for alert in alerts]
        fd = self._fd
        written = 0
        try:
            if fd is None:
                fd = self._open()
                if self.config.keep_alive:
                    self._fd = fd
            view = memoryview(b"".join(lines))
            while view:
                n = os.write(fd, view)
                written += n
                view = view[n:]
            if self.config.fsync:
                os.fsync(fd)
        except OSError:
            if self.config.keep_alive:
                await self.close()  # the driver's retry of the rest reopens the file
            elif fd is not None:
                os.close(fd)
            # With fsync a line counts only once it is synced, and none was.
            return 0 if self.config.fsync else _whole_lines(lines, written)
        if not self.config.keep_alive:
            os.close(fd)
        return len(lines)

    async def reopen(self) -> None:
        """Close the kept-open file; the next alert opens ``path`` afresh (SIGUSR1, log rotation)."""
        await self.close()

    async def close(self) -> None:
        """Close the file if open."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
