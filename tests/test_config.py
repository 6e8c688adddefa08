"""OTLP settings: flag, then OTEL_EXPORTER_OTLP_TRACES_*, then OTEL_EXPORTER_OTLP_*, then default."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from dbt_otel_replay.errors import ConfigError
from dbt_otel_replay.export.config import (
    ExportConfig,
    Exporter,
    Protocol,
    parse_header,
    resolve_export_config,
    resolve_exporter,
)
from dbt_otel_replay.export.transport import retry_after_seconds
from dbt_otel_replay.replay import resource_attributes


def test_defaults_follow_the_specification() -> None:
    config = resolve_export_config(environ={})
    assert config.protocol is Protocol.HTTP_PROTOBUF
    assert config.endpoint == "http://localhost:4318/v1/traces"
    assert config.timeout == 10.0 and config.headers == () and config.compression is None
    assert resolve_export_config(protocol="grpc", environ={}).endpoint == "http://localhost:4317"


def test_generic_endpoint_gets_the_traces_path_and_the_specific_one_is_used_as_is() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"}
    assert resolve_export_config(environ=env).endpoint == "https://collector:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "https://collector:4318/custom"
    assert resolve_export_config(environ=env).endpoint == "https://collector:4318/custom"
    assert (
        resolve_export_config(endpoint="http://flag:9999", environ=env).endpoint
        == "http://flag:9999/v1/traces"
    ), "a flag wins over both variables"


@pytest.mark.parametrize(
    ("base", "url"),
    [  # the OTLP Exporter specification's examples, and Grafana Cloud's gateway
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://collector:4318/mycollector/", "https://collector:4318/mycollector/v1/traces"),
        (
            "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp",
            "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp/v1/traces",
        ),
        ("https://collector/otlp?tenant=a", "https://collector/otlp/v1/traces?tenant=a"),
    ],
)
def test_endpoint_means_exactly_what_the_base_variable_means(base: str, url: str) -> None:
    """Issue #13: a base URL with a path, passed to --endpoint, went to the wrong path (a 404)."""
    assert resolve_export_config(endpoint=base, environ={}).endpoint == url
    assert resolve_export_config(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": base}).endpoint == url


def test_traces_endpoint_is_used_as_is_and_wins_over_endpoint() -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/env-path"}
    full = "https://collector/otlp/v1/traces"
    assert resolve_export_config(traces_endpoint=full, environ={}).endpoint == full
    assert resolve_export_config(traces_endpoint=full, endpoint="http://base", environ=env).endpoint == full
    assert resolve_export_config(traces_endpoint="http://c:4318", environ={}).endpoint == "http://c:4318"
    grpc = resolve_export_config(traces_endpoint="http://c:4317/", protocol="grpc", environ={})
    assert grpc.endpoint == "http://c:4317"
    with pytest.raises(ConfigError, match=r"^--traces-endpoint: endpoint 'c:4318/x' needs a scheme"):
        resolve_export_config(traces_endpoint="c:4318/x", environ={})


def test_precedence_flag_then_signal_specific_then_generic() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-team=data",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-team=analytics",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    config = resolve_export_config(environ=env)
    assert config.protocol is Protocol.GRPC
    assert config.timeout == 2.5
    assert dict(config.headers) == {"authorization": "Bearer abc", "x-team": "analytics"}
    assert config.certificate == Path("/etc/ca.pem") and config.compression == "gzip" and config.insecure
    flagged = resolve_export_config(
        protocol="http/protobuf", timeout=30, headers=[("X-Team", "flag")], environ=env
    )
    assert flagged.protocol is Protocol.HTTP_PROTOBUF and flagged.timeout == 30
    assert dict(flagged.headers)["x-team"] == "flag"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "unknown OTLP protocol"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "milliseconds"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}, "positive"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "key=value"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "not supported"),
    ],
)
def test_unusable_settings_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_export_config(environ=env)


def test_header_flag_syntax() -> None:
    assert parse_header("Authorization=Bearer a=b") == ("authorization", "Bearer a=b")
    assert parse_header("x-api-key: 123") == ("x-api-key", "123")
    with pytest.raises(ConfigError):
        parse_header("nothing")


def test_credentials_in_the_endpoint_are_not_displayed() -> None:
    config = resolve_export_config(endpoint="https://user:secret@collector:4318", environ={})
    assert "secret" not in config.display_endpoint and "collector:4318" in config.display_endpoint


