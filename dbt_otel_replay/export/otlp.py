"""Send encoded requests to an OTLP receiver over gRPC or HTTP, synchronously, checking each answer.

Every request is sent on its own and its response read: a transport error or a
retryable status is retried with exponential backoff until the request's
deadline, a partial success is reported with the collector's own words, and
nothing is queued where it could be dropped silently. gRPC and HTTP libraries
are imported when a transport is opened, not before: reading a large run's
artifacts is the memory peak, and it should not carry them.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol
from urllib.parse import urlsplit

from ..errors import ConfigError
from .config import ExportConfig, Protocol
from .encode import EncodedRequest

if TYPE_CHECKING:
    import grpc
    import requests

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.5
"""The wait before the first retry."""
BACKOFF_MULTIPLIER = 2.0
"""How much longer each further wait is."""
MAX_BACKOFF_SECONDS = 8.0
"""The longest single wait between two attempts."""
RETRYABLE_GRPC_CODES = frozenset(
    {
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
)
"""gRPC codes (``grpc.StatusCode`` names) the OTLP specification calls retryable."""
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
"""The OTLP/gRPC method that receives traces."""
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses the OTLP specification calls retryable."""
_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")


class RetryableError(Exception):
    """A failed attempt that may succeed later (the collector is down or busy)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class PermanentError(Exception):
    """A failed attempt that will fail again (refused, bad certificate, bad request)."""


@dataclass(frozen=True)
class Answer:
    """What the receiver said of a request it accepted (its ``partial_success``, if any).

    Attributes:
        rejected_spans: How many of the request's spans it rejected.
        message: Its error or warning message.
    """

    rejected_spans: int = 0
    message: str = ""


class Transport(TypingProtocol):
    """Sends one export request and returns the receiver's answer."""

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """Send a request; raise RetryableError or PermanentError when it fails."""

    def close(self) -> None:
        """Release the connection."""


@dataclass(frozen=True)
class Delivery:
    """What reached the receiver, and what did not.

    Attributes:
        endpoint: Where the requests went (without credentials).
        total: How many spans there were to send.
        accepted: How many spans the receiver accepted.
        requests: How many requests were accepted in full.
        unsent: The requests not accepted in full (failed, skipped after a failure,
            or partly rejected), to be saved and re-sent.
        problems: Why, one line per problem, in the receiver's words where it gave any.
    """

    endpoint: str
    total: int
    accepted: int
    requests: int
    unsent: tuple[EncodedRequest, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every span was accepted."""
        return not self.unsent


def deliver(
    requests_: Iterable[EncodedRequest],
    config: ExportConfig,
    *,
    transport: Transport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Send every request and check every answer; never drop a span silently.

    One request is on the wire at a time, sent from a worker thread while this
    thread takes the next one from ``requests_`` (encoding it, when that is a
    generator), so encoding and the collector's work overlap; requests still go
    out, and are answered, in order. A request that fails until its deadline, or
    is refused, ends the delivery: it and every request after it are returned as
    unsent (the collector is down or refusing, so trying the rest would only wait
    longer). A request the collector accepts only in part is returned as unsent
    too, and the delivery goes on.

    Args:
        requests_: The encoded requests; an iterator is consumed one request at a time, so a
            large trace need not be encoded whole before the first request goes out.
        config: Where and how to send them.
        transport: The transport to use (left open, for the caller to reuse and close); by
            default the one ``config.protocol`` names, opened and closed here.
        sleep: Waits between retries (replaceable in tests).
        clock: A monotonic clock for deadlines (replaceable in tests).

    Returns:
        What was accepted and what was not.
    """
    sender = transport or open_transport(config)
    tally = _Tally(config.display_endpoint)
    pending = iter(requests_)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="otlp-export") as worker:
            in_flight: tuple[EncodedRequest, Future[Answer]] | None = None
            for request in pending:
                tally.total += request.spans
                if in_flight is not None and not tally.settle(*in_flight):
                    in_flight = None
                    tally.keep([request, *pending])  # kept for a re-send, not tried against a dead end
                    break
                in_flight = request, worker.submit(_send_with_retry, sender, request, config, sleep, clock)
            if in_flight is not None:
                tally.settle(*in_flight)
    finally:
        if transport is None:
            sender.close()
    return tally.delivery()


