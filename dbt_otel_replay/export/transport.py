"""The OTLP transports: each sends one request over gRPC or HTTP in the encoding it declares.

:class:`Protocol` names the transports, and :data:`TRANSPORTS` is the one place
a protocol is mapped to its transport, and so to the encoding its requests are
written in (:func:`encoding_for`). A transport sends a request's payload as it
is; only a request encoded otherwise (a spill file read back) is converted
first. A failed attempt is classified as retryable or permanent here; the
retries themselves are :mod:`.deliver`'s. Collector text (gRPC details, error
bodies, partial-success messages) and HTTP libraries' errors enter the tool
here, and only through :meth:`~.config.ExportConfig.redact`: nothing downstream
sees a configured header value or the endpoint's query. gRPC and HTTP
libraries are imported when a transport is opened, not before: reading a large
run's artifacts is the memory peak, and it should not carry them.
"""

from __future__ import annotations

import gzip
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol
from urllib.parse import urljoin, urlsplit

from ..errors import ConfigError
from .convert import convert
from .requests import EncodedRequest, Encoding

if TYPE_CHECKING:
    import grpc
    import requests

    from .config import ExportConfig

logger = logging.getLogger(__name__)

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


class Protocol(str, Enum):
    """The OTLP transports dbt-otel-replay can send over."""

    GRPC = "grpc"
    HTTP_PROTOBUF = "http/protobuf"
    HTTP_JSON = "http/json"


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

    encoding: Encoding
    """The encoding it sends; requests are encoded in it (:func:`encoding_for`), else converted first."""

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """Send a request; raise RetryableError or PermanentError when it fails.

        The errors' texts and the answer's message are redacted with ``ExportConfig.redact``.
        """

    def close(self) -> None:
        """Release the connection."""


class GrpcTransport:
    """OTLP/gRPC: the TraceService Export call on one channel."""

    encoding = Encoding.PROTOBUF

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
        self._metadata = config.grpc_metadata  # a -bin key's value as bytes, as gRPC requires
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        self._rpc_error = grpc.RpcError
        self._config = config

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """Call Export and translate a failure into a retryable or permanent error."""
        try:
            response: bytes = self._export(
                _payload(request, self.encoding),
                timeout=timeout,
                metadata=self._metadata,
                compression=self._compression,
            )
        except self._rpc_error as exc:
            code, details = exc.code(), self._config.redact(exc.details() or "")
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
    return Answer(partial.rejected_spans, config.redact(partial.error_message))


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


class HttpTransport(ABC):
    """OTLP/HTTP: POST to the traces URL, in the encoding of the subclass (protobuf or JSON)."""

    encoding: Encoding

    def __init__(self, config: ExportConfig) -> None:
        """Prepare a session for ``config.endpoint``."""
        import requests

        self._errors = requests.exceptions
        _read_tls_files(config)  # a missing or unreadable file is a ConfigError now, not at the first POST
        self._config = config
        self._session = requests.Session()
        self._session.headers.update(dict(config.headers))
        self._session.headers["Content-Type"] = self.encoding.media_type
        if config.compression == "gzip":
            self._session.headers["Content-Encoding"] = "gzip"
        # Passed to each post(): requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify.
        self._verify: str | bool = str(config.certificate) if config.certificate else True
        if config.client_certificate and config.client_key:
            self._session.cert = (str(config.client_certificate), str(config.client_key))

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """POST the request and translate the answer; a redirect is not followed (see :func:`_redirect`)."""
        body = _payload(request, self.encoding)
        if self._config.compression == "gzip":
            body = gzip.compress(body)
        config = self._config
        try:
            answer = self._session.post(
                config.endpoint, data=body, timeout=timeout, verify=self._verify, allow_redirects=False
            )
        except self._errors.SSLError as exc:
            reason = f"TLS handshake failed: {_root_cause(exc, config)}"
            raise PermanentError(_tls_hint(reason, config)) from None
        except self._errors.ReadTimeout:
            raise RetryableError("no answer in time: the collector or the network is stalled") from None
        except (self._errors.ConnectionError, self._errors.Timeout) as exc:
            raise RetryableError(f"cannot reach the collector: {_root_cause(exc, config)}") from None
        except self._errors.RequestException as exc:
            raise PermanentError(f"HTTP request failed: {_root_cause(exc, config)}") from None
        if answer.status_code in RETRYABLE_HTTP_STATUSES:
            raise RetryableError(f"HTTP {answer.status_code}", _retry_after(answer))
        if 300 <= answer.status_code < 400:
            raise PermanentError(_redirect(answer, config))
        if not 200 <= answer.status_code < 300:
            raise PermanentError(f"HTTP {answer.status_code}: {_error_text(answer, config)}")
        return self._response(answer) if answer.content else Answer()

    @abstractmethod
    def _response(self, answer: requests.Response) -> Answer:
        """Decode a non-empty success body: it is in the request's encoding."""

    def close(self) -> None:
        """Close the session."""
        self._session.close()


