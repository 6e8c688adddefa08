"""The Markdown job summary and the trace's link: escaping proved with a real Markdown parser, then the CLI.

The summary is rendered with markdown-it-py (CommonMark with GitHub's tables and
strikethrough, raw HTML allowed as on GitHub), so "a node name cannot break the table
or inject HTML" is checked on what a renderer makes of it, not on the escaping's own rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from dbt_otel_replay.cli import TRACE_URL_VARIABLE
from dbt_otel_replay.terminal import escape
from dbt_otel_replay.views import check_trace_url, render_markdown, trace_url
from dbt_otel_replay.views.markdown import CELL_CHARS, cell
from tests.support.cli import run_cli as run
from tests.support.contract import from_otlp_json_lines

HOSTILE = [
    "a | b",
    "`code` and ``more``",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.example) ![x](https://evil.example/x.png)",
    "**bold** _it_ ~~gone~~ $x^2$ $$y$$",
    "&lt;b&gt; &amp; &#60;",
    "back\\slash\\|pipe\\",
    "line\nbreak\r\n| new | row |",
    "# heading\n- item\n> quote",
    "\x1b[2J\u202eevil",
    "<!-- comment",
    "https://autolink.example <https://angle.example>",
]


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def table_rows(markdown: str) -> list[list[list[Token]]]:
    """Each row of every table, as the inline tokens of each cell."""
    tokens = parser().parse(markdown)
    rows: list[list[list[Token]]] = []
    in_row = False
    for token in tokens:
        if token.type in ("tr_open", "tr_close"):
            in_row = token.type == "tr_open"
            rows += [[]] if in_row else []
        elif token.type == "inline" and in_row:
            rows[-1].append(token.children or [])
    return rows


def text_of(children: list[Token]) -> str:
    return "".join(t.content for t in children if t.type == "text")


def expected(text: str) -> str:
    collapsed = " ".join(text.split())
    return escape(collapsed if len(collapsed) <= CELL_CHARS else collapsed[: CELL_CHARS - 3] + "...")


def assert_plain(children: list[Token]) -> None:
    assert {t.type for t in children} <= {"text", "softbreak"}, [t.type for t in children]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_cell_renders_as_its_text_alone(text: str) -> None:
    markdown = f"| a | b |\n|---|---|\n| {cell(text)} | {cell(text)} |\n"
    rows = table_rows(markdown)
    assert len(rows) == 2 and len(rows[1]) == 2, markdown
    for children in rows[1]:
        assert_plain(children)
        assert text_of(children) == expected(text)
    rendered = parser().render(markdown)
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.sampled_from(list("ab |`\\<>&*_[]()!#$~{}+-.=:;\"'/\n\t\r\x00\x1b\u202e é漢")), max_size=200)
)
def test_any_text_stays_in_its_cell(text: str) -> None:
    markdown = f"| a | b | c |\n|---|---|---|\n| x | {cell(text)} | y |\n"
    rows = table_rows(markdown)
    assert len(rows) == 2 and len(rows[1]) == 3, markdown
    assert text_of(rows[1][0]) == "x" and text_of(rows[1][2]) == "y"
    assert_plain(rows[1][1])
    assert text_of(rows[1][1]) == expected(text)


def test_cell_cuts_long_messages_before_escaping() -> None:
    text = "|" * 500
    assert cell(text) == "\\|" * (CELL_CHARS - 3) + "..."


# --------------------------------------------------------------------------- #
# Trace URL templates
# --------------------------------------------------------------------------- #


def test_trace_url_fills_the_placeholders_and_keeps_doubled_braces() -> None:
    template = "https://g.example/explore?left={{%22q%22:%22{trace_id}%22}}&span={span_id}"
    check_trace_url(template)
    assert trace_url(template, "ab" * 16, "cd" * 8) == (
        f"https://g.example/explore?left={{%22q%22:%22{'ab' * 16}%22}}&span={'cd' * 8}"
    )


@pytest.mark.parametrize(
    ("template", "known", "message"),
    [
        (
            "https://x/{traceid}",
            ("trace_id", "span_id"),
            "unknown placeholder {traceid}: use {trace_id}, {span_id}",
        ),
        ("https://x/{0}", ("trace_id",), "unknown placeholder {0}: use {trace_id}"),
        ("https://x/{}", ("trace_id",), "unknown placeholder {}: use {trace_id}"),
        ("https://x/{span_id}", ("trace_id",), "unknown placeholder {span_id}: use {trace_id}"),
        ("https://x/{trace_id:>40}", ("trace_id",), "{trace_id} takes no format spec or conversion"),
        ("https://x/{trace_id!r}", ("trace_id",), "{trace_id} takes no format spec or conversion"),
        ("https://x/{trace_id.real}", ("trace_id",), "unknown placeholder {trace_id.real}"),
        ("https://x/{trace_id", ("trace_id",), "write a literal brace twice"),
        ("https://x/}", ("trace_id",), "write a literal brace twice"),
    ],
)
def test_bad_templates_are_refused(template: str, known: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_trace_url(template, known)
    assert message in str(raised.value)


# --------------------------------------------------------------------------- #
# The view on a real run
# --------------------------------------------------------------------------- #


def fixture_markdown(target: Path, tmp_path: Path, *args: str) -> tuple[str, str]:
    """The summary --markdown writes for the fixture build, and the run's stderr."""
    out = tmp_path / "summary.md"
    result = run(str(target), "-o", str(tmp_path / "t.json"), "--markdown", str(out), *args)
    assert result.exit_code == 0, result.stderr
    return out.read_text(), result.stderr


