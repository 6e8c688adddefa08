"""The HTML report: self-contained, escaped, and checked for real in headless Chromium.

The Chromium tests need Debian's chromium package (``apt-get install -y chromium``)
and are skipped without /usr/bin/chromium. Chromium loads the page from a file with
its network features off; the page's Content-Security-Policy forbids loading
anything anyway.
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.plan import Plan, plan_trace
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.spans import SpanRole
from dbt_otel_replay.statuses import FAILED_STATUSES
from dbt_otel_replay.views.analysis import RunAnalysis, analyse
from dbt_otel_replay.views.report import render_html
from tests.support.contract import copy_pair
from tests.support.synthetic import write_synthetic_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium is not installed (/usr/bin/chromium); "
    "install it with: apt-get install -y chromium",
)
EVIL_NODE = "test.replay_fixture.<script>alert(1)</script>"
EVIL_MESSAGE = "<img src=x onerror=\"document.title='pwned'\"> & </pre></td></tr></table>"
EVIL_PROJECT = "</title><script>alert(3)</script>"


# --------------------------------------------------------------------------- helpers


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    within: tuple[str, ...]  # the ids of the element and its ancestors
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def content(self) -> str:
        return "".join(self.text)


class Dom(HTMLParser):
    """A flat list of a page's elements, each knowing which ids it is inside."""

    VOID = frozenset({"meta", "input", "br", "img", "link", "hr", "area", "base", "col", "source", "wbr"})

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        parent = self._open[-1].within if self._open else ()
        element = Element(tag, values, parent + ((values["id"],) if "id" in values else ()))
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text.append(data)

    def find(self, tag: str, *, within: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and (within is None or within in e.within) and (cls is None or cls in e.classes)
        ]

    def by_id(self, ident: str) -> Element:
        (element,) = [e for e in self.elements if e.attrs.get("id") == ident]
        return element


def chromium(workdir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        timeout=120,
        check=True,
        cwd=workdir,
    )


def dump_dom(page: Path, fragment: str = "") -> Dom:
    result = chromium(page.parent, "--dump-dom", page.as_uri() + fragment)
    return Dom(result.stdout.decode("utf-8"))


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Decode an 8-bit RGB(A) PNG (what Chromium writes): its size and its distinct RGB colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and color_type in (2, 6), (depth, color_type, interlace)
    bpp = 3 if color_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(chunks))
    assert len(raw) == height * (stride + 1)
    colours: set[bytes] = set()
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp))
        previous = line
    return width, height, colours


def build_plan(target: Path) -> tuple[Plan, RunAnalysis]:
    plan = plan_trace(load_artifacts(target))
    return plan, analyse(plan)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def build() -> tuple[Plan, RunAnalysis]:
    return build_plan(FIXTURES / "build")


