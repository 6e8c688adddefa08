"""Structure tests for compose.yaml and collector.yaml (Docker is never run here).

compose.yaml is also validated against the Compose Specification's JSON schema, as shipped
by the check-jsonschema package (a dev dependency), and the collector's pipelines against
the collector's rules for wiring receivers, processors, exporters and connectors.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
COLLECTOR_FILE = REPO_ROOT / "collector.yaml"
PROMETHEUS_FILE = REPO_ROOT / "examples" / "prometheus.yml"
COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors")
OTLP_GRPC_EXPORTER_TYPES = {"otlp", "otlp_grpc"}
PIPELINE_TYPES = {"traces", "metrics", "logs", "profiles"}
SPANMETRICS_DIMENSIONS = {"dbt.node.unique_id", "dbt.node.resource_type", "dbt.status"}
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
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


def pipeline_type(pipeline_id: str) -> str:
    """``metrics/spans`` -> ``metrics``."""
    return pipeline_id.split("/", 1)[0]


def connector_uses(collector: dict[str, Any], connector: str) -> tuple[set[str], set[str]]:
    """The pipelines a connector exports from and the pipelines it receives into."""
    pipelines = collector["service"]["pipelines"]
    exporting = {name for name, p in pipelines.items() if connector in p.get("exporters", [])}
    receiving = {name for name, p in pipelines.items() if connector in p.get("receivers", [])}
    return exporting, receiving


def go_duration_seconds(text: str) -> float:
    """A Go duration (``100ms``, ``1m30s``, ``1h``) in seconds."""
    parts = _GO_DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"{text!r} is not a Go duration"
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, as check-jsonschema ships it."""
    try:
        vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.fail("check-jsonschema (a dev dependency) is needed for the Compose schema")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    return schema


