"""Structure tests for compose.yaml and collector.yaml (Docker is never run here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
COLLECTOR_FILE = REPO_ROOT / "collector.yaml"
COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors")
OTLP_GRPC_EXPORTER_TYPES = {"otlp", "otlp_grpc"}
_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping file."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} must be a YAML mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """compose.yaml's services mapping."""
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    """collector.yaml, parsed."""
    return load_yaml(COLLECTOR_FILE)


def resolve_defaults(value: str) -> str:
    """Replace ``${VAR:-default}`` with its default, as compose does when VAR is unset."""
    return _INTERPOLATION.sub(lambda match: match.group(1) or "", value)


def image_parts(image: str) -> tuple[str, str]:
    """Split an image reference into (repository, tag), defaults resolved."""
    repository, _, tag = resolve_defaults(image).partition(":")
    return repository, tag or "latest"


def component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``."""
    return component_id.split("/", 1)[0]


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Map container port -> host port for a service's ``ports`` (short and long syntax)."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            mapping[int(entry["target"])] = int(str(entry.get("published", entry["target"])))
            continue
        fields = str(entry).split("/", 1)[0].split(":")
        mapping[int(fields[-1])] = int(fields[-2]) if len(fields) > 1 else int(fields[-1])
    return mapping


def container_ports(service: dict[str, Any]) -> set[int]:
    """Every port a service exposes on the compose network (``ports`` targets plus ``expose``)."""
    return set(published_ports(service)) | {
        int(str(port).split("/", 1)[0]) for port in service.get("expose", [])
    }


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Map mount target -> source for a service's volumes (short and long syntax)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts[entry["target"]] = entry["source"]
            continue
        source, target = str(entry).split(":")[:2]
        mounts[target] = source
    return mounts


def config_path(service: dict[str, Any]) -> str:
    """The ``--config`` path the collector is started with (contrib image default otherwise)."""
    command = service.get("command", [])
    args = command.split() if isinstance(command, str) else list(command)
    for index, arg in enumerate(args):
        if arg.startswith("--config="):
            return str(arg.split("=", 1)[1])
        if arg == "--config":
            return str(args[index + 1])
    return "/etc/otelcol-contrib/config.yaml"


def endpoint_port(endpoint: str) -> int:
    """Port of a ``host:port`` or URL endpoint."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    assert parts.port is not None, f"endpoint {endpoint!r} has no port"
    return parts.port


def endpoint_host(endpoint: str) -> str:
    """Host of a ``host:port`` or URL endpoint."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    assert parts.hostname, f"endpoint {endpoint!r} has no host"
    return parts.hostname


def pipeline_references(collector: dict[str, Any], kind: str) -> set[str]:
    """Every component id of ``kind`` referenced by any pipeline."""
    pipelines = collector["service"]["pipelines"]
    return {component for pipeline in pipelines.values() for component in pipeline.get(kind, [])}


def otlp_grpc_exporters(collector: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The OTLP/gRPC exporters (``otlp`` / ``otlp_grpc`` type) defined in collector.yaml."""
    return {
        name: config or {}
        for name, config in collector["exporters"].items()
        if component_type(name) in OTLP_GRPC_EXPORTER_TYPES
    }


# --------------------------------------------------------------------------- #
# compose.yaml
# --------------------------------------------------------------------------- #


def test_compose_has_the_three_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "otel-collector", "jaeger"} <= set(services)


def test_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert image_parts(postgres["image"]) == ("postgres", "15")
    environment = postgres["environment"]
    assert {key: environment[key] for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")} == {
        "POSTGRES_USER": "dbt_replay",
        "POSTGRES_PASSWORD": "dbt_replay",
        "POSTGRES_DB": "dbt_replay",
    }
    assert published_ports(postgres) == {5432: 5432}


def test_collector_service_image_and_ports(services: dict[str, dict[str, Any]]) -> None:
    otel = services["otel-collector"]
    repository, tag = image_parts(otel["image"])
    assert repository == "otel/opentelemetry-collector-contrib"
    assert tag != "latest", "pin the collector image: exporter names changed across releases"
    assert published_ports(otel) == {4317: 4317, 4318: 4318}


def test_collector_service_mounts_collector_yaml_at_its_config_path(
    services: dict[str, dict[str, Any]],
) -> None:
    otel = services["otel-collector"]
    mounts = volume_mounts(otel)
    target = config_path(otel)
    assert target in mounts, f"collector starts with --config={target} but nothing is mounted there"
    assert Path(mounts[target]).name == "collector.yaml"
    assert (REPO_ROOT / mounts[target]).resolve() == COLLECTOR_FILE


def test_jaeger_service(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    repository, _ = image_parts(jaeger["image"])
    assert repository in {"jaegertracing/jaeger", "jaegertracing/all-in-one"}
    assert published_ports(jaeger).get(16686) == 16686
    if repository == "jaegertracing/all-in-one":  # v1 needs OTLP switched on explicitly
        assert str(jaeger.get("environment", {}).get("COLLECTOR_OTLP_ENABLED")).lower() == "true"


def test_published_host_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [port for service in services.values() for port in published_ports(service).values()]
    assert len(host_ports) == len(set(host_ports))


# --------------------------------------------------------------------------- #
# collector.yaml
# --------------------------------------------------------------------------- #


def test_collector_has_a_traces_pipeline(collector: dict[str, Any]) -> None:
    traces = collector["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"] == ["batch"]
    exporter_types = [component_type(exporter) for exporter in traces["exporters"]]
    assert "debug" in exporter_types
    assert len(exporter_types) == 2
    assert (set(exporter_types) - {"debug"}) <= OTLP_GRPC_EXPORTER_TYPES


@pytest.mark.parametrize("kind", ["receivers", "processors", "exporters"])
def test_every_referenced_component_is_defined(collector: dict[str, Any], kind: str) -> None:
    defined = set(collector.get(kind) or {})
    missing = pipeline_references(collector, kind) - defined
    assert not missing, f"pipelines reference undefined {kind}: {sorted(missing)}"


@pytest.mark.parametrize("kind", COMPONENT_KINDS)
def test_every_defined_component_is_used(collector: dict[str, Any], kind: str) -> None:
    unused = set(collector.get(kind) or {}) - pipeline_references(collector, kind)
    assert not unused, f"{kind} defined but not used by any pipeline: {sorted(unused)}"


def test_otlp_receiver_listens_on_all_interfaces(collector: dict[str, Any]) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_receiver_ports_match_compose_published_ports(
    collector: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    receiver_ports = {endpoint_port(config["endpoint"]) for config in protocols.values()}
    assert receiver_ports == set(published_ports(services["otel-collector"]))


def test_exporter_targets_a_compose_service(
    collector: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    exporters = otlp_grpc_exporters(collector)
    assert exporters, "collector.yaml needs an OTLP/gRPC exporter (otlp or otlp_grpc)"
    for name, config in exporters.items():
        host, port = endpoint_host(config["endpoint"]), endpoint_port(config["endpoint"])
        assert host in services, f"exporter {name} targets {host!r}, which is not a compose service"
        assert port in container_ports(services[host]), f"{host} does not expose port {port}"
        assert config.get("tls", {}).get("insecure") is True, (
            f"exporter {name} must use plaintext (tls.insecure)"
        )


def test_exporter_points_at_jaeger_otlp_grpc(collector: dict[str, Any]) -> None:
    endpoints = {config["endpoint"] for config in otlp_grpc_exporters(collector).values()}
    assert endpoints == {"jaeger:4317"}


def test_debug_exporter_is_defined(collector: dict[str, Any]) -> None:
    assert "debug" in collector["exporters"]
