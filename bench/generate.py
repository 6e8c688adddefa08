"""Realistic synthetic dbt artifacts of any size: the manifest.json and run_results.json of a `dbt build`.

The project has the shape of a large real one:

* sources (one raw table per staging model, a few staging models read two),
* seeds (about one per 200 models),
* ``nodes`` models in layers: staging views over sources and seeds, then intermediate and mart models
  (tables, incremental models and views) with a fan-in of 1 to 5 parents from earlier layers,
* two generic tests per model (``unique`` and ``not_null`` on its key column, ``depends_on`` the model),
* a few hundred macros, doc blocks, a few exposures, ``parent_map`` and ``child_map``.

Every model has 5 to 30 documented columns, tags, a full ``config`` dict, a checksum and SQL of
realistic length (a few hundred to a few thousand characters) as ``raw_code`` (Jinja) and
``compiled_code`` (in the manifest and in run_results). A 20,000-model manifest is about 140 MB.

run_results.json (v6) is a `dbt build` over all of it on 16 threads (``Thread-N (worker)``): every
result has compile and execute timing and an ``adapter_response``, results are in completion order,
most models succeed and most tests pass; about one model in a thousand fails with a database error
and everything downstream of it (models and their tests) is skipped without timing; a few tests
fail or warn.

Deterministic: the same ``nodes`` and ``seed`` always write byte-identical files.

Usage::

    python -m bench.generate --nodes 20000 --out /tmp/run-20k [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import heapq
import json
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["RunSummary", "summarize", "write_run"]

PROJECT = "acme_analytics"
DATABASE = "analytics"
RAW_DATABASE = "raw"
DBT_VERSION = "1.11.16"
ADAPTER = "postgres"
THREADS = 16
MACROS = 300
EPOCH = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)
PROJECT_DIR = "/home/runner/work/acme-analytics/acme-analytics"
TARGET_PATH = f"{PROJECT_DIR}/target"

STAGING_SHARE = 0.35
"""The share of models that are staging views over a source or a seed."""
LAYERS = 6
"""Staging plus this many minus one layers of intermediate and mart models."""
ERROR_RATE = 0.001
"""Share of (non-staging) models that fail with a database error (at least one per run)."""
TEST_FAIL_RATE = 0.003
TEST_WARN_RATE = 0.005
FAN_IN_WEIGHTS = (30, 30, 20, 12, 8)
"""Relative frequency of 1, 2, 3, 4 and 5 parents for a non-staging model."""

DOMAINS: dict[str, tuple[str, ...]] = {
    "orders": ("order", "order_item", "return", "cart", "checkout"),
    "customers": ("customer", "address", "account", "contact", "segment"),
    "payments": ("payment", "refund", "invoice", "payout", "chargeback"),
    "products": ("product", "variant", "category", "price", "bundle"),
    "inventory": ("stock_level", "warehouse", "transfer", "supplier", "purchase_order"),
    "marketing": ("campaign", "ad_spend", "click", "impression", "attribution"),
    "finance": ("ledger_entry", "journal", "budget", "forecast", "cost_center"),
    "web": ("session", "pageview", "event", "experiment", "referrer"),
    "shipping": ("shipment", "carrier", "tracking_event", "parcel", "delivery"),
    "support": ("ticket", "conversation", "agent", "survey", "macro_usage"),
    "billing": ("subscription", "plan", "usage_record", "credit", "discount"),
    "hr": ("employee", "department", "payroll_run", "timesheet", "position"),
}
_MEASURE_WORDS = (
    "amount", "total", "count", "revenue", "cost", "margin", "quantity", "balance", "score", "rate",
    "duration_seconds", "weight_grams", "discount", "tax", "fee", "price", "units", "visits", "clicks",
)  # fmt: skip
_QUALIFIERS = (
    "gross", "net", "daily", "monthly", "lifetime", "avg", "max", "min", "first", "last", "rolling_7d",
    "rolling_30d", "ytd", "usd", "local", "adjusted", "expected", "actual", "prior", "planned",
)  # fmt: skip
_ATTRIBUTE_COLUMNS = (
    ("status", "text"), ("created_at", "timestamp"), ("updated_at", "timestamp"), ("deleted_at", "timestamp"),
    ("is_active", "boolean"), ("is_test", "boolean"), ("country_code", "text"), ("currency", "text"),
    ("channel", "text"), ("source_system", "text"), ("loaded_at", "timestamp"), ("valid_from", "timestamp"),
    ("valid_to", "timestamp"), ("external_ref", "text"), ("region", "text"), ("tier", "text"),
    ("email_hash", "text"), ("platform", "text"), ("notes", "text"), ("batch_id", "bigint"),
)  # fmt: skip
_DESCRIPTION_OPENERS = (
    "The", "Sum of the", "Average", "Latest known", "First recorded", "Normalised", "Deduplicated",
    "Cleaned", "Derived", "Rolling",
)  # fmt: skip
_DESCRIPTION_TAILS = (
    "as reported by the source system",
    "converted to USD at the daily rate",
    "in the customer's local time zone, truncated to the day",
    "after refunds and cancellations are removed",
    "per the finance team's definition (see the metrics glossary)",
    "where null means the value was never captured upstream",
    "rounded to two decimals",
    "used by the weekly business review dashboards",
    "as of the last successful load",
    "excluding internal and test accounts",
)
_NIGHTLY_TAGS = ("nightly", "hourly", "daily", "weekly")
_CORE_MACROS = (
    "is_incremental", "ref", "source", "config", "statement", "run_query", "current_timestamp",
    "dateadd", "datediff", "date_trunc", "safe_cast", "type_string", "type_timestamp", "type_numeric",
    "concat", "hash", "split_part", "last_day", "listagg", "array_agg", "get_where_subquery",
    "test_unique", "test_not_null", "test_accepted_values", "test_relationships", "default__test_unique",
    "default__test_not_null", "materialization_table_default", "materialization_view_default",
    "materialization_incremental_default", "materialization_seed_default", "create_table_as",
    "create_view_as", "get_create_table_as_sql", "get_incremental_append_sql", "get_merge_sql",
    "get_delete_insert_merge_sql", "load_csv_rows", "get_batch_size", "alter_column_type",
    "persist_docs", "drop_relation", "rename_relation", "truncate_relation", "get_columns_in_relation",
    "postgres__create_table_as", "postgres__get_columns_in_relation", "postgres__alter_column_comment",
    "generate_schema_name", "generate_alias_name", "generate_database_name", "should_full_refresh",
)  # fmt: skip


# --------------------------------------------------------------------------- #
# The project
# --------------------------------------------------------------------------- #


@dataclass
class _Column:
    name: str
    description: str
    data_type: str | None


@dataclass
class _Source:
    uid: str
    source_name: str
    table: str
    domain: str
    columns: list[_Column]

    @property
    def relation(self) -> str:
        return f'"{RAW_DATABASE}"."{self.source_name}"."{self.table}"'


@dataclass
class _Seed:
    uid: str
    name: str
    domain: str
    columns: list[_Column]
    rows: int

    @property
    def relation(self) -> str:
        return f'"{DATABASE}"."seeds"."{self.name}"'


@dataclass
class _Test:
    uid: str
    name: str
    kind: str
    column: str
    model_uid: str
    severity: str
    raw_code: str
    compiled_code: str


@dataclass
class _Model:
    index: int
    uid: str
    name: str
    layer: int
    domain: str
    entity: str
    materialized: str
    parents: list[str]
    columns: list[_Column]
    tags: list[str]
    description: str
    folder: str
    raw_code: str = ""
    compiled_code: str = ""
    tests: list[_Test] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return f"{self.folder}_{self.domain}"

    @property
    def relation(self) -> str:
        return f'"{DATABASE}"."{self.schema}"."{self.name}"'

    @property
    def key(self) -> str:
        return self.columns[0].name

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.domain}/{self.name}.sql"


@dataclass
class _Project:
    sources: list[_Source]
    seeds: list[_Seed]
    models: list[_Model]
    exposures: list[tuple[str, str, list[str]]]
    relations: dict[str, str]
    """Relation name of every source, seed and model, by unique id."""
    names: dict[str, str]
    """ref()/source() Jinja of every source, seed and model, by unique id."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _column_count(rng: random.Random) -> int:
    """5 to 30 columns, most models near the low end (mean about 10)."""
    return 5 + int(26 * rng.random() ** 4)


