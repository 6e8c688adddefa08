"""OTLP settings: flag, then OTEL_EXPORTER_OTLP_TRACES_*, then OTEL_EXPORTER_OTLP_*, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt_otel_replay.errors import ConfigError
from dbt_otel_replay.export.config import Protocol, parse_header, resolve_export_config
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
    )


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
    with pytest.raises(ConfigError):
        resource_attributes(environ={"OTEL_RESOURCE_ATTRIBUTES": "broken"})
