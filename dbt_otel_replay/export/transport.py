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
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol
from urllib.parse import urljoin, urlsplit

from .. import __version__
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
EXHAUSTED = "RESOURCE_EXHAUSTED"
"""Retryable only when the status carries RetryInfo (the OTLP specification, "Failures")."""
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
"""The OTLP/gRPC method that receives traces."""
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses the OTLP specification calls retryable."""
_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")
USER_AGENT = f"dbt-otel-replay/{__version__}"
"""What every request names as its client (the OTLP Exporter specification: exporters SHOULD emit a
User-Agent identifying the exporter); gRPC adds its own version after it."""
GRPC_STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailing metadata carrying a google.rpc.Status with details (RetryInfo among them)."""
GRPC_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
"""A bare RetryInfo trailer: what opentelemetry-python's exporter reads, so some receivers send it."""
TIMER_SLACK_SECONDS = 0.05
"""How early gRPC's deadline timer may be seen to fire by our clock: a DEADLINE_EXCEEDED that late is
the call's own deadline, one earlier is the collector's answer."""
PROBE_SECONDS = 1.0
"""The most a diagnosis of a closed connection may take (one TLS handshake)."""
_GRPC_ON_HTTP1 = ("expected settings frame", "http1.x server", "failed parsing http/2")
"""What gRPC's C core says when the port answers HTTP/1.1 (newer, older wordings; grpcio 1.49, the
lowest supported, says only that it could not parse the answer as HTTP/2)."""
_NOT_TLS = ("wrong_version_number", "wrong version number", "packet_length_too_long")
"""What a TLS client says when the server answered in plaintext."""
TLS_PORT_HINT = (
    "the collector speaks TLS on this port and closed the plaintext connection: use https:// "
    "(and OTEL_EXPORTER_OTLP_CERTIFICATE for a private CA)"
)
"""Said when a plaintext request reached a TLS port, over gRPC or HTTP."""
_PLAINTEXT_AT_TLS = ("http request to an https server", "plain http request was sent to https port")
"""What TLS HTTP servers answer a plaintext request with (Go's net/http, as the Collector; nginx)."""


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