class _Tally:
    """What the collector has answered so far, request by request."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.total = self.accepted = self.complete = self.answered = 0
        self.unsent: list[EncodedRequest] = []
        self.problems: list[str] = []

    def settle(self, request: EncodedRequest, answer: Future[Answer]) -> bool:
        """Wait for a request's answer and count it; False when it failed for good."""
        self.answered += 1
        try:
            response = answer.result()
        except (RetryableError, PermanentError) as exc:
            self.problems.append(f"{self.endpoint}: {exc}")
            self.unsent.append(request)
            return False
        count = request.spans
        rejected = min(response.rejected_spans, count)
        self.accepted += count - rejected
        if rejected:
            self.problems.append(
                f"{self.endpoint}: the collector rejected {rejected} of {count} spans in request "
                f"{self.answered}: {response.message or 'no reason given'}"
            )
            self.unsent.append(request)
        elif response.message:
            logger.warning("%s: the collector says: %s", self.endpoint, response.message)
            self.complete += 1
        else:
            self.complete += 1
        return True

    def keep(self, requests: list[EncodedRequest]) -> None:
        """Keep requests that were not tried (the first is already counted in ``total``)."""
        self.unsent.extend(requests)
        self.total += sum(r.spans for r in requests[1:])

    def delivery(self) -> Delivery:
        """The outcome."""
        return Delivery(
            endpoint=self.endpoint,
            total=self.total,
            accepted=self.accepted,
            requests=self.complete,
            unsent=tuple(self.unsent),
            problems=tuple(self.problems),
        )


