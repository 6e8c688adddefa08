"""The next stage of a pipeline joins the dbt run's trace through the traceparent file.

Run it after `dbt-otel-replay target/`:

    python examples/next_stage.py target/traceparent --name "publish dashboards"

It reads the carrier file dbt-otel-replay wrote, starts a span of its own as a
child of the dbt invocation span (same trace id), exports it over OTLP with the
OpenTelemetry SDK (configured by the usual OTEL_EXPORTER_OTLP_* variables, or
--endpoint/--protocol), and prints its own TRACEPARENT line so a further stage
can continue the chain.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def read_carrier(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of the carrier file, as a W3C propagation carrier (lowercase keys).

    Reads what a shell sourcing the file reads (tests/test_carrier_shell.py checks it): the
    file holds no quotes or blanks, so the values are taken as they are. ``utf-8-sig`` and
    splitlines() accept a byte order mark and CRLF line ends, as --traceparent-from does.
    """
    carrier = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep and key.strip() in ("TRACEPARENT", "TRACESTATE"):
            carrier[key.strip().lower()] = value.strip().strip("'\"")
    if "traceparent" not in carrier:
        sys.exit(f"{path}: no TRACEPARENT line")
    return carrier


def make_exporter(protocol: str, endpoint: str | None) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=True) if endpoint else GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces") if endpoint else HttpExporter()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("carrier", type=Path, nargs="?", default=Path("target/traceparent"))
    parser.add_argument("--name", default="next stage", help="the span's name")
    parser.add_argument("--service-name", default=os.environ.get("OTEL_SERVICE_NAME", "next-stage"))
    parser.add_argument("--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_* variables)")
    parser.add_argument(
        "--protocol",
        default=os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        choices=["grpc", "http/protobuf"],
    )
    parser.add_argument("--seconds", type=float, default=0.1, help="how long the pretend work takes")
    args = parser.parse_args(argv)

    parent = TraceContextTextMapPropagator().extract(read_carrier(args.carrier))
    provider = TracerProvider(resource=Resource.create({"service.name": args.service_name}))
    provider.add_span_processor(SimpleSpanProcessor(make_exporter(args.protocol, args.endpoint)))
    tracer = provider.get_tracer("dbt-otel-replay.examples.next_stage")
    with tracer.start_as_current_span(args.name, context=parent) as span:
        span.set_attribute("pipeline.stage", args.name)
        time.sleep(args.seconds)
        context = span.get_span_context()
    provider.shutdown()
    # The flags as the SDK decided them: an unsampled parent stays unsampled for the next stage.
    print(f"TRACEPARENT=00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
