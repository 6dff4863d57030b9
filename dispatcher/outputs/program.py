# SPDX-License-Identifier: Apache-2.0
"""``program``: pipe each alert line into a command, as Falco's program output does.

Without ``keep_alive`` the command runs once per alert: the line is written to its stdin, stdin is closed, and
the alert counts as delivered when the command exits with status 0 (any other status is retried). With
``keep_alive`` one long-running process reads every line; it is restarted if it dies, and on SIGUSR1.

Alert data is only ever written to the command's stdin, never put on its command line, so shell metacharacters
in an alert are inert. ``program`` is run by ``/bin/sh -c`` as in Falco (the command itself is trusted config);
``args`` runs an argv list directly, with no shell at all. A command that exits without reading its input is
judged by its exit status alone, not retried for the pipe it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import ClassVar

from dispatcher.falco_format import safe_line
from dispatcher.model import Alert
from dispatcher.registry import OutputContext, register_output


@dataclass(frozen=True, slots=True)
class ProgramConfig:
    """Settings of the program output."""

    # Run with /bin/sh -c, e.g. "jq '{text: .output}' | curl -d @- -X POST https://hooks.example/x".
    program: str = ""
    # Or an argv list run directly, without a shell: ["/usr/bin/logger", "-t", "lanner"].
    args: tuple[str, ...] = ()
    keep_alive: bool = False
    json_output: bool = False

    def __post_init__(self) -> None:
        if bool(self.program.strip()) == bool(self.args):
            raise ValueError("program: a command is required (give either program or args, not both)")

    @property
    def label(self) -> str:
        """The command as logs and errors name it."""
        return self.program or " ".join(self.args)


def build_program_line(alert: Alert, cfg: ProgramConfig, ctx: OutputContext) -> bytes:
    """The bytes written to the program's stdin for an alert, newline included."""
    text = safe_line(alert, cfg.json_output, ctx.json, ctx.hostname)
    return (text + "\n").encode("utf-8", "replace")


async def _spawn(cfg: ProgramConfig) -> asyncio.subprocess.Process:
    # Its own process group, so a kill reaches the whole pipeline the shell started, not just the shell.
    if cfg.args:
        return await asyncio.create_subprocess_exec(*cfg.args, stdin=asyncio.subprocess.PIPE, start_new_session=True)
    return await asyncio.create_subprocess_shell(cfg.program, stdin=asyncio.subprocess.PIPE, start_new_session=True)


async def _write(stdin: asyncio.StreamWriter, data: bytes) -> bool:
    """Write to a child's stdin; False if the child closed it (exited, or closed its input) first.

    The event loop closes the pipe transport as soon as it sees the child's end go; writing then raises
    RuntimeError (uvloop) or BrokenPipeError, and checking ``is_closing`` first avoids the common case.
    """
    if stdin.is_closing():
        return False
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return False
    except RuntimeError:
        if stdin.is_closing():
            return False
        raise
    return True


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def _reap(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        await _kill(proc)


@register_output("program")
class ProgramOutput:
    """Feeds alert lines to a command's stdin."""

    Config: ClassVar[type[ProgramConfig]] = ProgramConfig

    def __init__(self, config: ProgramConfig, ctx: OutputContext) -> None:
        self.config = config
        self.ctx = ctx
        self._proc: asyncio.subprocess.Process | None = None

    async def send(self, alert: Alert) -> None:
        """Deliver one line; a failed command or a dead long-running process raises so the driver retries."""
        line = build_program_line(alert, self.config, self.ctx)
        if self.config.keep_alive:
            await self._send_kept(line)
        else:
            await self._send_once(line)

    async def _send_once(self, line: bytes) -> None:
        proc = await _spawn(self.config)
        assert proc.stdin is not None
        try:
            # A command that ignores its input (``echo hit >> log``) may be gone before the write: that is its
            # choice, and its exit status says whether it worked.
            await _write(proc.stdin, line)
            proc.stdin.close()
            await proc.wait()
        except BaseException:
            # Timed out or cancelled: do not leave the command behind.
            await _kill(proc)
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"program {self.config.label!r} exited with status {proc.returncode}")

    async def _send_kept(self, line: bytes) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            if proc is not None:
                self._proc = None
                raise RuntimeError(f"program {self.config.label!r} exited with status {proc.returncode}")
            proc = self._proc = await _spawn(self.config)
        assert proc.stdin is not None
        if not await _write(proc.stdin, line):
            await self.close()
            raise RuntimeError(f"program {self.config.label!r} stopped reading its input")

    async def reopen(self) -> None:
        """Restart the long-running process (it is started again with the next alert)."""
        await self.close()

    async def close(self) -> None:
        """Close the long-running process's stdin and wait for it to finish."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.wait_closed()
        await _reap(proc)
