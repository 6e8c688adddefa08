"""Resolve where and how to send the trace: one setting at a time, flag first, then OTEL_*, then default.

Each setting follows OpenTelemetry's exporter configuration: an explicit
argument wins, then the signal-specific ``OTEL_EXPORTER_OTLP_TRACES_*``
variable, then the generic ``OTEL_EXPORTER_OTLP_*`` one, then the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from .transport import Protocol as Protocol  # re-exported: the protocol is a setting, named here too

DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
DEFAULT_TIMEOUT_SECONDS = 10.0
"""OpenTelemetry's default OTEL_EXPORTER_OTLP_TIMEOUT (10,000 ms)."""


DEFAULT_PROTOCOL = Protocol.HTTP_PROTOBUF
"""OpenTelemetry's specified default for OTEL_EXPORTER_OTLP_PROTOCOL."""


@dataclass(frozen=True)
class ExportConfig:
    """A resolved OTLP destination.

    Attributes:
        endpoint: For gRPC, ``scheme://host:port``; for HTTP, the full URL of the traces path.
        protocol: The transport.
        headers: Extra request headers or gRPC metadata (e.g. an API token); never logged.
        timeout: Seconds each request, retries included, may take.
        insecure: For gRPC endpoints without a scheme: plaintext instead of TLS.
        certificate: A CA bundle (PEM) to trust for the collector's TLS certificate.
        client_key: The client's private key (PEM) for mutual TLS.
        client_certificate: The client's certificate chain (PEM) for mutual TLS.
        compression: ``gzip`` or None.
    """

    endpoint: str
    protocol: Protocol = DEFAULT_PROTOCOL
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    insecure: bool = False
    certificate: Path | None = None
    client_key: Path | None = None
    client_certificate: Path | None = None
    compression: str | None = None

    @property
    def display_endpoint(self) -> str:
        """The endpoint without any user:password part, for logs and the summary."""
        parts = urlsplit(self.endpoint)
        if parts.username or parts.password:
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return parts._replace(netloc=netloc).geturl()
        return self.endpoint


def resolve_export_config(
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExportConfig:
    """Resolve the OTLP destination from explicit values, then OTEL_* variables, then defaults.

    Args:
        endpoint: --endpoint; for HTTP, ``/v1/traces`` is appended unless the URL already has a path.
        protocol: --protocol: ``grpc``, ``http/protobuf`` or ``http/json``.
        headers: --header pairs; they override variables' headers of the same name.
        timeout: --timeout in seconds (OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds).
        environ: The environment to read; defaults to ``os.environ``.

    Returns:
        The configuration.

    Raises:
        ConfigError: If a value cannot be used (an unknown protocol, a bad timeout or header).
    """
    env = os.environ if environ is None else environ
    chosen_protocol = _protocol(protocol or _setting(env, "PROTOCOL") or DEFAULT_PROTOCOL.value)
    return ExportConfig(
        endpoint=_endpoint(endpoint, chosen_protocol, env),
        protocol=chosen_protocol,
        headers=tuple({**_env_headers(env), **{k.strip().lower(): v for k, v in headers}}.items()),
        timeout=timeout if timeout is not None else _env_timeout(env),
        insecure=_boolean(_setting(env, "INSECURE")),
        certificate=_path(_setting(env, "CERTIFICATE")),
        client_key=_path(_setting(env, "CLIENT_KEY")),
        client_certificate=_path(_setting(env, "CLIENT_CERTIFICATE")),
        compression=_compression(_setting(env, "COMPRESSION")),
    )


def _setting(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")
    return value.strip() if value and value.strip() else None


def _protocol(value: str) -> Protocol:
    try:
        return Protocol(value.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Protocol)
        raise ConfigError(f"unknown OTLP protocol {value!r} (choose one of {choices})") from None


def _endpoint(explicit: str | None, protocol: Protocol, env: Mapping[str, str]) -> str:
    if protocol is Protocol.GRPC:
        return (explicit or _setting(env, "ENDPOINT") or DEFAULT_GRPC_ENDPOINT).rstrip("/")
    if explicit:
        return _with_traces_path(explicit)
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific  # used as-is, as the specification says
    generic = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_HTTP_ENDPOINT
    return generic.rstrip("/") + TRACES_PATH


def _with_traces_path(url: str) -> str:
    if "://" not in url:
        raise ConfigError(f"endpoint {url!r} needs a scheme for HTTP (http:// or https://)")
    return url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + TRACES_PATH


def _env_headers(env: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for item in env.get(name, "").split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{name}: {key.strip()!r} is not a key=value header")
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def parse_header(text: str) -> tuple[str, str]:
    """Split a --header value ``KEY=VALUE`` (``KEY: VALUE`` is accepted too).

    Args:
        text: The flag's value.

    Returns:
        The lowercased key and the value.

    Raises:
        ConfigError: If there is no separator or no key.
    """
    for separator in ("=", ":"):
        key, sep, value = text.partition(separator)
        if sep and key.strip():
            return key.strip().lower(), value.strip()
    raise ConfigError("--header takes KEY=VALUE")


def _env_timeout(env: Mapping[str, str]) -> float:
    raw = _setting(env, "TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        milliseconds = float(raw)
    except ValueError:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT: {raw!r} is not a number of milliseconds") from None
    if milliseconds <= 0:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT: {raw!r} must be positive")
    return milliseconds / 1000


def _boolean(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _compression(value: str | None) -> str | None:
    if value is None or value.lower() == "none":
        return None
    if value.lower() != "gzip":
        raise ConfigError(f"OTEL_EXPORTER_OTLP_COMPRESSION: {value!r} is not supported (gzip or none)")
    return "gzip"
