"""Benchmarks for dbt-otel-replay: synthetic dbt artifacts at any size, the replay against a floor and
against OpenLineage's dbt artifact processor, and a backfill over archived runs.

See bench/README.md for the commands.
"""