class StalledError(RetryableError):
    """The collector took the request but its answer was not complete when the attempt's time ran out.

    An attempt is given what is left of the request's deadline, so this means the deadline is spent:
    the caller reports it as a stall, whether the headers or the body were late.
    """


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
        quiet_grpc_core()
        import grpc

        parts = urlsplit(config.endpoint if "://" in config.endpoint else f"//{config.endpoint}")
        target = parts.netloc or config.endpoint
        self._scheme = parts.scheme
        self._plaintext = parts.scheme == "http" or (not parts.scheme and config.insecure)
        self._address = (parts.hostname or "", parts.port)
        options = [("grpc.primary_user_agent", USER_AGENT)]
        if self._plaintext:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, _grpc_credentials(config), options=options)
        self._diagnosis: str | None = None  # why connections are closed, once probed
        # The request is already serialised: no request serialiser; the response is decoded below.
        self._export = self._channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=None
        )
        self._metadata = config.grpc_metadata  # a -bin key's value as bytes, as gRPC requires
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        self._rpc_error = grpc.RpcError
        self._config = config
        self._lock = threading.Lock()
        self._calls = 0
        self._closing = False

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """Call Export and translate a failure into a retryable or permanent error."""
        with self._lock:
            self._calls += 1
        try:
            return self._call(request, timeout)
        finally:
            with self._lock:
                self._calls -= 1
                last_out = self._closing and self._calls == 0
            if last_out:
                self._channel.close()

    def _call(self, request: EncodedRequest, timeout: float) -> Answer:
        started = time.monotonic()
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
            misconfigured = self._misconfiguration(code.name, details)
            if misconfigured is not None:
                raise PermanentError(f"gRPC {code.name}: {misconfigured}") from None
            if (
                code.name == "DEADLINE_EXCEEDED"
                and time.monotonic() - started >= timeout - TIMER_SLACK_SECONDS
            ):
                # the call's own deadline (what was left of the request's), not a collector's answer
                raise StalledError(reason) from None
            if code.name in RETRYABLE_GRPC_CODES and not _is_tls_failure(details):
                delay = _grpc_retry_delay(exc)
                if code.name == EXHAUSTED and delay is None:
                    # OTLP: RESOURCE_EXHAUSTED is retryable "only if the server signals that the
                    # recovery from resource exhaustion is possible", by returning RetryInfo
                    raise PermanentError(
                        f"{reason} (no RetryInfo: the collector cannot take it now)"
                    ) from None
                raise RetryableError(reason, delay) from None
            raise PermanentError(_tls_hint(reason, self._config)) from None
        return _answer(response, self._config)

    def _misconfiguration(self, code: str, details: str) -> str | None:
        """One line naming the likely cause and its fix, when the failure says the setup is wrong.

        Each is what a real server says (``tests/test_misconfig.py``): an OTLP/HTTP port answers
        gRPC's HTTP/2 in HTTP/1.1; a plaintext collector answers a TLS handshake in plaintext; a
        collector wanting a client certificate closes the connection right after the handshake,
        which gRPC reports only as "Socket closed", so that is diagnosed once with a handshake of
        our own (:func:`probe_tls`) before it is retried as a collector going away.
        """
        lowered = details.lower()
        if any(words in lowered for words in _GRPC_ON_HTTP1):
            return (
                "the endpoint answered in HTTP/1.1, not gRPC: it is an OTLP/HTTP port; use the "
                "collector's gRPC port (4317), or --protocol http/protobuf"
            )
        if _is_tls_failure(details) and any(words in lowered for words in _NOT_TLS):
            return _plaintext_hint(self._scheme)
        if code == "UNAVAILABLE" and "socket closed" in lowered:
            if self._diagnosis is None:
                self._diagnosis = self._diagnose_closed()
            return self._diagnosis or None
        return None

    def _diagnose_closed(self) -> str:
        """Why the collector closes our connections, if a handshake of our own tells; else ``""``."""
        host, port = self._address
        if port is None:
            return ""
        found = probe_tls(host, port, self._config, verify=not self._plaintext)
        if self._plaintext and found in ("open", "closed"):
            return TLS_PORT_HINT
        if not self._plaintext and found == "closed" and self._config.client_certificate is None:
            return (
                "the collector closed the connection right after the TLS handshake: it requires a "
                "client certificate; set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and "
                "OTEL_EXPORTER_OTLP_CLIENT_KEY"
            )
        return ""

    def close(self) -> None:
        """Close the channel now, or, while a call is on it, when that call ends.

        A call left behind by a stop (its thread is a daemon, see :func:`~..stopping.in_background`)
        is not cancelled: with grpcio 1.49 a blocking call whose channel is closed under it spins
        holding the GIL for about ten seconds, so the spans being saved meanwhile were saved that
        much later (``tests/test_signals.py`` at the lowest dependencies).
        """
        with self._lock:
            self._closing = True
            now = self._calls == 0
        if now:
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


