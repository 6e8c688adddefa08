"""Resolve where and how to send the trace: one setting at a time, flag first, then OTEL_*, then default.

Each setting follows OpenTelemetry's exporter configuration: an explicit
argument wins, then the signal-specific ``OTEL_EXPORTER_OTLP_TRACES_*``
variable, then the generic ``OTEL_EXPORTER_OTLP_*`` one, then the default.
(The OTLP Exporter specification: "Each configuration option MUST be overridable
by a signal specific option.") Which exporter runs at all follows the SDK's
``OTEL_SDK_DISABLED`` and ``OTEL_TRACES_EXPORTER`` (see :func:`resolve_exporter`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, quote, quote_plus, unquote, urlsplit

from ..errors import ConfigError
from .transport import Protocol as Protocol  # re-exported: the protocol is a setting, named here too

logger = logging.getLogger(__name__)

DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
DEFAULT_TIMEOUT_SECONDS = 10.0
"""OpenTelemetry's default OTEL_EXPORTER_OTLP_TIMEOUT (10,000 ms)."""


DEFAULT_PROTOCOL = Protocol.HTTP_PROTOBUF
"""OpenTelemetry's specified default for OTEL_EXPORTER_OTLP_PROTOCOL."""


class Exporter(str, Enum):
    """What becomes of the trace: OTEL_TRACES_EXPORTER's values (and OTEL_SDK_DISABLED's ``none``)."""

    OTLP = "otlp"
    """Sent over OTLP (the default)."""
    CONSOLE = "console"
    """Written to standard output as OTLP/JSON lines, as ``--output -`` does."""
    NONE = "none"
    """Planned, the traceparent file written, nothing sent."""


REDACTED = "[REDACTED]"
"""What a secret (a header value, the endpoint's query or credentials) is shown as."""
MIN_SECRET_CHARS = 4
"""Shorter values (a tenant id such as ``1``) are not redacted: they guard nothing, and replacing
every ``1`` in a collector's message would garble it."""
MIN_SECRET_WORD_CHARS = 8
"""A word of a value this long is redacted on its own too: the token of ``Bearer TOKEN``."""
BINARY_SUFFIX = "-bin"
"""gRPC metadata whose key ends so carries bytes, written in base64 (gRPC over HTTP/2)."""
_HTTP_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
"""RFC 9110's token characters: what an HTTP field name is made of."""
_GRPC_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")
"""What gRPC accepts in a metadata key (lowercase ASCII)."""
_REQUOTE_SAFE = "!#$%&'()*+,/:;=?@[]~"
"""The characters requests leaves unquoted in a URL it re-quotes, so a query is found in its messages."""


@dataclass(frozen=True)
class ExportConfig:
    """A resolved OTLP destination.

    Attributes:
        endpoint: For gRPC, ``scheme://host:port``; for HTTP, the full URL of the traces path.
        protocol: The transport.
        exporter: Whether the trace is sent (``otlp``), printed (``console``) or neither (``none``);
            with the last two, no other setting is read and ``endpoint`` is the default.
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
    exporter: Exporter = Exporter.OTLP
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    insecure: bool = False
    certificate: Path | None = None
    client_key: Path | None = None
    client_certificate: Path | None = None
    compression: str | None = None

    def __post_init__(self) -> None:
        """Refuse headers the protocol cannot carry, so a config that exists can be sent."""
        for name, value in self.headers:
            check_header(name, value, self.protocol, "headers")

    @property
    def display_endpoint(self) -> str:
        """The endpoint without user:password, its query as ``?[REDACTED]``: either may hold a token.

        Every message, log line, summary and ledger row shows this, never ``endpoint``.
        """
        return display_url(self.endpoint)

    @property
    def grpc_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The headers as gRPC metadata: a ``-bin`` key's base64 value decoded into the bytes gRPC wants."""
        return tuple(
            (name, _binary(value) if name.endswith(BINARY_SUFFIX) else value) for name, value in self.headers
        )

    def redact(self, text: str) -> str:
        """Outside text (a collector's message, an HTTP library's error) without this config's secrets.

        Header values (also percent-encoded), the endpoint's query and its user:password become
        ``[REDACTED]``: collectors echo what they were sent, and the tool must not print it.

        Args:
            text: The text, as the collector or library gave it.

        Returns:
            The text without any configured secret.
        """
        return text if self._secrets is None else self._secrets.sub(REDACTED, text)

    @cached_property
    def _secrets(self) -> re.Pattern[str] | None:
        """One pattern of every secret in every written form, longest first (so a whole value wins)."""
        found: set[str] = set()
        for name, value in self.headers:
            found.update(_long_enough([value, *_binary_text(name, value)]))
            found.update(word for word in value.split() if len(word) >= MIN_SECRET_WORD_CHARS)
        parts = _url_parts(self.endpoint)
        if parts is not None:
            if parts.query:
                found.add(parts.query)  # whole, however short: requests quotes it in its exception texts
                raw = [piece.partition("=")[2] for piece in parts.query.split("&")]
                found.update(_long_enough([*raw, *(v for _, v in parse_qsl(parts.query, True))]))
            userinfo = parts.netloc.rpartition("@")[0]
            found.update(_long_enough([*userinfo.split(":", 1), parts.username or "", parts.password or ""]))
        forms = {form for secret in found for form in _written_forms(secret)}
        if not forms:
            return None
        return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


