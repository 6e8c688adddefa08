"""Regenerate the parts of the docs that come from the code: `python scripts/gen_docs.py`.

Markdown files hold generated blocks between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; everything outside them is hand-written. Each NAME is
a function of the package below, so the attribute and status tables are always
the ones the planner uses. tests/test_docs.py fails when a block is out of date.
``--check`` exits 1 instead of writing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dbt_otel_replay import attributes, statuses  # noqa: E402

FILES = [REPO / "docs" / "trace-contract.md"]
_BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _attribute_table() -> str:
    rows = ["| span | attribute | source | example |", "|---|---|---|---|"]
    for item in attributes.CATALOGUE:
        cells = [", ".join(item.spans), f"`{item.key}`", _cell(item.source), _cell(item.example)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _status_table() -> str:
    rows = [
        "| dbt status | span status | event | `cicd.pipeline.task.run.result` | drawn as |",
        "|---|---|---|---|---|",
    ]
    for row in statuses.STATUSES.values():
        event = f"`{row.event}`" if row.event else ""
        cells = [f"`{row.name}`", row.span_status.name, event, f"`{row.task_result}`", row.category.value]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append("| anything else | UNSET | | (left out) | other |")
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {"attributes": _attribute_table, "statuses": _status_table}


def render(text: str) -> str:
    """The text with every generated block brought up to date."""

    def block(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in GENERATORS:
            raise SystemExit(f"unknown generated block {name!r}")
        return match.group(1) + GENERATORS[name]() + match.group(4)

    return _BLOCK.sub(block, text)


def main() -> int:
    """Rewrite (or with --check, only compare) every generated block."""
    check = "--check" in sys.argv[1:]
    stale = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{path.relative_to(REPO)}: {'out of date' if check else 'regenerated'}", file=sys.stderr)
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