def quiet_grpc_core(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Keep gRPC's C core from printing its own log lines, unless the user asked for them.

    The core logs (a failed TLS handshake, at INFO) straight to stderr, which would break the
    promise of one error line. GRPC_VERBOSITY=NONE is set when neither it nor GRPC_TRACE is set:
    a user who sets either one wants the core's lines and keeps them. Called before grpc is
    imported (the core reads the variable when it starts).

    Args:
        environ: The environment to set it in; defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    if "GRPC_VERBOSITY" not in env and "GRPC_TRACE" not in env:
        env["GRPC_VERBOSITY"] = "NONE"


def _grpc_retry_delay(exc: Exception) -> float | None:
    """The RetryInfo delay a gRPC error carries (google.rpc.RetryInfo in the status details), if any.

    The OTLP specification: a server that throttles "MAY" return RetryInfo with the delay to wait,
    and the client "SHOULD" honour it. It arrives as a google.rpc.Status in the trailing metadata.
    """
    from google.protobuf.message import DecodeError
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status as RpcStatus

    trailers = getattr(exc, "trailing_metadata", None)  # an RpcError that is a call has them
    metadata = trailers() if callable(trailers) else None
    for key, value in metadata or ():
        if not isinstance(value, bytes) or key not in (GRPC_STATUS_DETAILS_KEY, GRPC_RETRY_INFO_KEY):
            continue
        try:
            if key == GRPC_RETRY_INFO_KEY:  # a bare RetryInfo, as opentelemetry-python's receivers send it
                infos = [RetryInfo.FromString(value)]
            else:
                status = RpcStatus.FromString(value)
                infos = []
                for detail in status.details:
                    if detail.Is(RetryInfo.DESCRIPTOR):
                        infos.append(RetryInfo())
                        detail.Unpack(infos[-1])
        except DecodeError:
            return None
        for info in infos:
            seconds: float = info.retry_delay.ToNanoseconds() / 1e9
            return max(seconds, 0.0)
    return None


def _plaintext_hint(scheme: str) -> str:
    """The collector answered TLS in plaintext: what to write instead."""
    if scheme:
        return "the collector does not speak TLS on this port: use http:// for a plaintext collector"
    return (
        "the endpoint has no scheme, so TLS was used, and the collector answered in plaintext: "
        "write http://HOST:PORT, or set OTEL_EXPORTER_OTLP_INSECURE=true"
    )


def probe_tls(
    host: str, port: int, config: ExportConfig, *, verify: bool = True, timeout: float = PROBE_SECONDS
) -> str:
    """What one TLS handshake of our own says of ``host:port``, to explain a closed connection.

    Nothing is sent over it. ``verify=False`` only asks whether the port speaks TLS at all (for a
    plaintext endpoint, whose CA may not be configured).

    Returns:
        ``"plaintext"`` when the server answers TLS in plaintext, ``"closed"`` when the handshake
        succeeds and the server then closes the connection (or alerts that it wants a certificate)
        without a word, ``"open"`` when it keeps it open or speaks, ``"unknown"`` otherwise (no
        connection, or a certificate we do not trust: nothing to conclude).
    """
    context = ssl.create_default_context(cafile=str(config.certificate) if config.certificate else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.settimeout(timeout / 2)
            try:
                return "open" if tls.recv(1) else "closed"
            except ssl.SSLError as exc:
                return "closed" if "certificate" in str(exc).lower() else "unknown"
            except TimeoutError:
                return "open"
            except ConnectionError:
                return "closed"
    except ssl.SSLError as exc:
        return "plaintext" if any(words in str(exc).lower() for words in _NOT_TLS) else "unknown"
    except OSError:
        return "unknown"


def _grpc_credentials(config: ExportConfig) -> grpc.ChannelCredentials:
    quiet_grpc_core()
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
        self._session.headers["User-Agent"] = USER_AGENT  # a --header User-Agent still wins
        self._session.headers.update(dict(config.headers))
        self._session.headers["Content-Type"] = self.encoding.media_type
        if config.compression == "gzip":
            self._session.headers["Content-Encoding"] = "gzip"
        # Passed to each post(): requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify.
        self._verify: str | bool = str(config.certificate) if config.certificate else True
        if config.client_certificate and config.client_key:
            self._session.cert = (str(config.client_certificate), str(config.client_key))
        parts = urlsplit(config.endpoint)
        self._plaintext = parts.scheme == "http"
        self._address = (parts.hostname or "", parts.port or 80)
        self._diagnosis: str | None = None

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        """POST the request and translate the answer; a redirect is not followed (see :func:`_redirect`)."""
        body = _payload(request, self.encoding)
        if self._config.compression == "gzip":
            body = gzip.compress(body)
        config = self._config
        try:
            # stream=True: post() returns once the headers are in, so a late body is told apart below
            answer = self._session.post(
                config.endpoint,
                data=body,
                timeout=timeout,
                verify=self._verify,
                allow_redirects=False,
                stream=True,
            )
        except self._errors.SSLError as exc:
            reason = f"TLS handshake failed: {_root_cause(exc, config)}"
            if any(words in reason.lower() for words in _NOT_TLS):
                raise PermanentError(f"TLS handshake failed: {_plaintext_hint('https')}") from None
            raise PermanentError(_tls_hint(reason, config)) from None
        except self._errors.ReadTimeout:
            raise StalledError("no answer in time") from None
        except (self._errors.ConnectionError, self._errors.Timeout) as exc:
            if _answered_in_http2(exc):
                raise PermanentError(
                    "the endpoint answered in HTTP/2 without TLS, not OTLP/HTTP: it is a gRPC port; "
                    "use the collector's OTLP/HTTP port (4318), or --protocol grpc"
                ) from None
            if self._plaintext and not isinstance(exc, self._errors.Timeout) and self._speaks_tls():
                raise PermanentError(TLS_PORT_HINT) from None
            raise RetryableError(f"cannot reach the collector: {_root_cause(exc, config)}") from None
        except self._errors.RequestException as exc:
            raise PermanentError(f"HTTP request failed: {_root_cause(exc, config)}") from None
        with answer:
            return self._answer(answer)

    def _answer(self, answer: requests.Response) -> Answer:
        """Read the body (the headers are in) and translate the whole answer."""
        config = self._config
        try:
            content = answer.content
        except self._errors.RequestException as exc:
            if _timed_out(exc):
                raise StalledError("the answer's body did not come in time") from None
            raise RetryableError(f"the answer was cut off: {_root_cause(exc, config)}") from None
        if answer.status_code in RETRYABLE_HTTP_STATUSES:
            raise RetryableError(f"HTTP {answer.status_code}", _retry_after(answer))
        if 300 <= answer.status_code < 400:
            raise PermanentError(_redirect(answer, config))
        if not 200 <= answer.status_code < 300:
            text = _error_text(answer, config)
            if self._plaintext and any(words in text.lower() for words in _PLAINTEXT_AT_TLS):
                raise PermanentError(f"HTTP {answer.status_code}: {TLS_PORT_HINT}")
            raise PermanentError(f"HTTP {answer.status_code}: {text}")
        return self._response(answer) if content else Answer()

    def _speaks_tls(self) -> bool:
        """Whether the port a plaintext connection was dropped by speaks TLS (asked once, by a handshake).

        A TLS server reads a plaintext request as a broken handshake and resets the connection
        (the Collector answers 400 instead, handled with the other statuses).
        """
        if self._diagnosis is None:
            host, port = self._address
            found = probe_tls(host, port, self._config, verify=False)
            self._diagnosis = TLS_PORT_HINT if found in ("open", "closed") else ""
        return bool(self._diagnosis)

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


def _retry_after(answer: requests.Response, now: float | None = None) -> float | None:
    """Retry-After in seconds: RFC 9110 allows a number of seconds or an HTTP date.

    The OTLP specification: with 429 or 503 the server "MAY include a Retry-After header with a
    recommended time interval in seconds to wait before retrying", and the client "SHOULD honour
    the waiting interval"; a date is turned into the seconds from now (the wall clock: the date is).
    """
    return retry_after_seconds(answer.headers.get("Retry-After", ""), now)


def retry_after_seconds(value: str, now: float | None = None) -> float | None:
    """A Retry-After value in seconds from ``now`` (a time.time()), None when it is neither form.

    Args:
        value: The header's value: ``120`` or ``Wed, 21 Oct 2015 07:28:00 GMT``.
        now: The current time (seconds since the epoch); by default the wall clock.

    Returns:
        The seconds to wait, never negative; None when there is no usable value.
    """
    value = value.strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _answered_in_http2(exc: BaseException) -> bool:
    """Whether the server answered an HTTP/1.1 request with HTTP/2 frames (a gRPC port without TLS).

    http.client then reports the frames' raw bytes (NUL bytes and all) as a bad status line.
    """
    for seen in _chain(exc):
        args = seen.args
        if isinstance(seen, http.client.BadStatusLine) or any(
            isinstance(arg, http.client.BadStatusLine) for arg in args
        ):
            line = next(
                (str(a) for a in (seen, *args) if isinstance(a, http.client.BadStatusLine)), str(seen)
            )
            return line.startswith("\x00") or "\x00\x00" in line
    return False


def _timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout (``TimeoutError``, which ``socket.timeout`` is) is behind ``exc``.

    requests reports a body that stopped coming as a ConnectionError wrapping urllib3's
    ReadTimeoutError, which wraps the socket's timeout.
    """
    return any(isinstance(seen, TimeoutError) for seen in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised while handling, innermost last (a loop ends it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__context__


def _root_cause(exc: BaseException, config: ExportConfig) -> str:
    """The innermost error's text, redacted (requests quotes the URL, query and all), then cut short."""
    *_, innermost = _chain(exc)
    text = config.redact(str(innermost))
    return text if len(text) <= 300 else text[:300] + "..."
