"""Example Airflow DAG: one trace from an upstream task, through dbt, to the next task.

    extract ──> dbt_build ──> dbt_trace ──> publish ──> notify
                    └─────────────────────────┘

- ``extract`` stands for the work before dbt: it runs inside a span of its own (OpenTelemetry SDK)
  and pushes that span's context (a dict with TRACEPARENT) to XCom.
- ``dbt_build`` runs ``dbt build`` into a target directory of its own for this DAG run.
- ``dbt_trace`` runs ``dbt-otel-replay`` on that directory with TRACEPARENT/TRACESTATE in its
  ``env``, rendered from extract's XCom: the dbt run becomes a child of extract's span. Its
  trigger rule is ``all_done``, so a failed build is traced too. An export that failed (exit 3)
  does not fail the task: the spans wait in the spill file for ``dbt-otel-replay resend``.
- ``publish`` (only after a successful build) reads the traceparent file dbt-otel-replay wrote,
  pushes it to XCom and runs inside a span that is a child of the dbt run's invocation span.
- ``notify`` shows a BashOperator joining the trace: TRACEPARENT in its env, from publish's XCom.

dbt_trace and publish read the target directory dbt_build wrote: with an executor that runs
tasks on several machines, put DBT_TARGET_ROOT on storage they share.

Settings (environment of the scheduler and workers): DBT_PROJECT_DIR, DBT_TARGET_ROOT, DBT
(the dbt command), DBT_OTEL_REPLAY (the dbt-otel-replay command), and the usual
OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME for where the spans go. trace_glue.py, beside this file,
holds the glue; it has no Airflow import.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # trace_glue.py sits beside this file

import trace_glue

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator
    from airflow.operators.python import PythonOperator

DBT_PROJECT_DIR = os.environ.get("DBT_PROJECT_DIR", "/opt/airflow/dbt")
DBT_TARGET_ROOT = os.environ.get("DBT_TARGET_ROOT", "/opt/airflow/dbt-target")
DBT = os.environ.get("DBT", "dbt")
DBT_OTEL_REPLAY = os.environ.get("DBT_OTEL_REPLAY", "dbt-otel-replay")

# One target directory per DAG run (run ids hold ':' and '+'), rendered by Jinja at run time.
DBT_TARGET = DBT_TARGET_ROOT + "/{{ run_id | replace(':', '-') | replace('+', '-') }}"

# Exit 3 (export failed) is not the task's failure: the spans wait in the spill file.
REPLAY = (
    '"$DBT_OTEL_REPLAY" "$DBT_TARGET" || { status=$?; [ "$status" -eq 3 ] || exit "$status"; '
    'echo "the collector did not take every span; later: dbt-otel-replay resend '
    '$DBT_TARGET/otel-replay-unsent.json"; }'
)


def extract(ti: Any, dag_run: Any) -> None:
    """The upstream work, in a span of its own whose context goes to XCom."""
    carrier = trace_glue.emit_span(
        "extract",
        attributes={"airflow.dag_id": dag_run.dag_id, "airflow.run_id": dag_run.run_id},
        work=lambda: None,  # your extraction here
    )
    trace_glue.push_carrier(ti, carrier)


def publish(carrier_path: str, ti: Any) -> None:
    """Continue from the traceparent file dbt-otel-replay wrote: a child span of the dbt run."""
    dbt_run = trace_glue.push_carrier(ti, carrier_path, key="dbt_run_context")
    carrier = trace_glue.emit_span("publish dashboards", parent=dbt_run, work=lambda: None)
    trace_glue.push_carrier(ti, carrier)


with DAG(
    dag_id="dbt_trace",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    catchup=False,
    tags=["dbt", "opentelemetry"],
):
    extract_task = PythonOperator(task_id="extract", python_callable=extract)

    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command='mkdir -p "$DBT_TARGET" && "$DBT" build --project-dir "$DBT_PROJECT_DIR" '
        '--target-path "$DBT_TARGET"',
        env={"DBT": DBT, "DBT_PROJECT_DIR": DBT_PROJECT_DIR, "DBT_TARGET": DBT_TARGET},
        append_env=True,
    )

    dbt_trace = BashOperator(
        task_id="dbt_trace",
        bash_command=REPLAY,
        env={
            "DBT_OTEL_REPLAY": DBT_OTEL_REPLAY,
            "DBT_TARGET": DBT_TARGET,
            **trace_glue.xcom_env("extract"),  # TRACEPARENT / TRACESTATE of extract's span
        },
        append_env=True,
        trigger_rule="all_done",  # also after a failed dbt build
    )

    publish_task = PythonOperator(
        task_id="publish",
        python_callable=publish,
        op_kwargs={"carrier_path": DBT_TARGET + "/traceparent"},
    )

    notify = BashOperator(
        task_id="notify",
        bash_command='echo "continuing trace $TRACEPARENT"',  # e.g. otel-cli exec ... reads it
        env=trace_glue.xcom_env("publish"),
        append_env=True,
    )

    extract_task >> dbt_build >> dbt_trace >> publish_task >> notify
    dbt_build >> publish_task