@pytest.fixture(scope="module")
def page(workdir: Path, build: tuple[Plan, RunAnalysis]) -> Path:
    path = workdir / "report.html"
    path.write_text(render_html(*build), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evil_page(workdir: Path) -> Path:
    """The fixture run with a node id, a failure message and a project name made of HTML."""
    target = workdir / "evil"
    copy_pair(FIXTURES / "build", target)
    run_results = json.loads((target / "run_results.json").read_text())
    (failed_test,) = [r for r in run_results["results"] if r["status"] == "fail"]
    failed_test["unique_id"] = EVIL_NODE
    failed_test["message"] = EVIL_MESSAGE
    (target / "run_results.json").write_text(json.dumps(run_results))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["metadata"]["project_name"] = EVIL_PROJECT
    (target / "manifest.json").write_text(json.dumps(manifest))
    path = workdir / "evil.html"
    path.write_text(render_html(*build_plan(target)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dom(page: Path) -> Dom:
    return dump_dom(page)


# --------------------------------------------------------------------------- static checks


def test_the_page_loads_nothing_from_anywhere(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for reference in ("http://", "https://", "//cdn", " src=", "<link", "url(", "@import"):
        assert reference not in text, reference
    assert "Content-Security-Policy" in text
    assert "default-src 'none'" in text
    assert text.count("<script") == 1, "one inline script, the filter"
    assert text.count("<style") == 1


def test_the_sections_are_there(page: Path, build: tuple[Plan, RunAnalysis]) -> None:
    plan, analysis = build
    dom = Dom(page.read_text(encoding="utf-8"))
    for ident in (
        "metadata",
        "gantt",
        "critical-path",
        "slowest",
        "failures",
        "warnings",
        "threads",
        "filter",
    ):
        dom.by_id(ident)
    metadata = dom.by_id("metadata").content()
    for fact in ("build", "1.11.16", "replay_fixture", plan.trace_id, "3a56bf74-595a-4136-9f88-097261a0797f"):
        assert fact in metadata
    assert f"{plan.invocation.duration_seconds:.3f} s" in metadata
    assert "15 pass" in metadata
    assert "1 error" in metadata
    assert len(dom.find("rect", within="gantt", cls="bar")) == sum(s.duration_seconds > 0 for s in plan.nodes)
    assert len(dom.find("tr", within="threads")) == len(analysis.threads) + 1  # and the header
    assert "50%" in dom.by_id("idle-share").content()


def test_the_slowest_are_the_top_20_in_order(page: Path, build: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = build
    dom = Dom(page.read_text(encoding="utf-8"))
    rows = [r.attrs["data-node"] for r in dom.find("tr", within="slowest") if "data-node" in r.attrs]
    expected = sorted(plan.nodes, key=lambda s: (-s.duration_seconds, s.name))[:20]
    assert rows == [s.name for s in expected]
    assert rows[0] == "model.replay_fixture.orders"


def test_a_title_can_be_given(build: tuple[Plan, RunAnalysis]) -> None:
    text = render_html(*build, title="Nightly <build> & co")
    assert "<title>Nightly &lt;build&gt; &amp; co</title>" in text
    assert text == render_html(*build, title="Nightly <build> & co"), "pure"


def test_html_in_names_and_messages_is_escaped(evil_page: Path) -> None:
    text = evil_page.read_text(encoding="utf-8")
    assert "<script>alert" not in text
    assert "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;" in text
    assert "&lt;/title&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in text
    assert text.count("<script") == 1


# --------------------------------------------------------------------------- in Chromium


@needs_chromium
def test_chromium_renders_one_bar_per_executed_node(dom: Dom, build: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = build
    (svg,) = dom.find("svg", within="gantt")
    assert svg.attrs["id"] == "gantt"
    bars = dom.find("rect", within="gantt", cls="bar")
    ran = [s for s in plan.nodes if s.end_time_unix_nano > s.start_time_unix_nano]
    assert sorted(b.attrs["data-node"] for b in bars) == sorted(s.name for s in ran)
    markers = dom.find("path", within="gantt", cls="marker")
    assert sorted(m.attrs["data-node"] for m in markers) == sorted(
        s.name for s in plan.nodes if s.end_time_unix_nano <= s.start_time_unix_nano
    )
    assert {m.attrs["data-status"] for m in markers} == {"skipped"}
    by_node = {b.attrs["data-node"]: b for b in bars}
    ltv = by_node["model.replay_fixture.customer_ltv"]
    assert {"fail", "crit"} <= ltv.classes
    assert "error · 0.016 s" in ltv.content(), "the hover title"
    assert (
        "warn"
        in by_node[
            "test.replay_fixture.accepted_values_stg_payments_payment_method__credit_card__coupon__bank_transfer.1a6bf817f5"
        ].classes
    )
    crit = {b.attrs["data-node"] for b in bars if "crit" in b.classes}
    assert crit == {s.name for s in plan.nodes if s.attributes.get("dbt.critical_path") is True}


@needs_chromium
def test_chromium_shows_the_critical_path_in_order(dom: Dom, build: tuple[Plan, RunAnalysis]) -> None:
    _, analysis = build
    rows = [r for r in dom.find("tr", within="critical-path") if "data-node" in r.attrs]
    assert [r.attrs["data-node"] for r in rows] == [step.unique_id for step in analysis.critical_path]
    assert [r.attrs["data-node"] for r in rows] == [
        "seed.replay_fixture.raw_payments",
        "model.replay_fixture.stg_payments",
        "model.replay_fixture.customer_orders",
        "model.replay_fixture.customer_ltv",
    ]
    for row, step in zip(rows, analysis.critical_path, strict=True):
        assert f"{step.node.seconds:.3f} s" in row.content()
        assert f"{step.wait_seconds:.3f} s" in row.content()


@needs_chromium
def test_chromium_shows_the_failures_with_their_messages(dom: Dom, build: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = build
    rows = {
        r.attrs["data-node"]: r.content() for r in dom.find("tr", within="failures") if "data-node" in r.attrs
    }
    failed = {s.name for s in plan.nodes if s.attributes.get("dbt.status") in FAILED_STATUSES}
    assert (
        set(rows)
        == failed
        == {
            "model.replay_fixture.customer_ltv",
            "test.replay_fixture.not_null_orders_amount.106140f9fd",
        }
    )
    assert 'column "lifetime_value_cents" does not exist' in rows["model.replay_fixture.customer_ltv"]
    assert (
        "Got 1 result, configured to fail if != 0"
        in rows["test.replay_fixture.not_null_orders_amount.106140f9fd"]
    )


@needs_chromium
def test_chromium_runs_the_filter(page: Path, build: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = build
    dom = dump_dom(page, "#q=stg_payments")
    items = dom.find("rect", within="gantt", cls="bar") + dom.find("path", within="gantt", cls="marker")
    shown = {i.attrs["data-node"] for i in items if "filtered-out" not in i.classes}
    assert shown == {s.name for s in plan.nodes if "stg_payments" in s.name}
    assert len(shown) == 4
    assert dom.by_id("filter").attrs.get("value", "") in ("", "stg_payments")
    assert dom.by_id("filter-count").content() == "4 matching nodes"


@needs_chromium
def test_chromium_does_not_run_injected_html(evil_page: Path) -> None:
    dom = dump_dom(evil_page)
    assert dom.find("img") == []
    assert len(dom.find("script")) == 1
    (title,) = [t for t in dom.find("title") if "gantt" not in t.within]
    assert title.content().startswith("dbt build · </title><script>alert(3)</script>")
    failures = {
        r.attrs["data-node"]: r.content() for r in dom.find("tr", within="failures") if "data-node" in r.attrs
    }
    assert EVIL_MESSAGE in failures[EVIL_NODE]
    assert EVIL_NODE in {b.attrs["data-node"] for b in dom.find("rect", within="gantt", cls="bar")}


@needs_chromium
def test_chromium_screenshot_is_a_real_picture(page: Path) -> None:
    shot = page.parent / "report.png"
    chromium(page.parent, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri())
    data = shot.read_bytes()
    assert len(data) > 20_000
    width, height, colours = png_pixels(data)
    assert (width, height) == (1400, 1000)
    assert len(colours) > 100, "text, bars and rules, not a blank page"
    for name, rgb in {"success": "2e7d32", "error": "c62828", "warn": "f9a825", "critical": "6a1b9a"}.items():
        assert bytes.fromhex(rgb) in colours, f"no {name} colour on the screenshot"


@needs_chromium
def test_chromium_renders_a_5000_node_run(workdir: Path) -> None:
    plan, analysis = build_plan(write_synthetic_run(workdir / "synthetic", 5000))
    page = workdir / "synthetic.html"
    page.write_text(render_html(plan, analysis), encoding="utf-8")
    assert page.stat().st_size < 4_000_000
    dom = dump_dom(page)
    bars = dom.find("rect", within="gantt", cls="bar")
    assert len(bars) == 5000
    assert len({b.attrs["data-node"] for b in bars}) == 5000
    assert len([r for r in dom.find("tr", within="slowest") if "data-node" in r.attrs]) == 20
    assert len([r for r in dom.find("tr", within="critical-path") if "data-node" in r.attrs]) == len(
        analysis.critical_path
    )


# --------------------------------------------------------------------------- inside the nodes (dbt's log)

LOGGED = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "dbt-1.11-text" / "target"


@pytest.fixture(scope="module")
def logged(workdir: Path) -> tuple[Plan, Path]:
    """A real run with its dbt.log: statements, connections and a microbatch model with a failed batch."""
    plan = prepare(LOGGED, ReplayOptions(dry_run=True)).plan
    path = workdir / "logged.html"
    path.write_text(render_html(plan, analyse(plan)), encoding="utf-8")
    return plan, path


def test_a_logged_page_loads_nothing_either(logged: tuple[Plan, Path]) -> None:
    text = logged[1].read_text(encoding="utf-8")
    for reference in ("http://", "https://", " src=", "<link", "url(", "@import"):
        assert reference not in text, reference
    assert text.count("<script") == 1
    dom = Dom(text)
    for ident in ("slowest", "slowest-statements", "batches"):
        dom.by_id(ident)


@needs_chromium
def test_chromium_shows_the_slowest_statements_and_where_node_time_went(logged: tuple[Plan, Path]) -> None:
    plan, page = logged
    dom = dump_dom(page)
    statements = [s for s in plan.spans if s.role is SpanRole.STATEMENT]
    rows = dom.find("tr", within="slowest-statements")[1:]
    assert len(rows) == min(20, len(statements))
    durations = sorted((s.duration_seconds for s in statements), reverse=True)[: len(rows)]
    assert [_tds(dom, r)[-1].content() for r in rows] == [f"{d:.3f} s" for d in durations]
    longest = [s for s in statements if s.duration_seconds == durations[0]]
    assert any(str(s.attributes["db.query.summary"]) in rows[0].content() for s in longest)
    header = [h.content() for h in dom.find("th", within="slowest")]
    assert header[-4:] == ["statements", "in statements", "connecting", "overhead"]
    slowest = {r.attrs["data-node"]: r for r in dom.find("tr", within="slowest") if "data-node" in r.attrs}
    assert slowest
    for uid, row in slowest.items():
        node = next(s for s in plan.nodes if s.name == uid)
        tds = [e.content() for e in _tds(dom, row)]
        assert len(tds) == 11, tds
        parts = [float(t.removesuffix(" s")) for t in tds[-3:] if t != "—"]
        if parts:
            assert abs(sum(parts) - node.duration_seconds) < 0.0021, (uid, tds)
    (batch,) = [r for r in dom.find("tr", within="batches") if "data-node" in r.attrs]
    assert batch.attrs["data-node"] == "model.replay_logs.events_microbatch"
    assert [e.content() for e in _tds(dom, batch)][:4] == [
        "model.replay_logs.events_microbatch",
        "5",
        "1",
        "2024-01-03",
    ]
    assert "division by zero" in batch.content()


@needs_chromium
def test_chromium_filters_the_statements_too(logged: tuple[Plan, Path]) -> None:
    _, page = logged
    dom = dump_dom(page, "#q=parallel_a")
    rows = [r for r in dom.find("tr", within="slowest-statements") if "data-node" in r.attrs]
    shown = {r.attrs["data-node"] for r in rows if "filtered-out" not in r.classes}
    assert shown == {r.attrs["data-node"] for r in rows if "parallel_a" in r.attrs["data-node"]}
    assert "model.replay_logs.parallel_a" in shown and "model.replay_logs.parallel_b" not in shown
    assert any("filtered-out" in r.classes for r in rows)


def _tds(dom: Dom, row: Element) -> list[Element]:
    """The cells of one table row: the td elements after it in document order, up to the next row."""
    index = next(i for i, e in enumerate(dom.elements) if e is row)
    cells = []
    for element in dom.elements[index + 1 :]:
        if element.tag == "tr":
            break
        if element.tag == "td":
            cells.append(element)
    return cells