def test_service_name_precedence() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment.name=prod%20eu"}
    assert resource_attributes(environ={}) == {"service.name": "dbt"}
    assert resource_attributes(environ=env) == {
        "service.name": "from-attrs",
        "deployment.environment.name": "prod eu",
    }
    assert resource_attributes(environ={**env, "OTEL_SERVICE_NAME": "from-env"})["service.name"] == "from-env"
    assert (
        resource_attributes("from-flag", environ={**env, "OTEL_SERVICE_NAME": "x"})["service.name"]
        == "from-flag"
    )


def test_a_malformed_resource_attributes_variable_is_discarded_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Resource SDK specification: on error the entire value SHOULD be discarded (issue #13)."""
    env = {"OTEL_RESOURCE_ATTRIBUTES": "team=data,broken,service.name=attrs", "OTEL_SERVICE_NAME": ""}
    assert resource_attributes(environ=env) == {"service.name": "dbt"}, "none of it is kept"
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        "OTEL_RESOURCE_ATTRIBUTES: 'broken' is not key=value, so the whole variable is ignored"
    )
    caplog.clear()
    assert resource_attributes("svc", environ={"OTEL_RESOURCE_ATTRIBUTES": "=x"}) == {"service.name": "svc"}
    assert len(caplog.records) == 1


def test_header_flag_splits_at_its_first_separator() -> None:
    # a base64 token ends in "=": the colon form must not make "authorization: bearer abc" a header name
    assert parse_header("Authorization: Bearer abc=") == ("authorization", "Bearer abc=")
    assert parse_header("x-api-key: a=b") == ("x-api-key", "a=b")
    assert parse_header("x-api-key=a:b") == ("x-api-key", "a:b")
    with pytest.raises(ConfigError, match="--header takes KEY=VALUE"):
        parse_header("=value")


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        ("https://collector:4318/v1/traces?api_key=SEKRIT", "https://collector:4318/v1/traces?[REDACTED]"),
        ("https://user:SEKRIT@collector:4318/x?k=SEKRIT&b=1", "https://collector:4318/x?[REDACTED]"),
        ("http://user:SEKRIT@[::1]:4318/v1/traces", "http://[::1]:4318/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/traces?", "http://collector:4318/v1/traces?"),
    ],
)
def test_the_displayed_endpoint_has_no_query_and_no_credentials(endpoint: str, shown: str) -> None:
    assert resolve_export_config(traces_endpoint=endpoint, environ={}).display_endpoint == shown


def test_a_grpc_target_without_a_scheme_is_displayed_without_credentials() -> None:
    config = resolve_export_config(endpoint="user:SEKRIT@collector:4317", protocol="grpc", environ={})
    assert config.display_endpoint == "collector:4317"


def test_an_endpoint_without_a_scheme_is_refused_without_its_secrets() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_export_config(endpoint="user:SEKRIT@collector:4318/v1/traces?key=SEKRIT", environ={})
    assert "SEKRIT" not in str(raised.value)
    assert "'collector:4318/v1/traces?[REDACTED]' needs a scheme" in str(raised.value)


SECRET = "SEKRIT-0123456789"