def _columns(rng: random.Random, entity: str, count: int) -> list[_Column]:
    """The key column, then ``count - 1`` distinct attribute and measure columns, each documented."""
    pool = [name for name, _ in _ATTRIBUTE_COLUMNS]
    pool += [f"{q}_{m}" for q in _QUALIFIERS for m in _MEASURE_WORDS]
    types = dict(_ATTRIBUTE_COLUMNS)
    picked = rng.sample(pool, count - 1)
    typed = rng.random() < 0.4
    columns = [
        _Column(
            f"{entity}_id", f"Primary key of the {entity.replace('_', ' ')}.", "bigint" if typed else None
        )
    ]
    for name in picked:
        words = name.replace("_", " ")
        description = f"{rng.choice(_DESCRIPTION_OPENERS)} {words}"
        if rng.random() < 0.4:
            description += f", {rng.choice(_DESCRIPTION_TAILS)}"
        description += "."
        data_type = types.get(name, "numeric(18,2)") if typed else None
        columns.append(_Column(name, description, data_type))
    return columns


def _model_description(rng: random.Random, model: _Model) -> str:
    grain = model.entity.replace("_", " ")
    kind = {0: "Staging model", LAYERS - 1: "Mart"}.get(model.layer, "Intermediate model")
    sentences = [
        f"{kind} of {model.domain} data at the grain of one row per {grain}.",
        f"Owned by the {model.domain} analytics team; refreshed {rng.choice(_NIGHTLY_TAGS)}.",
        "Rows from test accounts and soft-deleted records are excluded.",
        f"Joins {len(model.parents)} upstream relation(s) and renames columns to the warehouse conventions.",
        "See the metrics glossary for the definitions of the revenue and margin columns.",
    ]
    return " ".join(sentences[: rng.randint(1, len(sentences))])