def display_url(url: str) -> str:
    """A URL as messages show it: no user:password, the query as ``?[REDACTED]``, else unchanged.

    Args:
        url: An endpoint, with or without a scheme.

    Returns:
        The URL without its credentials.
    """
    parts = _url_parts(url)
    if parts is None:  # not parseable (a bad IPv6 literal): keep only what comes before any credential
        return url.split("?", 1)[0].rpartition("@")[2] + (f"?{REDACTED}" if "?" in url else "")
    host = parts.netloc.rpartition("@")[2]
    if host == parts.netloc and not parts.query:
        return url
    shown = parts._replace(netloc=host, query=REDACTED if parts.query else "").geturl()
    return shown if "://" in url else shown.removeprefix("//")


def _url_parts(url: str) -> SplitResult | None:
    """The URL's parts (a gRPC target without a scheme is read as ``//host:port``), None if unparseable."""
    try:
        return urlsplit(url if "://" in url else f"//{url}")
    except ValueError:
        return None


def _long_enough(candidates: Sequence[str]) -> set[str]:
    return {text for text in candidates if len(text) >= MIN_SECRET_CHARS}


def _written_forms(secret: str) -> set[str]:
    """A secret as given and as URLs and forms percent-encode it (a collector may echo either)."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret, safe=_REQUOTE_SAFE)}


def check_header(name: str, value: str, protocol: Protocol, source: str) -> None:
    """Refuse a header the protocol cannot carry, naming it but never showing its value.

    HTTP takes RFC 9110 token characters in names and, in values, no control character but tab
    and nothing outside Latin-1 (what http.client can encode); gRPC takes lowercase ASCII letters,
    digits, ``-``, ``_`` and ``.`` in keys and printable ASCII in values, and a ``-bin`` key's
    value is base64. Checked before anything is sent: a line break would otherwise reach the
    wire library, whose error quotes the value.

    Args:
        name: The header's name (lowercased).
        value: Its value.
        protocol: The protocol it is sent over.
        source: Where it was set (``--header``, the variable's name), for the message.

    Raises:
        ConfigError: If the name or the value cannot be sent.
    """
    grpc = protocol is Protocol.GRPC
    allowed = _GRPC_KEY_CHARS if grpc else _HTTP_NAME_CHARS
    if not name:
        raise ConfigError(f"{source}: a header has no name")
    bad = next((i for i, char in enumerate(name) if char not in allowed), None)
    if bad is not None:  # only the part before the fault is shown: the rest may be a mistyped value
        rule = (
            "gRPC metadata keys are lowercase letters, digits, '-', '_' and '.' only"
            if grpc
            else "HTTP header names are letters, digits and !#$%&'*+-.^_`|~ only"
        )
        shown = f"header name {name[:bad] + '...'!r}" if bad else "a header name"
        raise ConfigError(f"{source}: {shown} has {_character(name[bad])}: {rule}")
    if grpc and name.endswith(BINARY_SUFFIX):
        try:
            _binary(value)
        except ValueError:
            raise ConfigError(
                f"{source}: header {name!r} is binary gRPC metadata (its name ends in {BINARY_SUFFIX}), "
                "so its value must be base64 (the value is not shown)"
            ) from None
        return
    fault = next((char for char in value if not _carriable(char, grpc)), None)
    carrier = "gRPC metadata (printable ASCII only)" if grpc else "an HTTP header"
    if fault is not None:
        what = f"has {_character(fault, http_value=not grpc)}"
    elif not grpc and value[:1] in (" ", "\t"):  # HTTP strips it; requests refuses it, quoting the value
        what = "starts with a space or a tab"
    else:
        return
    raise ConfigError(
        f"{source}: the value of header {name!r} {what}, which {carrier} cannot carry "
        "(the value is not shown)"
    )


def _carriable(char: str, grpc: bool) -> bool:
    code = ord(char)
    if grpc:
        return 0x20 <= code <= 0x7E
    return char == "\t" or 0x20 <= code <= 0x7E or 0x80 <= code <= 0xFF


def _character(char: str, *, http_value: bool = False) -> str:
    """What kind of character it is, in words: enough to find it, never the value's text."""
    code = ord(char)
    if char in "\r\n":
        return "a line break"
    if char == "\0":
        return "a NUL character"
    if char in " \t":
        return "a space" if char == " " else "a tab"
    if code < 0x20 or code == 0x7F:
        return "a control character"
    if code > 0x7E:
        return "a character outside Latin-1" if http_value else "a non-ASCII character"
    return f"the character {char!r}"


def _binary_text(name: str, value: str) -> list[str]:
    """A ``-bin`` value decoded, when its bytes are text: a collector may echo what it received."""
    if not name.endswith(BINARY_SUFFIX):
        return []
    try:
        return [_binary(value).decode("utf-8")]
    except ValueError:  # not base64 (sent over HTTP as given), or bytes that are not text
        return []


def _binary(value: str) -> bytes:
    """A ``-bin`` value's bytes: base64, padded or not (gRPC accepts both); ValueError if not base64."""
    return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)


