# SPDX-License-Identifier: Apache-2.0
"""The ``/metrics`` HTTP server, hardened against clients that connect and never finish a request.

prometheus_client's own server gives every connection a thread and waits for its request forever, so a few
hundred idle or half-open connections hold as many threads for good. Here a connection must send its request
within ``REQUEST_TIMEOUT_S`` and at most ``MAX_CONNECTIONS`` are served at once; a connection beyond that is
closed at once and counted in ``lanner_metrics_connections_rejected_total``. A scraper that is turned away gets
in on its next try, once the idle connections time out.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

REQUEST_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64

REJECTED = Counter(
    "lanner_metrics_connections_rejected_total", "Connections to /metrics closed because too many were open"
)


class _Handler(WSGIRequestHandler):
    # socketserver.StreamRequestHandler puts this timeout on the connection: a client that stops sending mid-request
    # is dropped instead of holding its thread.
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Silent, like prometheus_client's own handler."""


class _Server(ThreadingWSGIServer):  # type: ignore[misc]
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of connections then waits on SYN retries for seconds.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients that time out, reset or send garbage are expected here, not a fault of the server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            REJECTED.inc()
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve_metrics(host: str, port: int) -> None:
    """Serve the default registry at ``http://host:port/metrics`` from a daemon thread (OSError if it cannot
    listen)."""
    server_class: type[_Server] = _Server
    if ":" in host:

        class _Server6(_Server):
            address_family = socket.AF_INET6

        server_class = _Server6
    httpd = make_server(host, port, make_wsgi_app(), server_class, handler_class=_Handler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
