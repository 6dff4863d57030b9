# SPDX-License-Identifier: Apache-2.0
"""gRPC streams that send and receive event batches as the bytes they are.

Building an ``EventBatch`` message from event messages copies every event; serializing it walks them again.
A stage that holds each event's bytes instead (the collector encodes straight to bytes; the enricher forwards
frames) hands the batch's wire form to gRPC unchanged. The bytes themselves are written by ``lanner.codec``, whose
batch functions are re-exported here for the stages that import them from this module.
"""

from __future__ import annotations

from typing import Any

import grpc

from lanner.codec import (
    SharedEvent,
    event_batch_wire,
    frame_batch_wire,
    frame_size,
    inline_event_wire,
    shared_batch_wire,
    varint,
)
from lanner.intake import lenient_parser
from lanner.v1 import event_pb2


def push_events_handler(service: str, behavior: Any, stage: str) -> grpc.GenericRpcHandler:
    """A ``PushEvents`` handler for ``service`` whose requests are read as ``EventBatchFrame``: the same wire as
    ``EventBatch``, with events left serialized until someone needs them. A frame protobuf refuses is salvaged
    field by field and frames are capped in events (``lanner.intake``), so bad bytes never fail the stream.
    Under mutual TLS only the pipeline's own certificate may push (``lanner.pki.pipeline_only``)."""
    from lanner.pki import pipeline_only  # here, not at the top: lanner.pki loads grpc's TLS parts for everyone

    handler = grpc.stream_stream_rpc_method_handler(
        pipeline_only(behavior, stage),
        request_deserializer=lenient_parser(event_pb2.EventBatchFrame, None, "events", stage),
        response_serializer=event_pb2.BatchAck.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(service, {"PushEvents": handler})


def _identity(data: bytes) -> bytes:
    return data


def raw_push_events(method: str) -> Any:
    """A ``BatchSender`` stream factory for ``method`` (e.g. ``/lanner.v1.RuleEngineService/PushEvents``) whose
    requests are pre-serialized EventBatch bytes and whose responses are BatchAcks."""

    def open_stream(channel: grpc.aio.Channel) -> Any:
        return channel.stream_stream(
            method, request_serializer=_identity, response_deserializer=event_pb2.BatchAck.FromString
        )

    return open_stream


__all__ = [
    "SharedEvent",
    "event_batch_wire",
    "frame_batch_wire",
    "frame_size",
    "inline_event_wire",
    "push_events_handler",
    "raw_push_events",
    "shared_batch_wire",
    "varint",
]
