"""Export: encode a plan as OTLP, then send it over gRPC or HTTP, or write it as OTLP/JSON."""
