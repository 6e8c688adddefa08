"""What each dbt status means to the trace and to the views: the one status table.

dbt writes a node's outcome as a free-form status string. The planner needs the
span status, the event and the ``cicd.pipeline.task.run.result`` it implies;
the views need its category (colour, glyph) and which status wins a shared
cell. All of that is read from :data:`STATUSES`, so a new dbt status is one
row here. Statuses this version does not know are replayed verbatim and drawn
as ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class StatusCode(IntEnum):
    """OpenTelemetry span status codes, numbered as in OTLP."""

    UNSET = 0
    OK = 1
    ERROR = 2


class Category(str, Enum):
    """How the views classify a status (colour, glyph, the HTML report's CSS class)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"
    OTHER = "other"

    @property
    def rank(self) -> int:
        """Which node a shared cell of the waterfall shows: the higher rank wins (a failure first)."""
        return _RANKS[self]


_RANKS = {Category.SKIPPED: 0, Category.OTHER: 1, Category.OK: 2, Category.WARN: 4, Category.FAIL: 5}
CRITICAL_RANK = 3
"""A node on the critical path outranks successes and skips, but not warnings and failures."""


@dataclass(frozen=True)
class DbtStatus:
    """What one dbt status means.

    Attributes:
        name: The status as dbt writes it.
        span_status: ERROR for failures (the span carries dbt's message), else UNSET.
        task_result: OpenTelemetry's ``cicd.pipeline.task.run.result``, or None when unknown.
        category: The views' class for it.
        event: The span event that records it on a span without error (``dbt.warn``), if any.
    """

    name: str
    span_status: StatusCode
    task_result: str | None
    category: Category
    event: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the node's span (and the invocation's) is an error."""
        return self.span_status is StatusCode.ERROR

    @property
    def rank(self) -> int:
        """See :attr:`Category.rank`."""
        return self.category.rank


_ERROR, _UNSET = StatusCode.ERROR, StatusCode.UNSET
STATUSES: dict[str, DbtStatus] = {
    s.name: s
    for s in (
        DbtStatus("success", _UNSET, "success", Category.OK),
        DbtStatus("pass", _UNSET, "success", Category.OK),
        DbtStatus("warn", _UNSET, "success", Category.WARN, event="dbt.warn"),
        DbtStatus("no-op", _UNSET, "success", Category.OTHER),
        DbtStatus("reused", _UNSET, "success", Category.OTHER),
        DbtStatus("error", _ERROR, "failure", Category.FAIL),
        DbtStatus("fail", _ERROR, "failure", Category.FAIL),
        DbtStatus("partial success", _UNSET, "failure", Category.WARN, event="dbt.partial_success"),
        DbtStatus("runtime error", _ERROR, "error", Category.FAIL),
        DbtStatus("skipped", _UNSET, "skip", Category.SKIPPED),
    )
}
"""Every dbt status this version knows, as dbt 0.21 to 1.12 and Fusion write them."""


def status(name: object) -> DbtStatus:
    """The meaning of a dbt status; an unknown one is replayed as is and drawn as ``other``.

    Args:
        name: The status (a ``dbt.status`` attribute value, or anything else).

    Returns:
        Its row of :data:`STATUSES`, or a row with no task result and category ``other``.
    """
    text = str(name)
    known = STATUSES.get(text)
    return known if known is not None else DbtStatus(text, _UNSET, None, Category.OTHER)


FAILED_STATUSES = frozenset(name for name, row in STATUSES.items() if row.failed)
"""Statuses that make a span's status ERROR: error, fail, runtime error."""
WARNING_STATUSES = frozenset(name for name, row in STATUSES.items() if row.event is not None)
"""Statuses recorded as an event on a span without error: warn, partial success."""