def build_project(nodes: int, seed: int = 0) -> _Project:
    """Lay out the project: sources, seeds, layered models with parents, tests and exposures."""
    if nodes < 1:
        raise ValueError("nodes must be at least 1")
    rng = random.Random(seed)
    domains = list(DOMAINS)
    staging_count = max(1, round(nodes * STAGING_SHARE)) if nodes > 1 else 1
    seed_count = max(1, nodes // 200)
    seeds: list[_Seed] = []
    for k in range(seed_count):
        domain = domains[k % len(domains)]
        name = f"seed_{domain}_{rng.choice(DOMAINS[domain])}_{k:04d}"
        seeds.append(
            _Seed(
                f"seed.{PROJECT}.{name}",
                name,
                domain,
                _columns(rng, "code", rng.randint(3, 8)),
                rng.randint(5, 5000),
            )
        )

    sources: list[_Source] = []
    models: list[_Model] = []
    relations: dict[str, str] = {s.uid: s.relation for s in seeds}
    names: dict[str, str] = {s.uid: f"{{{{ ref('{s.name}') }}}}" for s in seeds}

    def new_source(domain: str) -> _Source:
        entity = rng.choice(DOMAINS[domain])
        source_name = f"raw_{domain}"
        table = f"{entity}_{len(sources):05d}"
        source = _Source(
            f"source.{PROJECT}.{source_name}.{table}", source_name, table, domain,
            _columns(rng, entity, rng.randint(1, 8))[: rng.randint(0, 8)],
        )  # fmt: skip
        sources.append(source)
        relations[source.uid] = source.relation
        names[source.uid] = f"{{{{ source('{source_name}', '{table}') }}}}"
        return source

    # Staging: one view per raw table (a tenth read a seed instead, some join a second source).
    for index in range(staging_count):
        domain = domains[index % len(domains)]
        if rng.random() < 0.1:
            first: _Source | _Seed = rng.choice(seeds)
            domain = first.domain
        else:
            first = new_source(domain)
        parents = [first.uid]
        if rng.random() < 0.15:
            parents.append(new_source(domain).uid)
        entity = rng.choice(DOMAINS[domain])
        name = f"stg_{domain}__{entity}_{index:05d}"
        models.append(_Model(
            index, f"model.{PROJECT}.{name}", name, 0, domain, entity, "view", parents,
            _columns(rng, entity, _column_count(rng)), ["staging", domain], "", "staging",
        ))  # fmt: skip

    # Intermediate and mart layers: fan-in 1-5 from earlier layers, mostly the one just before.
    layers = max(2, min(LAYERS, nodes))
    rest = nodes - staging_count
    bounds = [0, staging_count]
    for layer in range(1, layers):
        bounds.append(staging_count + round(rest * layer / (layers - 1)))
    for layer in range(1, layers):
        previous = (bounds[layer - 1], bounds[layer])
        for index in range(bounds[layer], bounds[layer + 1]):
            fan_in = rng.choices(range(1, 6), weights=FAN_IN_WEIGHTS)[0]
            picks: dict[int, None] = {}
            for _ in range(fan_in):
                if layer > 1 and rng.random() < 0.35:
                    picks.setdefault(rng.randrange(0, previous[0]))
                else:
                    picks.setdefault(rng.randrange(*previous))
            parents = [models[p].uid for p in picks]
            first_parent = models[next(iter(picks))]
            domain = first_parent.domain if rng.random() < 0.8 else rng.choice(domains)
            entity = rng.choice(DOMAINS[domain])
            if layer == layers - 1:
                prefix, folder = rng.choice(("fct_", "dim_")), "marts"
            else:
                prefix, folder = "int_", "intermediate"
            materialized = rng.choices(("table", "incremental", "view"), weights=(45, 30, 25))[0]
            tags = [folder, domain]
            if rng.random() < 0.5:
                tags.append(rng.choice(_NIGHTLY_TAGS))
            if rng.random() < 0.1:
                tags.append("pii")
            name = f"{prefix}{domain}_{entity}_{index:05d}"
            models.append(_Model(
                index, f"model.{PROJECT}.{name}", name, layer, domain, entity, materialized, parents,
                _columns(rng, entity, _column_count(rng)), tags, "", folder,
            ))  # fmt: skip

    for model in models:
        relations[model.uid] = model.relation
        names[model.uid] = f"{{{{ ref('{model.name}') }}}}"
    for model in models:
        model.description = _model_description(rng, model)
        model.raw_code, model.compiled_code = _model_sql(rng, model, names, relations)
        model.tests = _tests(rng, model)

    marts = [m for m in models if m.layer == layers - 1] or models
    exposures = []
    for k in range(max(1, nodes // 1000)):
        depends = sorted({rng.choice(marts).uid for _ in range(rng.randint(1, 4))})
        exposures.append((f"exposure.{PROJECT}.dashboard_{k:03d}", f"dashboard_{k:03d}", depends))
    return _Project(sources, seeds, models, exposures, relations, names)


def _model_sql(
    rng: random.Random, model: _Model, names: dict[str, str], relations: dict[str, str]
) -> tuple[str, str]:
    """The model's Jinja SQL and its compiled SQL (refs and sources resolved, incremental filter kept)."""
    config = [f"materialized='{model.materialized}'"]
    if model.materialized == "incremental":
        config += [f"unique_key='{model.key}'", "on_schema_change='append_new_columns'"]
    ctes: list[str] = []
    for number, parent in enumerate(model.parents, start=1):
        ctes.append(f"parent_{number} as (\n\n    select * from @@{parent}@@\n\n)")
    selected = []
    for position, column in enumerate(model.columns):
        source = f"parent_{position % len(model.parents) + 1}"
        if column.data_type and position:
            selected.append(f"        cast({source}.{column.name} as {column.data_type}) as {column.name}")
        elif "amount" in column.name or "revenue" in column.name or "cost" in column.name:
            selected.append(f"        coalesce({source}.{column.name}, 0) as {column.name}")
        elif column.name.startswith("is_"):
            selected.append(
                f"        case when {source}.{column.name} then true else false end as {column.name}"
            )
        else:
            selected.append(f"        {source}.{column.name}")
    joins = "".join(
        f"\n    left join parent_{number} on parent_1.{model.key} = parent_{number}.{model.key}"
        for number in range(2, len(model.parents) + 1)
    )
    where = "\n    where parent_1.is_test is not true" if rng.random() < 0.5 else ""
    ctes.append(
        "joined as (\n\n    select\n" + ",\n".join(selected) + "\n    from parent_1" + joins + where + "\n\n)"
    )
    incremental = (
        "\n\n{% if is_incremental() %}\n"
        "where updated_at > (select max(updated_at) from {{ this }})\n{% endif %}"
        if model.materialized == "incremental"
        else ""
    )
    body = "with " + ",\n\n".join(ctes) + "\n\nselect * from joined" + incremental + "\n"
    header = f"-- {model.description[:120]}\n{{{{ config({', '.join(config)}) }}}}\n\n"
    raw = header + body
    compiled = (
        body.replace("{{ this }}", model.relation)
        .replace("{% if is_incremental() %}\n", "")
        .replace("\n{% endif %}", "")
    )
    for parent in model.parents:
        raw = raw.replace(f"@@{parent}@@", names[parent])
        compiled = compiled.replace(f"@@{parent}@@", relations[parent])
    return raw, compiled


def _tests(rng: random.Random, model: _Model) -> list[_Test]:
    """``unique`` and ``not_null`` on the model's key column, as dbt names and compiles them."""
    tests = []
    for kind in ("unique", "not_null"):
        name = f"{kind}_{model.name}_{model.key}"
        uid = f"test.{PROJECT}.{name}.{hashlib.md5(name.encode()).hexdigest()[:10]}"
        severity = "WARN" if rng.random() < 0.03 else "ERROR"
        raw = f"{{{{ test_{kind}(**_dbt_generic_test_kwargs) }}}}"
        if kind == "unique":
            compiled = (
                f"\n    \n    \n\nselect\n    {model.key} as unique_field,\n    count(*) as n_records\n\n"
                f"from {model.relation}\nwhere {model.key} is not null\ngroup by {model.key}\n"
                "having count(*) > 1\n\n\n"
            )
        else:
            compiled = (
                f"\n    \n    \n\n\n\nselect {model.key}\nfrom {model.relation}\n"
                f"where {model.key} is null\n\n\n"
            )
        tests.append(_Test(uid, name, kind, model.key, model.uid, severity, raw, compiled))
    return tests


# --------------------------------------------------------------------------- #
# manifest.json
# --------------------------------------------------------------------------- #


def _at(seconds: float) -> str:
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _column_entries(columns: list[_Column]) -> dict[str, Any]:
    return {
        c.name: {
            "name": c.name, "description": c.description, "meta": {}, "data_type": c.data_type,
            "constraints": [], "quote": None, "config": {"meta": {}, "tags": []}, "tags": [],
            "granularity": None, "doc_blocks": [],
        }
        for c in columns
    }  # fmt: skip


def _model_config(model: _Model) -> dict[str, Any]:
    return {
        "enabled": True, "alias": None, "schema": f"{model.folder}_{model.domain}", "database": None,
        "tags": model.tags, "meta": {"owner": f"{model.domain}-analytics@acme.example"}, "group": None,
        "static_analysis": None, "materialized": model.materialized,
        "incremental_strategy": "merge" if model.materialized == "incremental" else None,
        "batch_size": None, "lookback": 1, "begin": None, "persist_docs": {"relation": True, "columns": True},
        "post-hook": [], "pre-hook": [], "quoting": {}, "column_types": {},
        "full_refresh": None, "unique_key": model.key if model.materialized == "incremental" else None,
        "on_schema_change": "append_new_columns" if model.materialized == "incremental" else "ignore",
        "on_configuration_change": "apply", "grants": {"select": ["reporter"]}, "packages": [],
        "docs": {"show": True, "node_color": None}, "contract": {"enforced": False, "alias_types": True},
        "event_time": None, "concurrent_batches": None, "access": "protected", "freshness": None,
    }  # fmt: skip


def _model_node(model: _Model, project: _Project, created_at: float) -> dict[str, Any]:
    refs = [
        {"name": p.split(".")[-1], "package": None, "version": None}
        for p in model.parents
        if not p.startswith("source.")
    ]
    source_refs = [p.split(".")[-2:] for p in model.parents if p.startswith("source.")]
    macros = ["macro.dbt.is_incremental"] if model.materialized == "incremental" else []
    return {
        "database": DATABASE, "schema": model.schema, "name": model.name, "resource_type": "model",
        "package_name": PROJECT, "path": model.path, "original_file_path": f"models/{model.path}",
        "unique_id": model.uid, "fqn": [PROJECT, model.folder, model.domain, model.name], "alias": model.name,
        "checksum": {"name": "sha256", "checksum": _sha(model.raw_code)}, "config": _model_config(model),
        "tags": model.tags, "description": model.description, "columns": _column_entries(model.columns),
        "meta": {"owner": f"{model.domain}-analytics@acme.example"}, "group": None,
        "docs": {"show": True, "node_color": None},
        "patch_path": f"{PROJECT}://models/{model.folder}/{model.domain}/_{model.domain}__models.yml",
        "build_path": f"{TARGET_PATH}/run/{PROJECT}/models/{model.path}",
        "unrendered_config": {"materialized": model.materialized, "tags": model.tags[1:]},
        "created_at": created_at, "relation_name": model.relation, "raw_code": model.raw_code,
        "doc_blocks": [], "language": "sql", "refs": refs, "sources": source_refs, "metrics": [],
        "functions": [], "depends_on": {"macros": macros, "nodes": model.parents},
        "compiled_path": f"{TARGET_PATH}/compiled/{PROJECT}/models/{model.path}", "compiled": True,
        "compiled_code": model.compiled_code, "extra_ctes_injected": True, "extra_ctes": [],
        "contract": {"enforced": False, "alias_types": True, "checksum": None}, "access": "protected",
        "constraints": [], "version": None, "latest_version": None, "deprecation_date": None,
        "primary_key": [model.key], "time_spine": None,
    }  # fmt: skip


def _test_node(test: _Test, model: _Model, created_at: float) -> dict[str, Any]:
    path = f"{test.name}.sql"
    return {
        "database": DATABASE, "schema": f"{model.schema}_dbt_test__audit", "name": test.name,
        "resource_type": "test", "package_name": PROJECT, "path": path,
        "original_file_path": f"models/{model.folder}/{model.domain}/_{model.domain}__models.yml",
        "unique_id": test.uid, "fqn": [PROJECT, model.folder, model.domain, test.name], "alias": test.name,
        "checksum": {"name": "none", "checksum": ""},
        "config": {
            "enabled": True, "alias": None, "schema": "dbt_test__audit", "database": None, "tags": [],
            "meta": {}, "group": None, "static_analysis": None, "materialized": "test",
            "severity": test.severity, "store_failures": None, "store_failures_as": None, "where": None,
            "limit": None, "fail_calc": "count(*)", "warn_if": "!= 0", "error_if": "!= 0",
        },
        "tags": [], "description": "", "columns": {}, "meta": {}, "group": None,
        "docs": {"show": True, "node_color": None}, "patch_path": None,
        "build_path": f"{TARGET_PATH}/run/{PROJECT}/models/{model.folder}/{model.domain}/{path}",
        "unrendered_config": {}, "created_at": created_at, "relation_name": None, "raw_code": test.raw_code,
        "doc_blocks": [], "language": "sql", "refs": [{"name": model.name, "package": None, "version": None}],
        "sources": [], "metrics": [], "functions": [],
        "depends_on": {
            "macros": [f"macro.dbt.test_{test.kind}", "macro.dbt.get_where_subquery"], "nodes": [model.uid],
        },
        "compiled_path": f"{TARGET_PATH}/compiled/{PROJECT}/models/{model.folder}/{model.domain}/{path}",
        "compiled": True, "compiled_code": test.compiled_code, "extra_ctes_injected": True, "extra_ctes": [],
        "contract": {"enforced": False, "alias_types": True, "checksum": None},
        "column_name": test.column, "file_key_name": f"models.{model.name}", "attached_node": model.uid,
        "test_metadata": {
            "name": test.kind,
            "kwargs": {
                "column_name": test.column,
                "model": f"{{{{ get_where_subquery(ref('{model.name}')) }}}}",
            },
            "namespace": None,
        },
    }  # fmt: skip


def _seed_node(seed: _Seed, created_at: float) -> dict[str, Any]:
    return {
        "database": DATABASE, "schema": "seeds", "name": seed.name, "resource_type": "seed",
        "package_name": PROJECT, "path": f"{seed.name}.csv", "original_file_path": f"seeds/{seed.name}.csv",
        "unique_id": seed.uid, "fqn": [PROJECT, seed.name], "alias": seed.name,
        "checksum": {"name": "sha256", "checksum": _sha(seed.name)},
        "config": {
            "enabled": True, "alias": None, "schema": "seeds", "database": None, "tags": ["seed"], "meta": {},
            "group": None, "materialized": "seed", "persist_docs": {}, "post-hook": [], "pre-hook": [],
            "quoting": {}, "column_types": {c.name: c.data_type or "text" for c in seed.columns},
            "full_refresh": None, "delimiter": ",", "quote_columns": None,
            "docs": {"show": True, "node_color": None}, "event_time": None,
        },
        "tags": ["seed"], "description": f"Reference codes for {seed.domain}.",
        "columns": _column_entries(seed.columns), "meta": {}, "group": None,
        "docs": {"show": True, "node_color": None}, "patch_path": f"{PROJECT}://seeds/_seeds.yml",
        "build_path": None, "unrendered_config": {}, "created_at": created_at,
        "relation_name": seed.relation, "raw_code": "", "doc_blocks": [], "root_path": PROJECT_DIR,
        "depends_on": {"macros": []},
    }  # fmt: skip


def _source_node(source: _Source, created_at: float) -> dict[str, Any]:
    return {
        "database": RAW_DATABASE, "schema": source.source_name, "name": source.table,
        "resource_type": "source", "package_name": PROJECT,
        "path": f"models/staging/{source.domain}/_{source.source_name}__sources.yml",
        "original_file_path": f"models/staging/{source.domain}/_{source.source_name}__sources.yml",
        "unique_id": source.uid, "fqn": [PROJECT, "staging", source.domain, source.source_name, source.table],
        "source_name": source.source_name,
        "source_description": f"Raw {source.domain} data, loaded by Fivetran.",
        "loader": "fivetran", "identifier": source.table,
        "quoting": {"database": None, "schema": None, "identifier": None, "column": None},
        "loaded_at_field": "_fivetran_synced", "loaded_at_query": None,
        "freshness": {
            "warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"},
            "filter": None,
        },
        "external": None, "description": f"Raw {source.table.rsplit('_', 1)[0]} records.",
        "columns": _column_entries(source.columns), "meta": {}, "source_meta": {}, "tags": [source.domain],
        "config": {
            "enabled": True, "event_time": None, "freshness": None, "loaded_at_field": None,
            "loaded_at_query": None, "meta": {}, "tags": [],
        },
        "patch_path": None, "unrendered_config": {}, "relation_name": source.relation,
        "created_at": created_at, "unrendered_database": None, "unrendered_schema": None, "doc_blocks": [],
    }  # fmt: skip


def _macros(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    names = [(f"macro.dbt.{n}", "dbt", n) for n in _CORE_MACROS]
    while len(names) < MACROS:
        k = len(names)
        names.append(
            (f"macro.{PROJECT}.{rng.choice(list(DOMAINS))}_helper_{k:03d}", PROJECT, f"helper_{k:03d}")
        )
    for uid, package, name in names:
        lines = rng.randint(4, 60)
        body = "\n".join(
            f"    {{% set part_{i} = {rng.choice(('adapter.quote', 'dbt.safe_cast', 'dbt.concat'))}"
            f"(column_{i}) %}}"
            for i in range(lines)
        )
        yield uid, {
            "name": name, "resource_type": "macro", "package_name": package,
            "path": f"macros/{name}.sql", "original_file_path": f"macros/{name}.sql", "unique_id": uid,
            "macro_sql": f"{{% macro {name}(relation, columns) -%}}\n{body}\n  {{{{ return(part_0) }}}}\n"
            "{%- endmacro %}",
            "depends_on": {"macros": ["macro.dbt.statement"] if rng.random() < 0.3 else []},
            "description": "", "meta": {}, "docs": {"show": True, "node_color": None},
            "config": {"meta": {}, "docs": {"show": True, "node_color": None}}, "patch_path": None,
            "arguments": [], "created_at": 1767578400.0, "supported_languages": None,
        }  # fmt: skip


def _write_object(handle: IO[str], items: Iterable[tuple[str, Any]]) -> None:
    """Write ``{"key": value, ...}`` one item at a time (dbt's separators), to keep memory flat."""
    handle.write("{")
    first = True
    for key, value in items:
        if not first:
            handle.write(", ")
        first = False
        handle.write(json.dumps(key))
        handle.write(": ")
        handle.write(json.dumps(value))
    handle.write("}")


def _write_manifest(path: Path, project: _Project, invocation_id: str, seed: int) -> None:
    rng = random.Random(seed + 1)
    models_by_uid = {m.uid: m for m in project.models}
    parent_map: dict[str, list[str]] = {}
    for s in project.seeds:
        parent_map[s.uid] = []
    for source in project.sources:
        parent_map[source.uid] = []
    for model in project.models:
        parent_map[model.uid] = list(model.parents)
        for test in model.tests:
            parent_map[test.uid] = [model.uid]
    for uid, _, depends in project.exposures:
        parent_map[uid] = list(depends)
    child_map: dict[str, list[str]] = {uid: [] for uid in parent_map}
    for child, parents in parent_map.items():
        for parent in parents:
            child_map[parent].append(child)
    for children in child_map.values():
        children.sort()

    created = 1767578400.0

    def nodes() -> Iterator[tuple[str, dict[str, Any]]]:
        for s in project.seeds:
            yield s.uid, _seed_node(s, created)
        for model in project.models:
            yield model.uid, _model_node(model, project, created + model.index * 0.001)
            for test in model.tests:
                yield test.uid, _test_node(test, model, created + model.index * 0.001)

    def docs() -> Iterator[tuple[str, dict[str, Any]]]:
        overview = "### Welcome!\n\nWelcome to the auto-generated documentation for your dbt project!\n" * 12
        yield "doc.dbt.__overview__", {
            "name": "__overview__", "resource_type": "doc", "package_name": "dbt", "path": "overview.md",
            "original_file_path": "docs/overview.md", "unique_id": "doc.dbt.__overview__",
            "block_contents": overview,
        }  # fmt: skip
        for k in range(max(1, len(project.models) // 100)):
            name = f"{list(DOMAINS)[k % len(DOMAINS)]}_glossary_{k:03d}"
            yield f"doc.{PROJECT}.{name}", {
                "name": name, "resource_type": "doc", "package_name": PROJECT, "path": f"docs/{name}.md",
                "original_file_path": f"models/docs/{name}.md", "unique_id": f"doc.{PROJECT}.{name}",
                "block_contents": " ".join(rng.choice(_DESCRIPTION_TAILS) for _ in range(8)),
            }  # fmt: skip

    def exposures() -> Iterator[tuple[str, dict[str, Any]]]:
        for uid, name, depends in project.exposures:
            owner = models_by_uid[depends[0]].domain
            yield uid, {
                "name": name, "resource_type": "exposure", "package_name": PROJECT,
                "path": "exposures.yml", "original_file_path": "models/exposures.yml", "unique_id": uid,
                "fqn": [PROJECT, name], "type": "dashboard", "owner": {"email": f"{owner}@acme.example"},
                "description": "", "label": name.replace("_", " ").title(), "maturity": "high", "meta": {},
                "tags": [], "config": {"enabled": True, "tags": [], "meta": {}}, "unrendered_config": {},
                "url": f"https://bi.acme.example/{name}", "depends_on": {"macros": [], "nodes": depends},
                "refs": [{"name": d.split(".")[-1], "package": None, "version": None} for d in depends],
                "sources": [], "metrics": [], "created_at": created,
            }  # fmt: skip

    metadata = {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
        "dbt_version": DBT_VERSION,
        "generated_at": _at(0.1),
        "invocation_id": invocation_id,
        "invocation_started_at": _at(0.0),
        "env": {},
        "project_name": PROJECT,
        "project_id": hashlib.md5(PROJECT.encode()).hexdigest(),
        "user_id": None,
        "send_anonymous_usage_stats": False,
        "adapter_type": ADAPTER,
        "quoting": {"database": True, "schema": True, "identifier": True, "column": None},
        "run_started_at": (EPOCH + dt.timedelta(seconds=0.0005)).isoformat(),
    }
    with path.open("w", encoding="utf-8") as handle:
        handle.write('{"metadata": ' + json.dumps(metadata) + ', "nodes": ')
        _write_object(handle, nodes())
        handle.write(', "sources": ')
        _write_object(handle, ((s.uid, _source_node(s, created)) for s in project.sources))
        handle.write(', "macros": ')
        _write_object(handle, _macros(rng))
        handle.write(', "docs": ')
        _write_object(handle, docs())
        handle.write(', "exposures": ')
        _write_object(handle, exposures())
        handle.write(', "metrics": {}, "groups": {}, "selectors": {}, "disabled": {}, "parent_map": ')
        _write_object(handle, parent_map.items())
        handle.write(', "child_map": ')
        _write_object(handle, child_map.items())
        handle.write(', "group_map": {}, "saved_queries": {}, "semantic_models": {}, ')
        handle.write('"unit_tests": {}, "functions": {}}')


# --------------------------------------------------------------------------- #
# run_results.json: a simulated `dbt build`
# --------------------------------------------------------------------------- #


@dataclass
class _Executed:
    """One node of the build, once scheduled."""

    order: int
    uid: str
    status: str
    thread: int
    start: float = 0.0
    compile_end: float = 0.0
    execute_start: float = 0.0
    end: float = 0.0
    message: str | None = None
    failures: int | None = None
    adapter_response: dict[str, Any] = field(default_factory=dict)
    compiled_code: str | None = None
    relation_name: str | None = None


def _model_response(rng: random.Random, model: _Model) -> tuple[str, dict[str, Any]]:
    if model.materialized == "view":
        return "CREATE VIEW", {"_message": "CREATE VIEW", "code": "CREATE VIEW", "rows_affected": -1}
    rows = int(rng.lognormvariate(9, 2.5))
    if model.materialized == "incremental":
        message = f"INSERT 0 {rows}"
        return message, {"_message": message, "code": "INSERT", "rows_affected": rows}
    message = f"SELECT {rows}"
    return message, {"_message": message, "code": "SELECT", "rows_affected": rows}


def _duration(rng: random.Random, materialized: str) -> float:
    if materialized == "view":
        return rng.uniform(0.04, 0.6)
    if materialized == "test":
        return min(30.0, rng.lognormvariate(-1.6, 1.0))
    if materialized == "seed":
        return rng.uniform(0.1, 3.0)
    median = 1.0 if materialized == "table" else 2.0
    return min(900.0, rng.lognormvariate(0, 1.3) * median)


def _simulate(project: _Project, seed: int) -> tuple[list[_Executed], float]:
    """Schedule every seed, model and test on the thread pool; return results in completion order."""
    rng = random.Random(seed + 2)
    later = [m for m in project.models if m.layer >= LAYERS // 2] or project.models
    error_count = max(1, round(len(project.models) * ERROR_RATE))
    errored = {m.uid for m in rng.sample(later, min(error_count, len(later)))}
    blocked_by: dict[str, str] = {}
    for model in project.models:
        for parent in model.parents:
            if parent in errored:
                blocked_by[model.uid] = parent
                break
            if parent in blocked_by:
                blocked_by[model.uid] = blocked_by[parent]
                break

    parse_seconds = 3.0 + 0.0004 * len(project.models)
    threads = [(parse_seconds, t) for t in range(1, THREADS + 1)]
    heapq.heapify(threads)
    ends: dict[str, float] = {}
    executed: list[_Executed] = []
    order = 0

    def run(uid: str, materialized: str, ready: float) -> _Executed:
        nonlocal order
        free, thread = heapq.heappop(threads)
        start = max(free, ready) + rng.uniform(0.0005, 0.004)
        compile_end = start + rng.uniform(0.002, 0.03)
        execute_start = compile_end + rng.uniform(0.0002, 0.001)
        end = execute_start + _duration(rng, materialized)
        heapq.heappush(threads, (end, thread))
        ends[uid] = end
        order += 1
        return _Executed(order, uid, "success", thread, start, compile_end, execute_start, end)

    def skip(uid: str, at: float) -> _Executed:
        nonlocal order
        order += 1
        item = _Executed(order, uid, "skipped", rng.randint(1, THREADS), end=at)
        return item

    for s in project.seeds:
        item = run(s.uid, "seed", parse_seconds)
        item.message = f"INSERT {s.rows}"
        item.adapter_response = {"_message": item.message, "code": "INSERT", "rows_affected": s.rows}
        executed.append(item)

    for model in project.models:
        if model.uid in blocked_by:
            at = ends[blocked_by[model.uid]]
            executed.append(skip(model.uid, at))
            executed[-1].relation_name = model.relation
            for test in model.tests:
                executed.append(skip(test.uid, at))
            continue
        ready = max((ends[p] for p in model.parents if p in ends), default=parse_seconds)
        item = run(model.uid, model.materialized, ready)
        item.compiled_code = model.compiled_code
        item.relation_name = model.relation
        if model.uid in errored:
            item.status = "error"
            item.end = item.execute_start + rng.uniform(0.01, 0.3)
            ends[model.uid] = item.end
            column = rng.choice(model.columns[1:] or model.columns).name
            item.message = (
                f"Database Error in model {model.name} (models/{model.path})\n"
                f'  column "{column}" does not exist\n'
                f"  LINE {rng.randint(3, 40)}:         parent_1.{column},\n"
                "                   ^\n"
                f"  compiled code at {TARGET_PATH}/run/{PROJECT}/models/{model.path}"
            )
            executed.append(item)
            for test in model.tests:
                executed.append(skip(test.uid, item.end))
            continue
        item.message, item.adapter_response = _model_response(rng, model)
        executed.append(item)
        for test in model.tests:
            check = run(test.uid, "test", item.end)
            check.compiled_code = test.compiled_code
            check.adapter_response = {"_message": "SELECT 1", "code": "SELECT", "rows_affected": 1}
            draw = rng.random()
            if draw < TEST_FAIL_RATE + TEST_WARN_RATE:
                check.failures = rng.randint(1, 250)
                warn = test.severity == "WARN" or draw >= TEST_FAIL_RATE
                check.status = "warn" if warn else "fail"
                verb = "warn" if warn else "fail"
                plural = "s" if check.failures > 1 else ""
                check.message = f"Got {check.failures} result{plural}, configured to {verb} if != 0"
            else:
                check.status = "pass"
                check.failures = 0
            executed.append(check)

    executed.sort(key=lambda e: (e.end, e.order))
    finished = max((e.end for e in executed), default=parse_seconds)
    return executed, finished


def _result(item: _Executed) -> dict[str, Any]:
    timing = []
    if item.status != "skipped":
        timing = [
            {"name": "compile", "started_at": _at(item.start), "completed_at": _at(item.compile_end)},
            {"name": "execute", "started_at": _at(item.execute_start), "completed_at": _at(item.end)},
        ]
    result: dict[str, Any] = {
        "status": item.status,
        "timing": timing,
        "thread_id": f"Thread-{item.thread} (worker)",
        "execution_time": 0 if item.status == "skipped" else round(item.end - item.start, 6),
        "adapter_response": item.adapter_response,
        "message": item.message,
        "failures": item.failures,
        "unique_id": item.uid,
        "compiled": None if item.uid.startswith("seed.") else item.status != "skipped",
    }
    if item.compiled_code is not None:
        result["compiled_code"] = item.compiled_code
    result["relation_name"] = item.relation_name
    result["batch_results"] = None
    return result


def _write_run_results(path: Path, executed: list[_Executed], finished: float, invocation_id: str) -> None:
    generated = finished + 0.4
    metadata = {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
        "dbt_version": DBT_VERSION,
        "generated_at": _at(generated),
        "invocation_id": invocation_id,
        "invocation_started_at": _at(0.0),
        "env": {},
    }
    args = {
        "which": "build", "threads": THREADS, "project_dir": PROJECT_DIR,
        "profiles_dir": f"{PROJECT_DIR}/.dbt",
        "target_path": TARGET_PATH, "log_path": f"{PROJECT_DIR}/logs", "target": "prod",
        "invocation_command": "dbt build --target prod", "vars": {}, "select": [], "exclude": [],
        "resource_types": [], "exclude_resource_types": [], "indirect_selection": "eager",
        "full_refresh": False, "fail_fast": False, "defer": False, "favor_state": False,
        "partial_parse": True, "static_parser": True, "introspect": True, "populate_cache": True,
        "log_format": "default", "log_level": "info", "log_level_file": "debug", "use_colors": True,
        "write_json": True, "send_anonymous_usage_stats": False, "version_check": True, "print": True,
        "printer_width": 80, "quiet": False, "show": False, "empty": False, "cache_selected_only": False,
        "macro_debugging": False, "strict_mode": False,
        "warn_error_options": {"error": [], "warn": [], "silence": []},
    }  # fmt: skip
    with path.open("w", encoding="utf-8") as handle:
        handle.write('{"metadata": ' + json.dumps(metadata) + ', "results": [')
        for number, item in enumerate(executed):
            if number:
                handle.write(", ")
            handle.write(json.dumps(_result(item)))
        handle.write('], "elapsed_time": ' + json.dumps(round(generated - 0.2, 6)))
        handle.write(', "args": ' + json.dumps(args) + "}")


# --------------------------------------------------------------------------- #
# Entry points
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RunSummary:
    """What a generated run holds, counted from its run_results.json.

    Attributes:
        results: Entries of ``results``.
        timings: Timing entries over all results.
        statuses: Results per status.
        spans: The spans a replay makes of it: one invocation span, one per result, one per timing entry.
    """

    results: int
    timings: int
    statuses: dict[str, int]

    @property
    def spans(self) -> int:
        """1 + results + timing entries."""
        return 1 + self.results + self.timings


def summarize(directory: Path) -> RunSummary:
    """Count the results, timing entries and statuses of the run_results.json in ``directory``."""
    with (directory / "run_results.json").open(encoding="utf-8") as handle:
        results = json.load(handle)["results"]
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    return RunSummary(len(results), sum(len(r["timing"]) for r in results), dict(sorted(statuses.items())))


def write_run(directory: Path, nodes: int, *, seed: int = 0) -> Path:
    """Write manifest.json and run_results.json of a `dbt build` over a project of ``nodes`` models.

    Args:
        directory: Where to write them (created if missing).
        nodes: How many models; the run also has their tests (two per model) and the seeds.
        seed: Picks the project's shape; the same ``nodes`` and ``seed`` give byte-identical files.

    Returns:
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    project = build_project(nodes, seed)
    invocation_id = str(uuid.UUID(int=random.Random(f"{seed}:{nodes}").getrandbits(128), version=4))
    _write_manifest(directory / "manifest.json", project, invocation_id, seed)
    executed, finished = _simulate(project, seed)
    _write_run_results(directory / "run_results.json", executed, finished, invocation_id)
    return directory


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.generate --nodes N --out DIR [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes", type=int, required=True, help="number of models (tests and seeds come on top)"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write the two artifacts to")
    parser.add_argument("--seed", type=int, default=0, help="shape of the project (default 0)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    write_run(args.out, args.nodes, seed=args.seed)
    summary = summarize(args.out)
    sizes = {name: (args.out / name).stat().st_size / 1e6 for name in ("manifest.json", "run_results.json")}
    print(
        f"{args.out}: {args.nodes} models, {summary.results} results ({summary.statuses}), "
        f"{summary.spans} spans when replayed; manifest.json {sizes['manifest.json']:.1f} MB, "
        f"run_results.json {sizes['run_results.json']:.1f} MB; {time.perf_counter() - began:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