def compose_errors(document: Any) -> list[str]:
    """Every violation of the Compose Specification schema, as ``path: message``."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


# --------------------------------------------------------------------------- #
# compose.yaml
# --------------------------------------------------------------------------- #


def test_compose_has_the_four_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "otel-collector", "jaeger", "prometheus"} <= set(services)


def test_compose_matches_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


@pytest.mark.parametrize(
    "breakage",
    [
        "unknown service key",
        "ports not a list",
        "services not a mapping",
        "depends_on a number",
        "unknown top-level key",
    ],
)
def test_a_broken_compose_file_fails_the_schema(compose: dict[str, Any], breakage: str) -> None:
    broken = copy.deepcopy(compose)
    if breakage == "unknown service key":
        broken["services"]["prometheus"]["imagee"] = "prom/prometheus"
    elif breakage == "ports not a list":
        broken["services"]["prometheus"]["ports"] = {"9090": 9090}
    elif breakage == "services not a mapping":
        broken["services"] = ["postgres", "jaeger"]
    elif breakage == "depends_on a number":
        broken["services"]["prometheus"]["depends_on"] = 1
    else:
        broken["servicez"] = {}
    assert compose_errors(broken), f"{breakage}: the schema should reject it"


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


def test_prometheus_service(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    repository, tag = image_parts(prometheus["image"])
    assert repository == "prom/prometheus"
    assert tag != "latest"
    assert published_ports(prometheus) == {9090: 9090}
    command = prometheus.get("command", [])
    args = command.split() if isinstance(command, str) else list(command)
    config = next(
        (a.split("=", 1)[1] for a in args if a.startswith("--config.file=")), "/etc/prometheus/prometheus.yml"
    )
    mounts = volume_mounts(prometheus)
    assert config in mounts, f"prometheus reads {config} but nothing is mounted there"
    assert (REPO_ROOT / mounts[config]).resolve() == PROMETHEUS_FILE
    assert "otel-collector" in prometheus.get("depends_on", [])


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
    connectors = set(collector.get("connectors") or {})
    exporter_types = [component_type(e) for e in traces["exporters"] if e not in connectors]
    assert "debug" in exporter_types
    assert len(exporter_types) == 2
    assert (set(exporter_types) - {"debug"}) <= OTLP_GRPC_EXPORTER_TYPES
    assert "spanmetrics" in traces["exporters"]


def test_pipeline_ids_name_a_signal(collector: dict[str, Any]) -> None:
    for pipeline_id, pipeline in collector["service"]["pipelines"].items():
        assert pipeline_type(pipeline_id) in PIPELINE_TYPES, pipeline_id
        assert pipeline.get("receivers"), f"pipeline {pipeline_id} has no receiver"
        assert pipeline.get("exporters"), f"pipeline {pipeline_id} has no exporter"


@pytest.mark.parametrize("kind", ["receivers", "processors", "exporters"])
def test_every_referenced_component_is_defined(collector: dict[str, Any], kind: str) -> None:
    defined = set(collector.get(kind) or {})
    if kind != "processors":  # a connector is referenced as an exporter and as a receiver
        defined |= set(collector.get("connectors") or {})
    missing = pipeline_references(collector, kind) - defined
    assert not missing, f"pipelines reference undefined {kind}: {sorted(missing)}"


def test_component_ids_are_not_shared_between_connectors_and_receivers_or_exporters(
    collector: dict[str, Any],
) -> None:
    connectors = set(collector.get("connectors") or {})
    assert not connectors & set(collector.get("receivers") or {})
    assert not connectors & set(collector.get("exporters") or {})


@pytest.mark.parametrize("kind", COMPONENT_KINDS)
def test_every_defined_component_is_used(collector: dict[str, Any], kind: str) -> None:
    if kind == "connectors":
        used = pipeline_references(collector, "exporters") & pipeline_references(collector, "receivers")
    else:
        used = pipeline_references(collector, kind)
    unused = set(collector.get(kind) or {}) - used
    assert not unused, f"{kind} defined but not used by any pipeline: {sorted(unused)}"


def test_each_connector_joins_two_different_pipelines(collector: dict[str, Any]) -> None:
    connectors = collector.get("connectors") or {}
    assert connectors, "collector.yaml should define the spanmetrics connector"
    for connector in connectors:
        exporting, receiving = connector_uses(collector, connector)
        assert exporting, f"{connector} is never used as an exporter"
        assert receiving, f"{connector} is never used as a receiver"
        assert not exporting & receiving, f"{connector} feeds the pipeline it reads from"


def test_spanmetrics_turns_traces_into_metrics_for_prometheus(collector: dict[str, Any]) -> None:
    exporting, receiving = connector_uses(collector, "spanmetrics")
    assert {pipeline_type(p) for p in exporting} == {"traces"}
    assert {pipeline_type(p) for p in receiving} == {"metrics"}
    pipelines = collector["service"]["pipelines"]
    exporters = {e for p in receiving for e in pipelines[p]["exporters"]}
    assert "prometheus" in {component_type(e) for e in exporters}


def test_spanmetrics_dimensions_and_buckets(collector: dict[str, Any]) -> None:
    spanmetrics = collector["connectors"]["spanmetrics"]
    dimensions = [dimension["name"] for dimension in spanmetrics["dimensions"]]
    assert set(dimensions) >= SPANMETRICS_DIMENSIONS
    assert len(dimensions) == len(set(dimensions))
    histogram = spanmetrics["histogram"]
    assert histogram["unit"] == "s"  # metric name ..._duration_seconds_bucket, as docs/jaeger.md's query
    buckets = [go_duration_seconds(b) for b in histogram["explicit"]["buckets"]]
    assert buckets == sorted(set(buckets)), "buckets must be distinct and ascending"
    assert buckets[0] <= 0.1 and buckets[-1] >= 3600, "model durations: 100 ms .. 1 h"
    assert go_duration_seconds(spanmetrics.get("metrics_expiration", "0s")) == 0, "keep backfilled series"


def test_prometheus_exporter_listens_where_prometheus_scrapes(
    collector: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    endpoint = collector["exporters"]["prometheus"]["endpoint"]
    assert endpoint == "0.0.0.0:8889"
    assert endpoint_port(endpoint) in container_ports(services["otel-collector"])
    scrape = load_yaml(PROMETHEUS_FILE)
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert "otel-collector:8889" in targets
    for target in targets:
        assert endpoint_host(target) in services, f"scrape target {target} is not a compose service"


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