@pytest.mark.parametrize(
    ("protocol", "env", "flags", "message"),
    [
        (
            "http/protobuf",
            {"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}%0A"},
            [],
            "OTEL_EXPORTER_OTLP_HEADERS: the value of header 'x-api-key' has a line break, "
            "which an HTTP header cannot carry (the value is not shown)",
        ),
        (
            "grpc",
            {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-api-key={SECRET}%0D"},
            [],
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS: the value of header 'x-api-key' has a line break, "
            "which gRPC metadata (printable ASCII only) cannot carry (the value is not shown)",
        ),
        (
            "http/json",
            {},
            [("x-api-key", f"{SECRET}\0")],
            "--header: the value of header 'x-api-key' has a NUL character, which an HTTP header cannot",
        ),
        (
            "http/protobuf",
            {},
            [("x-api-key", f"{SECRET}\x1b[2J")],
            "--header: the value of header 'x-api-key' has a control character",
        ),
        (
            "http/protobuf",
            {},
            [("x-api-key", f"{SECRET}\u20ac")],
            "--header: the value of header 'x-api-key' has a character outside Latin-1",
        ),
        ("grpc", {}, [("x-api-key", f"{SECRET}\u00e9")], "has a non-ASCII character, which gRPC metadata"),
        (
            "http/protobuf",
            {},
            [("x-api-key", f" {SECRET}")],
            "--header: the value of header 'x-api-key' starts with a space or a tab, which an HTTP header "
            "cannot carry (the value is not shown)",
        ),
        ("grpc", {}, [("x-api-key", f"{SECRET}\tx")], "has a tab, which gRPC metadata"),
        (
            "http/protobuf",
            {},
            [("authorization bearer", SECRET)],
            "--header: header name 'authorization...' has a space: HTTP header names are letters, digits "
            "and !#$%&'*+-.^_`|~ only",
        ),
        (
            "grpc",
            {"OTEL_EXPORTER_OTLP_HEADERS": f"x!key={SECRET}"},
            [],
            "OTEL_EXPORTER_OTLP_HEADERS: header name 'x...' has the character '!': gRPC metadata keys are "
            "lowercase letters, digits, '-', '_' and '.' only",
        ),
        (
            "http/protobuf",
            {},
            [("\u00e9t\u00e9", SECRET)],
            "--header: a header name has a non-ASCII character",
        ),
        (
            "grpc",
            {},
            [("x-token-bin", f"{SECRET}!")],
            "--header: header 'x-token-bin' is binary gRPC metadata (its name ends in -bin), so its value "
            "must be base64 (the value is not shown)",
        ),
    ],
)
def test_headers_the_protocol_cannot_carry_are_refused_by_name_never_by_value(
    protocol: str, env: dict[str, str], flags: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_export_config(protocol=protocol, headers=flags, environ=env)
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_header_given_by_the_flag_replaces_an_unusable_one_of_the_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=bad%0Avalue"}
    config = resolve_export_config(headers=[("x-api-key", "good")], environ=env)
    assert config.headers == (("x-api-key", "good"),)


def test_a_config_made_directly_refuses_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(ConfigError, match=r"^headers: the value of header 'x-api-key' has a line break"):
        ExportConfig("http://localhost:4318/v1/traces", headers=(("x-api-key", "a\nb"),))
    with pytest.raises(ConfigError, match="must be base64"):
        ExportConfig("http://localhost:4317", Protocol.GRPC, headers=(("x-token-bin", "no base64!"),))


def test_a_variables_item_without_equals_is_not_printed_past_a_colon_or_a_space() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_export_config(environ={"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key:{SECRET}"})
    assert str(raised.value) == "OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key...' is not a key=value header"
    with pytest.raises(ConfigError) as raised:
        resolve_export_config(environ={"OTEL_EXPORTER_OTLP_HEADERS": f"Bearer {SECRET}"})
    assert SECRET not in str(raised.value)


def test_binary_metadata_is_base64_decoded_for_grpc_and_sent_as_given_over_http() -> None:
    grpc_config = resolve_export_config(
        protocol="grpc",
        headers=[("x-token-bin", "AAH/"), ("x-unpadded-bin", "AAE"), ("x-team", "a")],
        environ={},
    )
    assert grpc_config.grpc_metadata == (
        ("x-token-bin", b"\x00\x01\xff"),
        ("x-unpadded-bin", b"\x00\x01"),
        ("x-team", "a"),
    )
    http_config = resolve_export_config(headers=[("x-token-bin", "not base64, but HTTP")], environ={})
    assert http_config.headers == (("x-token-bin", "not base64, but HTTP"),)


def test_redact_replaces_every_configured_secret_in_every_written_form() -> None:
    config = resolve_export_config(
        endpoint="https://apiuser:passw0rd@collector:4318/v1/traces?api_key=qu3ry+key&region=eu",
        headers=[
            ("authorization", "Bearer tok3n/with+chars"),
            ("x-api-key", "SEKRIT value"),
            ("x-tenant", "1"),
            ("x-token-bin", "c2VjcmV0LWJ5dGVz"),
        ],
        environ={},
    )
    said = (
        "got Bearer tok3n/with+chars; token tok3n%2Fwith%2Bchars; key SEKRIT%20value or SEKRIT+value; "
        "url /v1/traces?api_key=qu3ry+key&region=eu, value qu3ry key; login apiuser:passw0rd; "
        "bin c2VjcmV0LWJ5dGVz = secret-bytes; rejected 1 of 10"
    )
    assert config.redact(said) == (
        "got [REDACTED]; token [REDACTED]; key [REDACTED] or [REDACTED]; "
        "url /v1/traces?[REDACTED], value [REDACTED]; login [REDACTED]:[REDACTED]; "
        "bin [REDACTED] = [REDACTED]; rejected 1 of 10"
    ), "values shorter than 4 characters (a tenant id) are left: they guard nothing"
    assert resolve_export_config(environ={}).redact("nothing configured") == "nothing configured"


@pytest.mark.parametrize(
    ("endpoint", "protocol", "problem"),
    [
        ("http://[::1", "http/protobuf", "Invalid IPv6 URL"),
        ("http://localhost:99999", "http/protobuf", "Port out of range"),
        ("http://localhost:abc", "http/json", "Port could not be cast"),
        ("localhost:99999", "grpc", "Port out of range"),
    ],
)
def test_an_endpoint_that_is_no_url_is_a_usage_error(endpoint: str, protocol: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"is not a URL: {problem}"):
        resolve_export_config(endpoint=endpoint, protocol=protocol, environ={})


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, Exporter.OTLP),
        ({"OTEL_SDK_DISABLED": "true"}, Exporter.NONE),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, Exporter.NONE),
        ({"OTEL_SDK_DISABLED": "false"}, Exporter.OTLP),
        ({"OTEL_TRACES_EXPORTER": "none"}, Exporter.NONE),
        ({"OTEL_TRACES_EXPORTER": " Console "}, Exporter.CONSOLE),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, Exporter.CONSOLE),
        ({"OTEL_TRACES_EXPORTER": "console,none"}, Exporter.NONE),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, Exporter.OTLP),
        ({"OTEL_TRACES_EXPORTER": ""}, Exporter.OTLP),
    ],
)
def test_the_specifications_off_switches(env: dict[str, str], exporter: Exporter) -> None:
    assert resolve_exporter(env) is exporter
    assert resolve_export_config(environ=env).exporter is exporter


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED: 'yes' is neither true nor false; read as false"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: 'zipkin' is not supported"),
    ],
)
def test_unknown_switch_values_are_warned_about_and_ignored(
    env: dict[str, str], warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert resolve_exporter(env) is Exporter.OTLP
    assert caplog.records[0].getMessage().startswith(warning)


def test_a_switched_off_exporter_reads_no_other_setting() -> None:
    broken = {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}
    with pytest.raises(ConfigError):
        resolve_export_config(environ=broken)
    assert resolve_export_config(environ={**broken, "OTEL_SDK_DISABLED": "true"}).exporter is Exporter.NONE
    assert resolve_export_config(environ={**broken, "OTEL_TRACES_EXPORTER": "console"}).headers == ()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(
    ("variable", "named"),
    [
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY is set but OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is not",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set but OTEL_EXPORTER_OTLP_CLIENT_KEY is not",
        ),
    ],
)
def test_half_a_client_identity_is_refused(protocol: str, variable: str, named: str) -> None:
    """Over HTTP a client key without its certificate was silently ignored (issue #13)."""
    with pytest.raises(ConfigError, match=f"^{named}: mutual TLS needs both"):
        resolve_export_config(protocol=protocol, environ={variable: "/etc/client.pem"})
    both = {"OTEL_EXPORTER_OTLP_CLIENT_KEY": "k.pem", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "c.pem"}
    assert resolve_export_config(protocol=protocol, environ=both).client_key == Path("k.pem")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("-4", 0.0),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # a date in the past: retry now
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str, seconds: float | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert retry_after_seconds(value, now) == seconds


def test_a_base_endpoint_that_is_already_a_traces_url_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The old --endpoint took a full URL: given one now, the spec's appended path doubles it, and says so."""
    config = resolve_export_config(endpoint="http://collector:4318/v1/traces", environ={})
    assert config.endpoint == "http://collector:4318/v1/traces/v1/traces"
    assert "--endpoint: a base URL whose path already ends in /v1/traces" in caplog.text
    assert "--traces-endpoint" in caplog.text
    caplog.clear()
    assert resolve_export_config(traces_endpoint="http://collector:4318/v1/traces", environ={}).endpoint == (
        "http://collector:4318/v1/traces"
    )
    assert resolve_export_config(endpoint="https://otlp.example/otlp", environ={}).endpoint == (
        "https://otlp.example/otlp/v1/traces"
    )
    assert not caplog.text