def test_the_summary_of_the_fixture_build(target: Path, tmp_path: Path) -> None:
    markdown, _ = fixture_markdown(target, tmp_path, "--trace-url", "https://t.example/trace/{trace_id}")
    trace_id = json.loads((tmp_path / "t.json").read_text().splitlines()[0])["resourceSpans"][0][
        "scopeSpans"
    ][0]["spans"][0]["traceId"]
    assert markdown.startswith("\n### dbt-otel-replay: dbt build\n") and markdown.endswith("|\n\n")
    tokens = parser().parse(markdown)
    links = [
        t.attrs["href"]
        for t in tokens
        if t.type == "inline"
        for t in t.children or []
        if t.type == "link_open"
    ]
    assert links == [f"https://t.example/trace/{trace_id}"]
    rows = table_rows(markdown)
    cells = {text_of(row[0]): row for row in rows if len(row) == 2}
    assert text_of(cells["status"][1]) == "❌ 2 failed"
    assert text_of(cells["nodes"][1]) == "33 (15 pass, 12 success, 3 skipped, 1 warn, 1 fail, 1 error)"
    assert text_of(cells["spans"][1]).endswith(f"written as OTLP/JSON to {tmp_path / 't.json'}")
    failures = [row for row in rows if len(row) == 3 and text_of(row[0]) in {"fail", "error"}]
    assert [text_of(row[1]) for row in failures] == [
        "test.replay_fixture.not_null_orders_amount.106140f9fd",
        "model.replay_fixture.customer_ltv",
    ]
    assert "**Critical path**: 4 nodes" in markdown and "**Slowest nodes**" in markdown
    critical = markdown.split("**Critical path**")[1].split("**Failures**")[0]
    assert critical.count("| model.replay\\_fixture.") == 3


def test_a_hostile_message_stays_in_its_cell(target: Path, tmp_path: Path) -> None:
    path = target / "run_results.json"
    document = json.loads(path.read_text())
    failed = next(r for r in document["results"] if r["status"] == "error")
    failed["message"] = "".join(HOSTILE)
    path.write_text(json.dumps(document))
    markdown, _ = fixture_markdown(target, tmp_path)
    rows = [row for row in table_rows(markdown) if len(row) == 3 and text_of(row[0]) == "error"]
    assert len(rows) == 1
    for children in rows[0]:
        assert_plain(children)
    assert text_of(rows[0][2]) == expected("".join(HOSTILE))
    rendered = parser().render(markdown)
    assert "<script" not in rendered and "<img" not in rendered and "<!--" not in rendered


def test_a_run_without_failures_passes(tmp_path: Path) -> None:
    from tests.support.contract import copy_pair

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
    copy_pair(fixtures / "run", tmp_path / "target")
    document = json.loads((tmp_path / "target" / "run_results.json").read_text())
    for result in document["results"]:
        result["status"] = "success"
    (tmp_path / "target" / "run_results.json").write_text(json.dumps(document))
    markdown, _ = fixture_markdown(tmp_path / "target", tmp_path)
    assert "| status | ✅ passed |" in markdown and "**Failures**" not in markdown


# --------------------------------------------------------------------------- #
# Where it goes: $GITHUB_STEP_SUMMARY (appended), --markdown FILE (replaced)
# --------------------------------------------------------------------------- #