def _send_with_retry(
    sender: Transport,
    request: EncodedRequest,
    config: ExportConfig,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Answer:
    deadline = clock() + config.timeout
    backoff = INITIAL_BACKOFF_SECONDS
    attempt = 1
    while True:
        try:
            return sender.send(request, timeout=max(deadline - clock(), 0.001))
        except RetryableError as exc:
            wait = min(exc.retry_after if exc.retry_after is not None else backoff, MAX_BACKOFF_SECONDS)
            if clock() + wait >= deadline:
                raise RetryableError(
                    f"{exc} (gave up after {attempt} attempts in {config.timeout:g} s; see --timeout)"
                ) from None
            logger.warning("%s: %s; retrying in %.1f s", config.display_endpoint, exc, wait)
            sleep(wait)
            backoff = min(backoff * BACKOFF_MULTIPLIER, MAX_BACKOFF_SECONDS)
            attempt += 1


def open_transport(config: ExportConfig) -> Transport:
    """Open the transport ``config.protocol`` names.

    Args:
        config: The destination.

    Returns:
        A gRPC or HTTP transport.
    """
    if config.protocol is Protocol.GRPC:
        return GrpcTransport(config)
    return HttpTransport(config)


class GrpcTransport:
    """OTLP/gRPC: the TraceService Export call on one channel."""

    def __init__(self, config: ExportConfig) -> None:
        """Open a channel to ``config.endpoint`` (TLS unless http:// or insecure)."""
        import grpc

        parts = urlsplit(config.endpoint if "://" in config.endpoint else f"//{config.endpoint}")
        target = parts.netloc or config.endpoint
        plaintext = parts.scheme == "http" or (not parts.scheme and config.insecure)
        if plaintext:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, _grpc_credentials(config))
        # The request is already serialised: no request serialiser; the response is decoded below.
        self._export = self._channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=None
        )
        self._metadata = config.headers
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        self._rpc_error = grpc.RpcError
        self._config = config

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """Call Export and translate a failure into a retryable or permanent error."""
        try:
            response: bytes = self._export(
                request.protobuf(), timeout=timeout, metadata=self._metadata, compression=self._compression
            )
        except self._rpc_error as exc:
            code, details = exc.code(), exc.details() or ""
            reason = f"gRPC {code.name}: {details}".rstrip(": ")
            if code.name in RETRYABLE_GRPC_CODES and not _is_tls_failure(details):
                raise RetryableError(reason) from None
            raise PermanentError(_tls_hint(reason, self._config)) from None
        return _answer(response, self._config)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def _answer(body: bytes, config: ExportConfig) -> Answer:
    """Decode an ``ExportTraceServiceResponse``; an undecodable one is logged and taken as success."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    try:
        partial = ExportTraceServiceResponse.FromString(body).partial_success
    except DecodeError:
        logger.warning("%s: could not decode the collector's response body", config.display_endpoint)
        return Answer()
    return Answer(partial.rejected_spans, partial.error_message)


def _grpc_credentials(config: ExportConfig) -> grpc.ChannelCredentials:
    import grpc

    root, key, chain = _read_tls_files(config)
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def _read_tls_files(config: ExportConfig) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The CA bundle, client key and client certificate chain; ConfigError naming any unreadable one."""
    return (
        _read_tls_file(config.certificate, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        _read_tls_file(config.client_key, "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        _read_tls_file(config.client_certificate, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
    )


def _read_tls_file(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


def _is_tls_failure(details: str) -> bool:
    lowered = details.lower()
    return any(word in lowered for word in _TLS_WORDS)


def _tls_hint(reason: str, config: ExportConfig) -> str:
    if not _is_tls_failure(reason):
        return reason
    if "verify" in reason.lower():  # we did not trust the collector's certificate
        if config.certificate is None:
            return f"{reason} (TLS failed: set OTEL_EXPORTER_OTLP_CERTIFICATE to the collector's CA bundle)"
        return f"{reason} (TLS failed: no CA in {config.certificate} signed the collector's certificate)"
    if config.client_certificate is None:
        return (
            f"{reason} (TLS failed: if the collector requires a client certificate, set "
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
        )
    return f"{reason} (TLS failed)"


class HttpTransport:
    """OTLP/HTTP: POST to the traces URL, protobuf or JSON."""

    def __init__(self, config: ExportConfig) -> None:
        """Prepare a session for ``config.endpoint``."""
        import requests

        self._errors = requests.exceptions
        _read_tls_files(config)  # a missing or unreadable file is a ConfigError now, not at the first POST
        self._config = config
        self._session = requests.Session()
        self._json = config.protocol is Protocol.HTTP_JSON
        self._session.headers.update(dict(config.headers))
        self._session.headers["Content-Type"] = "application/json" if self._json else "application/x-protobuf"
        if config.compression == "gzip":
            self._session.headers["Content-Encoding"] = "gzip"
        # Passed to each post(): requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify.
        self._verify: str | bool = str(config.certificate) if config.certificate else True
        if config.client_certificate and config.client_key:
            self._session.cert = (str(config.client_certificate), str(config.client_key))

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """POST the request and translate the answer."""
        body = request.otlp_json() if self._json else request.protobuf()
        if self._config.compression == "gzip":
            body = gzip.compress(body)
        try:
            answer = self._session.post(
                self._config.endpoint, data=body, timeout=timeout, verify=self._verify
            )
        except self._errors.SSLError as exc:
            raise PermanentError(
                _tls_hint(f"TLS handshake failed: {_root_cause(exc)}", self._config)
            ) from None
        except (self._errors.ConnectionError, self._errors.Timeout) as exc:
            raise RetryableError(f"cannot reach the collector: {_root_cause(exc)}") from None
        except self._errors.RequestException as exc:
            raise PermanentError(f"HTTP request failed: {_root_cause(exc)}") from None
        if answer.status_code in RETRYABLE_HTTP_STATUSES:
            raise RetryableError(f"HTTP {answer.status_code}", _retry_after(answer))
        if not 200 <= answer.status_code < 300:
            raise PermanentError(f"HTTP {answer.status_code}: {_error_text(answer)}")
        return self._response(answer)

    def _response(self, answer: requests.Response) -> Answer:
        if not answer.content:
            return Answer()
        if not self._json:
            return _answer(answer.content, self._config)
        try:
            document: Any = json.loads(answer.text)
            partial = document.get("partialSuccess") or {}
            return Answer(int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or ""))
        except (ValueError, AttributeError, TypeError):
            logger.warning(
                "%s: could not decode the collector's response body", self._config.display_endpoint
            )
            return Answer()

    def close(self) -> None:
        """Close the session."""
        self._session.close()


def _error_text(answer: requests.Response) -> str:
    """The message of an OTLP error body (a google.rpc.Status), else the body as text."""
    if "protobuf" in answer.headers.get("Content-Type", ""):
        from google.protobuf.message import DecodeError
        from google.rpc.status_pb2 import Status as RpcStatus

        status = RpcStatus()
        try:
            status.ParseFromString(answer.content)
            return status.message or f"{len(answer.content)} bytes of error detail"
        except DecodeError:
            pass
    return " ".join(answer.text.split())[:300]


def _retry_after(answer: requests.Response) -> float | None:
    value = answer.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."
