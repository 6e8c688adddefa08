"""A real, in-process OTLP trace receiver for tests.

``OtlpReceiver`` runs two genuine OTLP servers on loopback, each on a free port:

* gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``
* HTTP: ``POST /v1/traces`` with ``application/x-protobuf`` bodies
  (optionally ``Content-Encoding: gzip`` or ``deflate``)

Every accepted ``ExportTraceServiceRequest`` is stored together with the
request headers/metadata.  Faults can be injected (``fail_next``,
``partial_success``, ``set_response_delay``) so that retry and error paths of
exporters can be exercised against real network I/O.

Both servers speak plaintext by default.  ``OtlpReceiver(tls=ServerTls(cert, key))``
makes both speak TLS instead (endpoints then start with ``https://``); with
``ServerTls(..., client_ca=ca)`` clients must also present a certificate that
``ca`` signed (mutual TLS).  ``tests/support/tls.py`` makes throwaway certificates.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = [
    "Attempt",
    "OtlpReceiver",
    "ReceivedSpan",
    "ServerTls",
    "any_value_to_python",
    "attributes_to_dict",
]

LOOPBACK = "127.0.0.1"
TRACES_PATH = "/v1/traces"
HANDSHAKE_TIMEOUT_SECONDS = 10.0
"""How long the TLS HTTP server waits for a client to finish its handshake."""


class LoopbackEndpoints:
    """The OTLP addresses of a test server listening on loopback (receiver or collector)."""

    grpc_port: int
    http_port: int
    scheme: str = "http"
    """``https`` when the server speaks TLS."""

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS) for OTLP/gRPC exporters."""
        return f"{self.scheme}://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_base_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS, no signal path) for OTLP/HTTP exporters."""
        return f"{self.scheme}://{LOOPBACK}:{self.http_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT/v1/traces`` (``https://`` with TLS) for OTLP/HTTP trace exporters."""
        return f"{self.http_base_endpoint}{TRACES_PATH}"


@dataclass(frozen=True)
class ServerTls:
    """TLS settings for both of the receiver's servers (PEM files).

    Attributes:
        cert: The server's certificate chain.
        key: The server's private key.
        client_ca: If set, clients must present a certificate signed by this CA (mutual TLS).
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``grpc.Server.add_secure_port``."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes() if self.client_ca else None,
            require_client_auth=self.client_ca is not None,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side ``ssl.SSLContext`` for the HTTP server."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.client_ca)
        return context


PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
STATUS_DETAILS_METADATA_KEY = "grpc-status-details-bin"
RETRY_INFO_METADATA_KEY = "google.rpc.retryinfo-bin"


# --------------------------------------------------------------------------- #
# Proto -> python helpers
# --------------------------------------------------------------------------- #


def any_value_to_python(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` into a plain python value.

    Arrays become lists, kvlists become dicts, bytes stay bytes and an unset
    value becomes ``None``.
    """
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Convert a repeated OTLP ``KeyValue`` field into a ``{key: value}`` dict."""
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


# --------------------------------------------------------------------------- #
# Records
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ReceivedSpan:
    """One span flattened out of an ``ExportTraceServiceRequest``."""

    resource_attributes: dict[str, Any]
    scope_name: str
    scope_version: str
    span: Span

    @property
    def name(self) -> str:
        """The span name."""
        return self.span.name

    @property
    def attributes(self) -> dict[str, Any]:
        """The span attributes as a plain dict."""
        return attributes_to_dict(self.span.attributes)

    @property
    def trace_id(self) -> str:
        """The trace id as 32 lowercase hex characters."""
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        """The span id as 16 lowercase hex characters."""
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        """The parent span id as hex, or ``""`` for a root span."""
        return self.span.parent_span_id.hex()


@dataclass(frozen=True)
class Attempt:
    """One export request that reached the receiver, accepted or not."""

    transport: str  # "grpc" or "http"
    headers: dict[str, str]
    accepted: bool


@dataclass(frozen=True)
class _Failure:
    """How a rejected request is answered."""

    grpc_code: grpc.StatusCode
    http_status: int
    message: str
    retry_after: float | None


@dataclass
class _Behaviour:
    """Mutable fault-injection state; guarded by the receiver's lock."""

    failures_left: int = 0
    failure: _Failure | None = None
    partial_rejected: int | None = None
    partial_message: str = ""
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class _Outcome:
    """The receiver's decision for one request: a failure or a response."""

    failure: _Failure | None = None
    response: trace_service_pb2.ExportTraceServiceResponse = field(
        default_factory=trace_service_pb2.ExportTraceServiceResponse
    )