def test_the_step_summary_is_appended_never_replaced(target: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary"
    summary.write_text("an earlier step's line")  # no newline: ours must not join it
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    args = (str(target), "-o", str(tmp_path / "t.json"), "-q")
    assert run(*args, env=env).exit_code == 0
    first = summary.read_text()
    assert run(*args, env=env).exit_code == 0
    ours = first.removeprefix("an earlier step's line")
    assert ours.startswith("\n### dbt-otel-replay: dbt build\n")  # a heading ends their paragraph or table
    assert summary.read_text() == first + ours
    tokens = parser().parse(summary.read_text())
    assert next(t.content for t in tokens if t.type == "inline") == "an earlier step's line"
    assert sum(1 for t in tokens if t.type == "table_open") == 2 * 4  # run, critical path, failures, slowest


def test_markdown_file_is_what_the_step_summary_gets(target: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary"
    markdown = tmp_path / "report.md"
    markdown.write_text("old content, replaced")
    result = run(
        str(target), "-o", str(tmp_path / "t.json"), "--markdown", str(markdown),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert markdown.read_text() == summary.read_text()
    assert markdown.read_text().startswith("\n### dbt-otel-replay")


def test_markdown_to_the_step_summary_itself_is_written_once(target: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary"
    result = run(
        str(target), "-o", str(tmp_path / "t.json"), "--markdown", str(summary),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert summary.read_text().count("### dbt-otel-replay") == 1


def test_no_step_summary_without_the_variable(target: Path, tmp_path: Path) -> None:
    result = run(str(target), "-o", str(tmp_path / "t.json"), env={"GITHUB_STEP_SUMMARY": ""})
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "target"]


def test_an_unwritable_step_summary_is_a_warning(target: Path, tmp_path: Path) -> None:
    result = run(
        str(target), "-o", str(tmp_path / "t.json"), "-q", env={"GITHUB_STEP_SUMMARY": str(tmp_path)}
    )
    assert result.exit_code == 0
    assert result.stderr.startswith("dbt-otel-replay: warning: $GITHUB_STEP_SUMMARY: ")
    assert "cannot write the Markdown summary" in result.stderr


def test_markdown_naming_an_input_is_refused(target: Path, tmp_path: Path) -> None:
    result = run(str(target), "-o", str(tmp_path / "t.json"), "--markdown", str(target / "manifest.json"))
    assert result.exit_code == 2, result.stderr
    assert json.loads((target / "manifest.json").read_text())


def test_markdown_to_stdout(target: Path, tmp_path: Path) -> None:
    result = run(str(target), "-o", str(tmp_path / "t.json"), "-q", "--markdown", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("\n### dbt-otel-replay: dbt build\n")


# --------------------------------------------------------------------------- #
# --trace-url in the summary, the JSON documents, and as a usage error
# --------------------------------------------------------------------------- #

TEMPLATE = "https://grafana.example/explore?traceId={trace_id}&spanId={span_id}"


def test_trace_url_in_the_summary_and_the_json(target: Path, tmp_path: Path) -> None:
    text = run(str(target), "-o", str(tmp_path / "a.json"), "--trace-url", TEMPLATE)
    assert text.exit_code == 0, text.stderr
    document = run(str(target), "-o", str(tmp_path / "b.json"), "--format", "json",
                   env={"DBT_OTEL_REPLAY_TRACE_URL": TEMPLATE})  # fmt: skip
    assert document.exit_code == 0, document.stderr
    summary = json.loads(document.stdout)
    trace_id, span_id = summary["traceparent"].split("-")[1:3]
    url = f"https://grafana.example/explore?traceId={trace_id}&spanId={span_id}"
    assert summary["trace_url"] == url
    lines = text.stderr.splitlines()
    assert lines[2] == f"  view it at {url}", lines[:3]


def test_without_trace_url_the_json_has_no_such_key(target: Path, tmp_path: Path) -> None:
    result = run(str(target), "-o", str(tmp_path / "a.json"), "--format", "json")
    assert "trace_url" not in json.loads(result.stdout)
    assert "view it at" not in run(str(target), "-o", str(tmp_path / "b.json")).stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--trace-url", "https://x/{run}"],
            {},
            "--trace-url: unknown placeholder {run}: use {trace_id}, {span_id}",
        ),
        ([], {"DBT_OTEL_REPLAY_TRACE_URL": "https://x/{trace_id"}, "DBT_OTEL_REPLAY_TRACE_URL: "),
    ],
)
def test_a_bad_template_is_a_usage_error(
    target: Path, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(str(target), "-o", str(tmp_path / "t.json"), *args, env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"dbt-otel-replay: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "t.json").exists() and not (target / "traceparent").exists()


def test_backfill_json_runs_carry_the_url(target: Path, tmp_path: Path) -> None:
    result = run("backfill", str(target), "-o", str(tmp_path / "t.json"), "--format", "json",
                 "--trace-url", "https://t.example/{trace_id}")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [r["trace_url"] for r in runs] == [f"https://t.example/{runs[0]['trace_id']}"]


def test_backfill_fills_span_id_per_run_as_a_replay_does(target: Path, tmp_path: Path) -> None:
    """A job sets DBT_OTEL_REPLAY_TRACE_URL once; with {span_id} in it a backfill step exited 2."""
    out = tmp_path / "t.json"
    result = run(
        "backfill", str(target), "-o", str(out), "--format", "json", env={TRACE_URL_VARIABLE: TEMPLATE}
    )
    assert result.exit_code == 0, result.stderr
    [entry] = json.loads(result.stdout)["runs"]
    replayed = run(str(target), "-o", str(tmp_path / "one.json"), "--format", "json", "--trace-url", TEMPLATE)
    assert entry["trace_url"] == json.loads(replayed.stdout)["trace_url"]
    [root] = [s for s in from_otlp_json_lines(out.read_text()) if not s.parent_span_id]
    assert entry["trace_url"].endswith(f"traceId={root.trace_id}&spanId={root.span_id}")


def test_render_markdown_is_pure_and_deterministic(target: Path) -> None:
    from dbt_otel_replay.replay import ReplayOptions, replay

    result = replay(target, ReplayOptions(dry_run=True))
    once = render_markdown(result.plan, "somewhere", "https://x/a b|c")
    assert once == render_markdown(result.plan, "somewhere", "https://x/a b|c")
    assert "(<https://x/a%20b%7Cc>)" in once
