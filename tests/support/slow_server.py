"""A hand-written OTLP/HTTP server that is slow on purpose, on raw sockets.

Collectors under load answer late, proxies stall mid-answer, a broken one never
answers at all; ``requests``' timeout bounds each read, not the answer, so these are
what a per-request deadline must survive. Modes:

* ``slow``: reads the request, waits ``delay`` seconds, then accepts it (200, empty body);
* ``trickle_body``: sends the status line and headers at once, then the promised body one
  byte per ``delay`` seconds;
* ``trickle_headers``: sends the status line and headers themselves one byte per ``delay``;
* ``hang``: reads the request and never answers;
* ``cut``: sends the headers and part of the promised body, then closes the connection.

Every request body it reads is kept (``ExportTraceServiceRequest`` protobuf), with the
span ids in it, whether or not it answered, and whether the answer was sent whole.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

LOOPBACK = "127.0.0.1"
MODES = ("slow", "trickle_body", "trickle_headers", "hang", "cut")


@dataclass
class Received:
    """One request the server read."""

    span_ids: list[str]
    answered: bool = False


@dataclass
class SlowServer:
    """``with SlowServer("slow", delay=1.0) as server:`` then send to ``server.endpoint``."""

    mode: str
    delay: float = 1.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((LOOPBACK, 0))
        self._socket.listen(16)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="slow-server", daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL (``--endpoint``): requests go to ``/v1/traces`` below it."""
        return f"http://{LOOPBACK}:{self._socket.getsockname()[1]}"

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._closing.set()
        self._socket.close()

    def span_ids(self, *, answered_only: bool = False) -> list[str]:
        """Every span id read (or only those of requests answered in full)."""
        with self._lock:
            return [i for r in self.received if r.answered or not answered_only for i in r.span_ids]

    def requests(self) -> int:
        """How many requests were read."""
        with self._lock:
            return len(self.received)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                while not self._closing.is_set():
                    body = _read_request(connection)
                    if body is None:
                        return
                    request = ExportTraceServiceRequest.FromString(body)
                    ids = [
                        span.span_id.hex()
                        for resource in request.resource_spans
                        for scope in resource.scope_spans
                        for span in scope.spans
                    ]
                    entry = Received(ids)
                    with self._lock:
                        self.received.append(entry)
                    if not self._answer(connection):
                        return
                    with self._lock:
                        entry.answered = True
            except OSError:
                return

    def _answer(self, connection: socket.socket) -> bool:
        """Answer one request as the mode says; False when the connection is to be dropped."""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n"
        if self.mode == "hang":
            self._closing.wait()
            return False
        if self.mode == "slow":
            if self._closing.wait(self.delay):
                return False
            connection.sendall(head % 0)
            return True
        body = b"\x00" * 64  # never completed in time, so its content does not matter
        if self.mode == "cut":
            connection.sendall(head % len(body) + body[:10])
            return False
        if self.mode == "trickle_body":
            connection.sendall(head % len(body))
            trickled = body
        else:
            trickled = head % len(body) + body
        for index in range(len(trickled)):
            if self._closing.wait(self.delay):
                return False
            connection.sendall(trickled[index : index + 1])
        return True


def _read_request(connection: socket.socket) -> bytes | None:
    """The body of the next HTTP/1.1 request on the connection (Content-Length only), or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return rest[:length]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