class HttpProtobufTransport(HttpTransport):
    """OTLP/HTTP with protobuf bodies (``http/protobuf``)."""

    encoding = Encoding.PROTOBUF

    def _response(self, answer: requests.Response) -> Answer:
        """An ``ExportTraceServiceResponse``, as gRPC's."""
        return _answer(answer.content, self._config)


class HttpJsonTransport(HttpTransport):
    """OTLP/HTTP with OTLP/JSON bodies (``http/json``)."""

    encoding = Encoding.JSON

    def _response(self, answer: requests.Response) -> Answer:
        """Its OTLP/JSON form; an undecodable one is logged and taken as success."""
        try:
            document: Any = json.loads(answer.text)
            partial = document.get("partialSuccess") or {}
            message = self._config.redact(str(partial.get("errorMessage") or ""))
            return Answer(int(partial.get("rejectedSpans") or 0), message)
        except (ValueError, AttributeError, TypeError):
            logger.warning(
                "%s: could not decode the collector's response body", self._config.display_endpoint
            )
            return Answer()


TRANSPORTS: Mapping[Protocol, type[GrpcTransport] | type[HttpTransport]] = {
    Protocol.GRPC: GrpcTransport,
    Protocol.HTTP_PROTOBUF: HttpProtobufTransport,
    Protocol.HTTP_JSON: HttpJsonTransport,
}
"""Each protocol's transport: the one place a protocol picks how requests are encoded."""


def open_transport(config: ExportConfig) -> Transport:
    """Open the transport ``config.protocol`` names.

    Args:
        config: The destination.

    Returns:
        A gRPC or HTTP transport.
    """
    return TRANSPORTS[config.protocol](config)


def encoding_for(protocol: Protocol) -> Encoding:
    """The encoding a protocol's transport sends, so requests can be encoded in it from the start.

    Args:
        protocol: The OTLP protocol.

    Returns:
        Its transport's encoding.
    """
    return TRANSPORTS[protocol].encoding


def _payload(request: EncodedRequest, encoding: Encoding) -> bytes:
    """The request's bytes in ``encoding``: as encoded, unless it was encoded otherwise (read back)."""
    return request.payload if request.encoding is encoding else convert(request, encoding).payload


def _error_text(answer: requests.Response, config: ExportConfig) -> str:
    """The message of an OTLP error body (a google.rpc.Status), else the body as text; redacted.

    Redacted before it is cut short, so no part of a secret survives at the cut.
    """
    if "protobuf" in answer.headers.get("Content-Type", ""):
        from google.protobuf.message import DecodeError
        from google.rpc.status_pb2 import Status as RpcStatus

        status = RpcStatus()
        try:
            status.ParseFromString(answer.content)
            return config.redact(status.message) or f"{len(answer.content)} bytes of error detail"
        except DecodeError:
            pass
    return " ".join(config.redact(answer.text).split())[:300]


def _redirect(answer: requests.Response, config: ExportConfig) -> str:
    """Why a 3xx fails the request: redirects are never followed, so headers never change origin.

    requests would re-send the POST, custom headers (an x-api-key) included, to any host the
    Location names, and turn a 301/302/303 into a GET that delivers nothing. A moved collector is
    fixed once, in the endpoint; the message names where it points (its origin only: a Location's
    path or query may carry a token) and the spans are kept for a re-send.
    """
    location = answer.headers.get("Location", "").strip()
    status = answer.status_code
    if not location:
        return f"HTTP {status}: a redirect without a Location, not followed"
    try:
        parts = urlsplit(urljoin(config.endpoint, location))
    except ValueError:
        return f"HTTP {status}: a redirect to an unreadable Location, not followed"
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return (
        f"HTTP {status}: redirected to {config.redact(origin)}, not followed: exports and their "
        "headers go only to the configured endpoint (set it to the new address if you trust it)"
    )


def _retry_after(answer: requests.Response) -> float | None:
    value = answer.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _root_cause(exc: BaseException, config: ExportConfig) -> str:
    """The innermost error's text, redacted (requests quotes the URL, query and all), then cut short."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = config.redact(str(exc))
    return text if len(text) <= 300 else text[:300] + "..."