# --------------------------------------------------------------------------- #
# gRPC side
# --------------------------------------------------------------------------- #


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """gRPC ``TraceService`` that delegates to the owning receiver."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """Handle one OTLP/gRPC export call."""
        headers = {key.lower(): _metadata_value(value) for key, value in context.invocation_metadata()}
        outcome = self._receiver._handle(request, headers, "grpc")
        if outcome.failure is None:
            return outcome.response
        _abort_grpc(context, outcome.failure)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def _metadata_value(value: str | bytes) -> str:
    """Render a gRPC metadata value (binary ``-bin`` values arrive as bytes)."""
    return value.hex() if isinstance(value, bytes) else value


def _abort_grpc(context: grpc.ServicerContext, failure: _Failure) -> None:
    """Abort the call with the failure's status code (and RetryInfo if set).

    RetryInfo travels both ways receivers send it: as gRPC's rich error model carries it (a
    google.rpc.Status with the detail in the ``grpc-status-details-bin`` trailer, what grpcio-status
    and the collectors send) and bare in ``google.rpc.retryinfo-bin`` (what opentelemetry-python's
    exporter reads).
    """
    if failure.retry_after is not None:
        info = error_details_pb2.RetryInfo(retry_delay=_duration(failure.retry_after))
        status = status_pb2.Status(code=failure.grpc_code.value[0], message=failure.message)
        status.details.add().Pack(info)
        context.set_trailing_metadata(
            (
                (STATUS_DETAILS_METADATA_KEY, status.SerializeToString()),
                (RETRY_INFO_METADATA_KEY, info.SerializeToString()),
            )
        )
    context.abort(failure.grpc_code, failure.message)


def _duration(seconds: float) -> Duration:
    """Build a protobuf Duration from float seconds."""
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


# --------------------------------------------------------------------------- #
# HTTP side
# --------------------------------------------------------------------------- #


class _ReceiverHttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its owning receiver."""

    daemon_threads = True
    block_on_close = False  # keep-alive clients must not block shutdown
    receiver: OtlpReceiver