def resolve_export_config(
    *,
    endpoint: str | None = None,
    traces_endpoint: str | None = None,
    protocol: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExportConfig:
    """Resolve the OTLP destination from explicit values, then OTEL_* variables, then defaults.

    Args:
        endpoint: --endpoint, the collector's base URL, exactly as OTEL_EXPORTER_OTLP_ENDPOINT: for
            HTTP, ``/v1/traces`` is appended to its path (``https://host/otlp`` sends to
            ``https://host/otlp/v1/traces``); for gRPC it is the target.
        traces_endpoint: --traces-endpoint, the full URL, exactly as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
            used as is. Either flag wins over both variables; this one wins over ``endpoint``.
        protocol: --protocol: ``grpc``, ``http/protobuf`` or ``http/json``.
        headers: --header pairs; they override variables' headers of the same name.
        timeout: --timeout in seconds (OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds).
        environ: The environment to read; defaults to ``os.environ``.

    Returns:
        The configuration. When OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER turn OTLP off, no other
        setting is read (a switched-off exporter's settings cannot fail a run).

    Raises:
        ConfigError: If a value cannot be used (an unknown protocol, a bad timeout, a header the
            protocol cannot carry, a client key without a client certificate); a header is named,
            its value never shown.
    """
    env = os.environ if environ is None else environ
    exporter = resolve_exporter(env)
    if exporter is not Exporter.OTLP:
        return ExportConfig(endpoint=DEFAULT_HTTP_ENDPOINT + TRACES_PATH, exporter=exporter)
    chosen_protocol = _protocol(protocol or _setting(env, "PROTOCOL") or DEFAULT_PROTOCOL.value)
    chosen = {**_env_headers(env), **{k.strip().lower(): (v, "--header") for k, v in headers}}
    for name, (value, source) in chosen.items():  # each named with where it was set
        check_header(name, value, chosen_protocol, source)
    client_key, client_certificate = (
        _path(_setting(env, "CLIENT_KEY")),
        _path(_setting(env, "CLIENT_CERTIFICATE")),
    )
    _check_client_pair(client_key, client_certificate)
    return ExportConfig(
        endpoint=_endpoint(traces_endpoint, endpoint, chosen_protocol, env),
        protocol=chosen_protocol,
        headers=tuple((name, value) for name, (value, _) in chosen.items()),
        timeout=timeout if timeout is not None else _env_timeout(env),
        insecure=_boolean(_setting(env, "INSECURE")),
        certificate=_path(_setting(env, "CERTIFICATE")),
        client_key=client_key,
        client_certificate=client_certificate,
        compression=_compression(_setting(env, "COMPRESSION")),
    )


def resolve_exporter(environ: Mapping[str, str] | None = None) -> Exporter:
    """Which exporter runs: OTEL_SDK_DISABLED, then OTEL_TRACES_EXPORTER, then ``otlp``.

    The SDK configuration specification: OTEL_SDK_DISABLED "true" (case-insensitive, and nothing
    else) means "a no-op SDK implementation will be used for all telemetry signals", so nothing
    is sent; another value than ``false`` is warned about and read as false. OTEL_TRACES_EXPORTER
    is a comma-separated list of ``otlp``, ``console`` and ``none`` ("none: No automatically
    configured exporter"); a value the tool does not know is warned about and ignored, as the
    specification requires of unknown enum values. ``console`` wins over ``otlp`` when both are
    listed (the tool sends or writes one copy), ``none`` over both.

    Args:
        environ: The environment; defaults to ``os.environ``.

    Returns:
        The exporter.
    """
    env = os.environ if environ is None else environ
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower()
    if disabled not in ("", "true", "false"):
        logger.warning("OTEL_SDK_DISABLED: %r is neither true nor false; read as false", disabled)
    if disabled == "true":
        return Exporter.NONE
    named: set[Exporter] = set()
    for item in env.get("OTEL_TRACES_EXPORTER", "").split(","):
        value = item.strip().lower()
        if not value:
            continue
        try:
            named.add(Exporter(value))
        except ValueError:
            choices = ", ".join(e.value for e in Exporter)
            logger.warning("OTEL_TRACES_EXPORTER: %r is not supported (%s); ignored", value, choices)
    return next((e for e in (Exporter.NONE, Exporter.CONSOLE) if e in named), Exporter.OTLP)


def _check_client_pair(key: Path | None, certificate: Path | None) -> None:
    """Refuse half a client identity: requests silently ignored a key alone, gRPC fails obscurely."""
    if (key is None) == (certificate is None):
        return
    present, missing = (
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
        if certificate is None
        else ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY")
    )
    raise ConfigError(
        f"{present} is set but {missing} is not: mutual TLS needs both the client certificate "
        "and its key (set both, or neither)"
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


def _endpoint(
    traces_endpoint: str | None, endpoint: str | None, protocol: Protocol, env: Mapping[str, str]
) -> str:
    """The endpoint, refused at once (exit 2) when it is no URL.

    The order: --traces-endpoint, --endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_ENDPOINT, the default. The OTLP Exporter specification decides what each
    means: with OTEL_EXPORTER_OTLP_ENDPOINT "exporters MUST construct per-signal URLs" (for
    OTLP/HTTP, ``v1/traces`` appended to the base URL's path), while "the per-signal endpoint
    configuration options ... [are] used as-is ..., without any modifications". The flags mean
    exactly what their variables mean. For gRPC both are the target (its path is not used).

    A bad port or IPv6 literal would otherwise surface as a failed export (exit 3) or as the URL
    library's traceback.
    """
    default = DEFAULT_GRPC_ENDPOINT if protocol is Protocol.GRPC else DEFAULT_HTTP_ENDPOINT
    url, full, source = next(
        (value.strip(), full, source)
        for value, full, source in (
            (traces_endpoint, True, "--traces-endpoint"),
            (endpoint, False, "--endpoint"),
            (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), True, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (env.get("OTEL_EXPORTER_OTLP_ENDPOINT"), False, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (default, False, "default"),
        )
        if value and value.strip()
    )
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535 or not a number
    except ValueError as exc:
        raise ConfigError(f"endpoint {display_url(url)!r} is not a URL: {exc}") from None
    if protocol is Protocol.GRPC:
        return url.rstrip("/")
    if "://" not in url:
        raise ConfigError(
            f"{source}: endpoint {display_url(url)!r} needs a scheme for HTTP (http:// or https://)"
        )
    if full:
        return url
    if parts.path.rstrip("/").endswith(TRACES_PATH):  # a full URL given as a base: the old --endpoint
        logger.warning(
            "%s: a base URL whose path already ends in %s: spans go to %s%s; give a full URL with "
            "--traces-endpoint (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
            source,
            TRACES_PATH,
            display_url(url).rstrip("/"),
            TRACES_PATH,
        )
    return parts._replace(path=parts.path.rstrip("/") + TRACES_PATH).geturl()


def _env_headers(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The variables' headers: each name with its value and the variable that set it."""
    headers: dict[str, tuple[str, str]] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for item in env.get(name, "").split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                # shown up to a colon or a space: "key: value" or "Bearer TOKEN" must not print the secret
                shown = re.split(r"[:\s]", key.strip(), maxsplit=1)[0]
                shown += "..." if shown != key.strip() else ""
                raise ConfigError(f"{name}: {shown!r} is not a key=value header")
            headers[unquote(key.strip()).lower()] = (unquote(value.strip()), name)
    return headers


def parse_header(text: str) -> tuple[str, str]:
    """Split a --header value ``KEY=VALUE`` (``KEY: VALUE`` is accepted too) at its first separator.

    The first of ``=`` and ``:``, so ``Authorization: Bearer abc=`` is the header ``authorization``
    (a base64 token ends in ``=``), never a header named ``authorization: bearer abc``.

    Args:
        text: The flag's value.

    Returns:
        The lowercased key and the value.

    Raises:
        ConfigError: If there is no separator or no key.
    """
    cut = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
    key = text[:cut].strip() if cut >= 0 else ""
    if not key:
        raise ConfigError("--header takes KEY=VALUE")
    return key.lower(), text[cut + 1 :].strip()


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
