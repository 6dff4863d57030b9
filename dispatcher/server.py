# SPDX-License-Identifier: Apache-2.0
"""Wires the dispatcher into the shared service lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence

from dispatcher.config import DispatcherConfig, OutputSpec
from dispatcher.public import PublicListener
from dispatcher.registry import Output
from dispatcher.service import Dispatcher
from dispatcher.store import RedisState
from lanner.pki import load_optional
from lanner.server import run_service

log = logging.getLogger(__name__)


async def serve(
    cfg: DispatcherConfig,
    specs: Sequence[OutputSpec],
    *,
    stop_event: asyncio.Event | None = None,
    grace: float = 1.0,
    outputs: Mapping[str, Output] | None = None,
) -> None:
    """Wait for Redis (a signal during the wait exits cleanly), then serve until stopped."""
    tls = load_optional(cfg.tls_dir)
    dispatcher = Dispatcher(cfg, specs, outputs)
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    prepare = asyncio.create_task(dispatcher.prepare())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({prepare, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not prepare.done():
        prepare.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prepare
        await dispatcher.close()
        log.info("stopped before redis became reachable")
        return
    stopped.cancel()
    try:
        prepare.result()
    except BaseException:
        await dispatcher.close()
        raise
    public = None
    if cfg.public_bind:
        public = PublicListener(cfg, dispatcher.register_public, lambda: RedisState.up, tls)
        try:
            await public.start()
        except BaseException:
            await dispatcher.close()
            raise

    async def stop_public() -> None:
        if public is not None:
            await public.stop(grace)

    background = dispatcher.background() + ([public.watch] if public is not None else [])
    await run_service(
        "dispatcher",
        cfg.bind,
        dispatcher.register,
        background=background,
        on_stop=[dispatcher.close, stop_public],
        grace=grace,
        metrics_bind=cfg.metrics_bind,
        stop_event=stop,
        ready=lambda: RedisState.up,
        tls=tls,
        reflection_enabled=cfg.grpc_reflection,
    )