class _TlsReceiverHttpServer(_ReceiverHttpServer):
    """The HTTP server speaking TLS: each connection's handshake runs in that connection's thread.

    (Wrapping the listening socket instead would run handshakes inside ``accept``
    on the serving thread, where one silent client could stall every other one.)
    """

    ssl_context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Do the TLS handshake, then serve the connection; drop clients that fail the handshake."""
        plain: socket.socket = request
        plain.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            connection = self.ssl_context.wrap_socket(plain, server_side=True)
        except OSError:  # ssl.SSLError, a reset or a timeout: the client did not speak our TLS
            return
        try:
            connection.settimeout(None)
            super().finish_request(connection, client_address)
        finally:
            connection.close()


class _TracesHandler(BaseHTTPRequestHandler):
    """``POST /v1/traces`` handler speaking OTLP/HTTP protobuf."""

    server: _ReceiverHttpServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Decode the body, hand it to the receiver, write the OTLP response."""
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._send_status(404, grpc.StatusCode.NOT_FOUND, f"unknown path {self.path}")
            return
        body = self._read_body()
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type not in (PROTOBUF_CONTENT_TYPE, JSON_CONTENT_TYPE):
            self._send_status(
                415, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported content type {content_type!r}"
            )
            return
        try:
            request = _parse_request(body, self.headers.get("Content-Encoding", ""), content_type)
        except (ValueError, OSError, zlib.error) as error:
            self._send_status(400, grpc.StatusCode.INVALID_ARGUMENT, f"bad payload: {error}")
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        outcome = self.server.receiver._handle(request, headers, "http")
        if outcome.failure is not None:
            self._send_failure(outcome.failure)
            return
        if content_type == JSON_CONTENT_TYPE:
            self._send(200, json_format.MessageToJson(outcome.response).encode(), json_body=True)
        else:
            self._send(200, outcome.response.SerializeToString())

    def _read_body(self) -> bytes:
        """Read a Content-Length or chunked request body."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        """Read a ``Transfer-Encoding: chunked`` body."""
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                self.rfile.readline()  # trailing CRLF (no trailers expected)
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_failure(self, failure: _Failure) -> None:
        """Answer with the injected HTTP status and a google.rpc.Status body."""
        extra = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
        self._send_status(failure.http_status, failure.grpc_code, failure.message, extra)

    def _send_status(
        self,
        http_status: int,
        code: grpc.StatusCode,
        message: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send an error response whose body is a serialized google.rpc.Status."""
        status = status_pb2.Status(code=code.value[0], message=message)
        self._send(http_status, status.SerializeToString(), extra_headers)

    def _send(
        self,
        http_status: int,
        body: bytes,
        extra_headers: Mapping[str, str] | None = None,
        *,
        json_body: bool = False,
    ) -> None:
        """Write a complete protobuf (or, for OTLP/JSON requests, JSON) response."""
        self.send_response(http_status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE if json_body else PROTOBUF_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


def _parse_request(
    body: bytes, content_encoding: str, content_type: str = PROTOBUF_CONTENT_TYPE
) -> trace_service_pb2.ExportTraceServiceRequest:
    """Decompress (gzip/deflate/identity) and parse an OTLP/HTTP protobuf or OTLP/JSON body."""
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding not in ("", "identity"):
        raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")
    request = trace_service_pb2.ExportTraceServiceRequest()
    if content_type == JSON_CONTENT_TYPE:
        return _parse_otlp_json(body, request)
    try:
        request.ParseFromString(body)
    except Exception as error:  # protobuf raises DecodeError (a plain Exception subclass)
        raise ValueError(str(error)) from error
    return request


_OTLP_JSON_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def _parse_otlp_json(
    body: bytes, request: trace_service_pb2.ExportTraceServiceRequest
) -> trace_service_pb2.ExportTraceServiceRequest:
    """Parse OTLP/JSON, whose ids are hex (protobuf's JSON mapping expects base64)."""

    def ids_to_base64(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode()
                if k in _OTLP_JSON_ID_KEYS and isinstance(v, str)
                else ids_to_base64(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [ids_to_base64(item) for item in node]
        return node

    try:
        json_format.ParseDict(ids_to_base64(json.loads(body)), request)
    except (json_format.ParseError, ValueError) as error:
        raise ValueError(str(error)) from error
    return request


# --------------------------------------------------------------------------- #
# The receiver
# --------------------------------------------------------------------------- #


class OtlpReceiver(LoopbackEndpoints):
    """In-process OTLP trace receiver (gRPC + HTTP) on free loopback ports.

    Use as a context manager::

        with OtlpReceiver() as receiver:
            exporter = OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True)
            ...
            receiver.wait_for_spans(3)

    With ``tls=ServerTls(cert, key)`` both servers speak only TLS and the
    endpoints start with ``https://``.
    """

    def __init__(
        self, grpc_workers: int = 8, *, tls: ServerTls | None = None, max_receive_bytes: int | None = None
    ) -> None:
        """``max_receive_bytes``: the gRPC server's message limit (None: gRPC's default, 4 MiB)."""
        self._grpc_workers = grpc_workers
        self._grpc_options = (
            [] if max_receive_bytes is None else [("grpc.max_receive_message_length", max_receive_bytes)]
        )
        self.tls = tls
        self.scheme = "http" if tls is None else "https"
        self._lock = threading.Lock()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._headers: list[dict[str, str]] = []
        self._attempts: list[Attempt] = []
        self._behaviour = _Behaviour()
        self._grpc_server: grpc.Server | None = None
        self._httpd: _ReceiverHttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port = 0
        self.http_port = 0

    # -- lifecycle --------------------------------------------------------- #

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start both servers, each bound to a free loopback port."""
        self._start_grpc()
        self._start_http()

    def stop(self, grace: float = 1.0) -> None:
        """Stop both servers (idempotent)."""
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait(grace + 5.0)
            self._grpc_server = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._http_thread is not None:
            self._http_thread.join(timeout=5.0)
            self._http_thread = None

    def _start_grpc(self) -> None:
        """Create the gRPC server (TLS if configured) on ``127.0.0.1:0`` and remember its port."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._grpc_workers), options=self._grpc_options
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceServicer(self), server
        )
        address = f"{LOOPBACK}:0"
        if self.tls is None:
            self.grpc_port = server.add_insecure_port(address)
        else:
            self.grpc_port = server.add_secure_port(address, self.tls.grpc_credentials())
        if self.grpc_port == 0:
            raise RuntimeError("could not bind the OTLP gRPC receiver to a loopback port")
        server.start()
        self._grpc_server = server

    def _start_http(self) -> None:
        """Create the HTTP server (TLS if configured) on ``127.0.0.1:0`` and serve it in a thread."""
        httpd: _ReceiverHttpServer
        if self.tls is None:
            httpd = _ReceiverHttpServer((LOOPBACK, 0), _TracesHandler)
        else:
            tls_httpd = _TlsReceiverHttpServer((LOOPBACK, 0), _TracesHandler)
            tls_httpd.ssl_context = self.tls.ssl_context()
            httpd = tls_httpd
        httpd.receiver = self
        self.http_port = int(httpd.server_address[1])
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http-receiver", daemon=True
        )
        thread.start()
        self._httpd = httpd
        self._http_thread = thread

    # -- addresses --------------------------------------------------------- #

    # -- received data ----------------------------------------------------- #

    @property
    def requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        """Copy of the accepted requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Headers/metadata (lower-cased keys) of each accepted request; aligned with ``requests``."""
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def attempts(self) -> list[Attempt]:
        """Every request that arrived, including the ones failed on purpose."""
        with self._lock:
            return list(self._attempts)

    def spans(self) -> list[ReceivedSpan]:
        """All accepted spans flattened with their resource and scope."""
        return [span for request in self.requests for span in _flatten(request)]

    def span_names(self) -> list[str]:
        """Names of all accepted spans, in arrival order."""
        return [span.name for span in self.spans()]

    def span_count(self) -> int:
        """Number of accepted spans."""
        return len(self.spans())

    def wait_for_spans(
        self, n: int, timeout: float = 30.0, poll_interval: float = 0.05
    ) -> list[ReceivedSpan]:
        """Block until at least ``n`` spans were accepted; return them.

        Raises AssertionError naming how many arrived if ``timeout`` elapses.
        """
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if len(spans) >= n:
                return spans
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected at least {n} spans within {timeout:.1f}s, got {len(spans)} "
                    f"(requests accepted: {len(self.requests)}, attempts: {len(self.attempts)})"
                )
            time.sleep(poll_interval)

    def clear(self) -> None:
        """Forget everything received so far (fault settings are kept)."""
        with self._lock:
            self._requests.clear()
            self._headers.clear()
            self._attempts.clear()

    # -- fault injection --------------------------------------------------- #

    def fail_next(
        self,
        count: int = 1,
        grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        http_status: int = 503,
        message: str = "injected failure",
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``count`` requests fail without being stored.

        gRPC calls are aborted with ``grpc_code``; HTTP requests get
        ``http_status`` with a google.rpc.Status body.  ``retry_after``
        (seconds) adds a ``Retry-After`` header / ``RetryInfo`` trailer, which
        OpenTelemetry exporters honour instead of their exponential backoff.
        """
        with self._lock:
            self._behaviour.failures_left = count
            self._behaviour.failure = _Failure(grpc_code, http_status, message, retry_after)

    def partial_success(self, rejected: int, message: str = "") -> None:
        """Make every following successful response carry ``ExportTracePartialSuccess``.

        The request is still stored.  Call ``clear_partial_success`` to undo.
        """
        with self._lock:
            self._behaviour.partial_rejected = rejected
            self._behaviour.partial_message = message

    def clear_partial_success(self) -> None:
        """Stop adding ``partial_success`` to responses."""
        with self._lock:
            self._behaviour.partial_rejected = None
            self._behaviour.partial_message = ""

    def set_response_delay(self, seconds: float) -> None:
        """Sleep ``seconds`` before handling each request (for client timeout tests)."""
        with self._lock:
            self._behaviour.delay_seconds = seconds

    def reset_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._behaviour = _Behaviour()

    # -- request handling (called from server threads) --------------------- #

    def _handle(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        headers: dict[str, str],
        transport: str,
    ) -> _Outcome:
        """Decide the outcome of one request and store it if accepted."""
        with self._lock:
            delay = self._behaviour.delay_seconds
        if delay > 0:
            time.sleep(delay)
        with self._lock:
            failure = self._take_failure()
            self._attempts.append(Attempt(transport, dict(headers), accepted=failure is None))
            if failure is not None:
                return _Outcome(failure=failure)
            self._requests.append(request)
            self._headers.append(dict(headers))
            return _Outcome(response=self._build_response())

    def _take_failure(self) -> _Failure | None:
        """Consume one pending injected failure, if any (lock must be held)."""
        if self._behaviour.failures_left <= 0 or self._behaviour.failure is None:
            return None
        self._behaviour.failures_left -= 1
        return self._behaviour.failure

    def _build_response(self) -> trace_service_pb2.ExportTraceServiceResponse:
        """Build the success response, with partial_success if configured (lock must be held)."""
        response = trace_service_pb2.ExportTraceServiceResponse()
        if self._behaviour.partial_rejected is not None:
            response.partial_success.rejected_spans = self._behaviour.partial_rejected
            response.partial_success.error_message = self._behaviour.partial_message
        return response


def _flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterable[ReceivedSpan]:
    """Yield every span of a request with its resource attributes and scope."""
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    resource_attributes=dict(resource),
                    scope_name=scope_spans.scope.name,
                    scope_version=scope_spans.scope.version,
                    span=span,
                )
