# SPDX-License-Identifier: Apache-2.0
"""The kernel spec (``lanner.v1.KernelSpec``) of a rule set, and the task that keeps the collector up to date.

The spec travels as a unary call to the collector's ``CollectorControl.SetKernelSpec``: the rule engine is the one
that knows the rules, the collector the one that owns the probes, and neither imports the other. The call is made
when the rule set changes and again every ``refresh_s`` (cheap, and idempotent on the collector's side, which
compares fingerprints), so a collector that restarts gets the spec back within seconds; until then it traces
everything unfiltered, so nothing is missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import grpc

from lanner.control_auth import call_metadata
from lanner.pki import PipelineTls, secure_channel_options
from lanner.v1 import kfilter_pb2, kfilter_pb2_grpc
from ruleengine.build import CompiledRule
from ruleengine.engine import Engine
from ruleengine.kfilter import derive
from ruleengine.ksyscalls import needed

log = logging.getLogger(__name__)


def build_spec(rules: Sequence[CompiledRule]) -> kfilter_pb2.KernelSpec:
    """The spec for the enabled ``rules`` (fingerprint included)."""
    need = needed(rules)
    filt = derive(rules)
    spec = kfilter_pb2.KernelSpec(all_types=need.all_types)
    for t, why in need.types.items():
        spec.types.add(event_type=t, reasons=list(why))
    for a in filt.atoms:
        spec.atoms.add(kind=int(a.kind), strings=sorted(a.strings), op=a.op, number=a.number, exact=a.exact, arg=a.arg)
    for t, clauses in sorted(filt.clauses.items()):
        tf = spec.filters.add(event_type=t)
        for c in clauses:
            tf.clauses.add(true_atoms=sorted(c.true_atoms), false_atoms=sorted(c.false_atoms))
    spec.fingerprint = hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()[:16]
    return spec


class SpecPusher:
    """Sends the current engine's spec to the collector at ``target`` (empty: never)."""

    def __init__(
        self,
        target: str,
        current: Callable[[], Engine],
        *,
        refresh_s: float = 10.0,
        tls: PipelineTls | None = None,
        token: str = "",
    ) -> None:
        self.target = target
        self._tls = tls
        self._metadata = call_metadata(token)
        self._refused = False
        self._current = current
        self._refresh = refresh_s
        self._engine: Engine | None = None
        self._spec: kfilter_pb2.KernelSpec | None = None
        self.acked = ""
        self._sent_at = 0.0

    def spec(self) -> kfilter_pb2.KernelSpec:
        """The spec of the current engine (rebuilt only when the engine was swapped)."""
        engine = self._current()
        if engine is not self._engine or self._spec is None:
            self._engine = engine
            self._spec = build_spec(engine.enabled)
        return self._spec

    async def push_once(self, channel: grpc.aio.Channel) -> bool:
        """One call if the spec changed or the refresh is due; True when the collector holds the current spec."""
        spec = self.spec()
        now = time.monotonic()
        if spec.fingerprint == self.acked and now - self._sent_at < self._refresh:
            return True
        try:
            ack = await kfilter_pb2_grpc.CollectorControlStub(channel).SetKernelSpec(
                spec, timeout=5.0, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            if self.acked:
                log.warning("collector unreachable for the kernel spec", extra={"code": exc.code().name})
            refused = exc.code() == grpc.StatusCode.PERMISSION_DENIED
            if refused and not self._refused:
                log.error("the collector refused the kernel spec", extra={"error": exc.details()})
            self._refused = refused
            self.acked = ""
            return False
        self._sent_at = now
        self._refused = False
        if ack.fingerprint != self.acked:
            log.info(
                "kernel spec applied by the collector",
                extra={"fingerprint": ack.fingerprint, "attached": len(ack.attached), "filtering": ack.filtering},
            )
        self.acked = ack.fingerprint
        return True

    def channel(self) -> grpc.aio.Channel:
        """A channel to the collector: mutual TLS with the pipeline certificate when configured."""
        if self._tls is None:
            return grpc.aio.insecure_channel(self.target)
        return grpc.aio.secure_channel(self.target, self._tls.channel_credentials(), options=secure_channel_options())

    async def run(self) -> None:
        """Keep the collector's spec current until cancelled."""
        if not self.target:
            return
        async with self.channel() as channel:
            while True:
                ok = await self.push_once(channel)
                await asyncio.sleep(0.5 if ok else 1.0)
