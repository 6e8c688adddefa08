"""dbt-otel-replay: replay a finished dbt run as one OpenTelemetry trace."""

__version__ = "0.1.0"
