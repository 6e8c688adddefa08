"""dbt_otel_replay.sqlsummary: SQL text to db.operation.name and db.query.summary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_otel_replay.sqlsummary import MAX_SUMMARY_CHARS, strip_comments, summarize

QUERY_COMMENT = (
    '/* {"app": "dbt", "dbt_version": "1.11.16", "profile_name": "replay_logs", "target_name": "ci", '
    '"node_id": "model.replay_logs.stg_shipments"} */\n\n  '
)

CASES = [
    # what dbt-postgres sends for a view, a table, an incremental, a snapshot, a seed
    (
        QUERY_COMMENT + 'create view "dbt_replay"."lumber"."stg_shipments__dbt_tmp"\n  as (\n select 1\n  );',
        "CREATE VIEW",
        "CREATE VIEW dbt_replay.lumber.stg_shipments__dbt_tmp",
    ),
    (
        "create view lumber.stg_shipments as (select * from raw.shipments)",
        "CREATE VIEW",
        "CREATE VIEW lumber.stg_shipments",
    ),
    (
        QUERY_COMMENT + '\n  create  table "db"."s"."t__dbt_tmp"\n  \n  \n    as\n  \n  (select 1);',
        "CREATE TABLE",
        "CREATE TABLE db.s.t__dbt_tmp",
    ),
    (
        "create or replace transient table DB.S.T copy grants as (select 1)",
        "CREATE TABLE",
        "CREATE TABLE DB.S.T",
    ),
    (
        'create temporary table "events_microbatch__dbt_tmp20240103000000" as (select 1)',
        "CREATE TABLE",
        "CREATE TABLE events_microbatch__dbt_tmp",
    ),
    ("create or replace view `proj-1`.`ds`.`v` as select 1", "CREATE VIEW", "CREATE VIEW `proj-1`.ds.v"),
    ('create schema if not exists "db"."s"', "CREATE SCHEMA", "CREATE SCHEMA db.s"),
    (
        'create unique index if not exists "a1b2c3" on "db"."s"."t" (id)',
        "CREATE INDEX",
        "CREATE INDEX db.s.t",
    ),
    ('drop table if exists "db"."s"."t__dbt_backup" cascade', "DROP TABLE", "DROP TABLE db.s.t__dbt_backup"),
    ("DROP VIEW IF EXISTS s.v", "DROP VIEW", "DROP VIEW s.v"),
    ('alter table "db"."s"."t" rename to "t__dbt_backup"', "ALTER TABLE", "ALTER TABLE db.s.t"),
    ("truncate table s.t", "TRUNCATE TABLE", "TRUNCATE TABLE s.t"),
    ("insert into a.b (x) values (1), (2)", "INSERT", "INSERT INTO a.b"),
    (
        'insert into "db"."s"."t" ("id") (select "id" from "db"."s"."t__dbt_tmp")',
        "INSERT",
        "INSERT INTO db.s.t",
    ),
    ("insert overwrite table x select 1", "INSERT", "INSERT OVERWRITE x"),
    ("merge into x as t using y on t.id = y.id when matched then update set a = 1", "MERGE", "MERGE INTO x"),
    ('delete from "db"."s"."t" where id in (select id from u)', "DELETE", "DELETE FROM db.s.t"),
    ("update s.t set a = 1 where b = 'x'", "UPDATE", "UPDATE s.t"),
    ("select * from orders where id = 1", "SELECT", "SELECT orders"),
    ("SELECT * FROM songs, artists WHERE songs.artist_id = artists.id", "SELECT", "SELECT songs artists"),
    (
        "select a from x join y on x.id = y.id left outer join z using (id) where 1 = 1",
        "SELECT",
        "SELECT x y z",
    ),
    (
        "select count(*) as failures from (select * from x where y is null) dbt_internal_test",
        "SELECT",
        "SELECT",
    ),
    ("select distinct nspname from pg_namespace", "SELECT", "SELECT pg_namespace"),
    (
        "with a as (select 1 from c), b (x) as (select * from c) select * from a join b on a.x = b.x",
        "SELECT",
        "SELECT a b",
    ),
    ("with recursive r as (select 1) insert into t select * from r", "INSERT", "INSERT INTO t"),
    ("select 1", "SELECT", "SELECT"),
    ("BEGIN", "BEGIN", "BEGIN"),
    ("COMMIT", "COMMIT", "COMMIT"),
    ("rollback", "ROLLBACK", "ROLLBACK"),
    ("START TRANSACTION", "START TRANSACTION", "START TRANSACTION"),
    ("show terse objects in db.schema limit 10000", "SHOW", "SHOW TERSE OBJECTS"),
    ("call my_proc(1, 'x')", "CALL", "CALL my_proc"),
    ("-- leading line comment\nselect a from t", "SELECT", "SELECT t"),
    ("/* a */ /* b */ select a /* c */ from /* d */ t", "SELECT", "SELECT t"),
    ("select '-- not a comment' as a from t", "SELECT", "SELECT t"),
    ("(select 1 from a) union (select 2 from b)", "SELECT", "SELECT a"),
    ("", None, "SQL"),
    ("/* only a comment */", None, "SQL"),
    ("   ;", None, "SQL"),
]


@pytest.mark.parametrize(("sql", "operation", "summary"), CASES, ids=[case[2] or "empty" for case in CASES])
def test_summary(sql: str, operation: str | None, summary: str) -> None:
    assert summarize(sql) == (operation, summary)


def test_literals_never_reach_the_summary() -> None:
    _, summary = summarize("select * from t where secret = 'hunter2' and n = 42")
    assert summary == "SELECT t"
    assert "hunter2" not in summarize("insert into t values ('hunter2')")[1]


def test_the_summary_is_cut_between_targets() -> None:
    tables = [f"schema_{i:03d}.table_with_a_long_name_{i:03d}" for i in range(40)]
    _, summary = summarize("select * from " + ", ".join(tables))
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.startswith("SELECT schema_000.table_with_a_long_name_000 ")
    assert summary.split(" ")[-1] in tables  # no target cut in half


def test_a_long_statement_costs_a_bounded_read() -> None:
    sql = "create table big as (select " + ", ".join(f"c{i}" for i in range(200_000)) + " from t)"
    assert summarize(sql) == ("CREATE TABLE", "CREATE TABLE big")


def test_strip_comments_keeps_strings() -> None:
    assert strip_comments("/* x */ select '/* y */' -- z\n from t") == "select '/* y */'  \n from t"
    assert strip_comments("select 1") == "select 1"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_a_short_non_empty_summary(sql: str) -> None:
    operation, summary = summarize(sql)
    assert summary
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert operation is None or summary.startswith(operation.split(" ")[0])
