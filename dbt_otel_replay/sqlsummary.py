r"""Pure: SQL text to ``db.operation.name`` and ``db.query.summary``.

The OpenTelemetry database conventions (v1.33 and later) ask for a low-cardinality
summary of each query, ``{operation} {target} ...``, no longer than 255 characters and
free of literals. dbt's statements are few kinds (DDL on one relation, ``INSERT``/
``MERGE``/``DELETE`` into one, introspection and test ``SELECT``\\ s, transaction
control), so a small tokenizer covers them instead of a SQL parser:

- comments go first, dbt's leading ``/* {"app": "dbt", ...} */`` query comment included;
- keywords are upper-cased (dbt's macros write the same statement in either case, and the
  summary is a grouping key), targets keep their spelling without quotes when a part is
  a plain identifier (``"db"."s"."t"`` is ``db.s.t``);
- a statement that writes a relation is summarized by its first operation and target:
  ``CREATE VIEW s.v``, ``INSERT INTO s.t``, ``MERGE INTO s.t``, ``DELETE FROM s.t``,
  ``DROP TABLE s.t`` (``IF EXISTS``, ``OR REPLACE`` and ``TEMPORARY`` are dropped);
- a ``SELECT`` names the relations of its top-level ``FROM`` and ``JOIN``\\ s, in order
  (``SELECT a.b c.d``); one reading only a subquery is ``SELECT``; a ``WITH`` is read past
  its common table expressions to the statement they feed;
- anything else is its first word (``BEGIN``, ``COMMIT``, ``SHOW``, ``CALL proc``...);
- a dynamic relation suffix dbt adds per microbatch batch (``__dbt_tmp20240103...``) is
  cut back to ``__dbt_tmp``, so a model's batches share one summary.

Only the first :data:`SCAN_CHARS` characters are read: enough for every statement head,
and the cost per statement stays bounded however long the SQL is.
"""

from __future__ import annotations

import re

MAX_SUMMARY_CHARS = 255
"""The conventions' limit; a summary is cut between words, never inside one."""
SCAN_CHARS = 16384
"""How much of a statement is read to summarize it."""

_COMMENT_OR_STRING = re.compile(r"/\*.*?(?:\*/|\Z)|--[^\n]*|'(?:[^'\\]|''|\\.)*'?", re.S)
_PART = r'(?:"[^"]*(?:""[^"]*)*"|`[^`]*`|\[[^\]]*\]|[^\W\d][\w$@#-]*)'
_PART_RE = re.compile(_PART)
_NAME = re.compile(rf"{_PART}(?:\s*\.\s*{_PART})*")
_PLAIN = re.compile(r"[^\W\d][\w$]*\Z")
_ASCII_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
"""Plain ASCII identifiers joined by dots: ``str.isidentifier`` of every part, checked at once."""
_DYNAMIC_SUFFIX = re.compile(r"(__dbt_tmp|__dbt_backup)\w*?\d\w*\Z", re.I)
_WORD = re.compile(r"[A-Za-z_]+")
_SPACES = re.compile(r"\s*")
"""What ``str.lstrip`` removes (both test ``Py_UNICODE_ISSPACE``), as a position."""
_TOKEN = re.compile(
    rf"(?P<name>{_PART}(?:\s*\.\s*{_PART})*)|(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<semi>;)"
    r"|'(?:[^'\\]|''|\\.)*'?"
)

_CREATE = re.compile(
    r"create\s+(?:or\s+replace\s+)?"
    r"(?:(?:temporary|temp|transient|local|global|volatile|unlogged|external|secure|recursive|multiset|"
    r"unique|clustered|nonclustered|or\s+alter)\s+)*"
    r"(materialized\s+view|dynamic\s+table|iceberg\s+table|table|view|schema|database|index|sequence|"
    r"function|procedure|stage|stream|task|type|role|user|catalog|dataset|macro|file\s+format|[a-z_]+)"
    r"(?:\s+concurrently)?(?:\s+if\s+not\s+exists)?\s*",
    re.I,
)
_DROP_ALTER = re.compile(
    r"(drop|alter|truncate|undrop|comment\s+on)\s+(?:(materialized\s+view|dynamic\s+table|table|view|schema|"
    r"database|index|sequence|function|procedure|stage|stream|task|type|column|dataset)\s+)?"
    r"(?:if\s+exists\s+)?(?:only\s+)?",
    re.I,
)
_INSERT = re.compile(
    r"(insert|replace|upsert)\s+(?:(?:low_priority|delayed|high_priority|ignore)\s+)*"
    r"(?:(into)\s+(?:table\s+)?|(overwrite)\s+(?:table\s+)?)?",
    re.I,
)
_MERGE = re.compile(r"merge\s+(?:(into)\s+)?", re.I)
_DELETE = re.compile(r"delete\s+(?:(from)\s+)?", re.I)
_UPDATE = re.compile(r"update\s+(?:only\s+)?", re.I)
_TARGETED = re.compile(r"(call|exec|execute|use|describe|desc|analyze|vacuum|refresh|optimize|msck)\s+", re.I)
_CLAUSE_END = frozenset(
    [
        "WHERE",
        "GROUP",
        "ORDER",
        "LIMIT",
        "HAVING",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "MINUS",
        "QUALIFY",
        "WINDOW",
        "FETCH",
        "OFFSET",
        "FOR",
        "INTO",
        "LATERAL",
        "PIVOT",
        "UNPIVOT",
        "SAMPLE",
        "TABLESAMPLE",
        "SETTINGS",
        "FORMAT",
        "ON",
        "USING",
        "RETURNING",
    ]
)
_JOIN_WORDS = frozenset(
    [
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "FULL",
        "OUTER",
        "CROSS",
        "NATURAL",
        "SEMI",
        "ANTI",
        "ANY",
        "ASOF",
        "GLOBAL",
    ]
)
_KEYWORD_AFTER_NAME = frozenset({"AS", "WITH", "FINAL"})
_cache: dict[str, tuple[str | None, str]] = {}
_CACHE_LIMIT = 4096
_CACHED_CHARS = 1024
"""Short statements (transaction control, introspection) repeat: their summaries are kept."""


def strip_comments(sql: str) -> str:
    """Remove ``/* ... */`` and ``-- ...`` comments (not inside string literals).

    Args:
        sql: SQL text, possibly beginning with dbt's query comment.

    Returns:
        The SQL without comments, stripped of surrounding whitespace.
    """
    if "/*" not in sql and "--" not in sql:
        return sql.strip()
    return _COMMENT_OR_STRING.sub(_keep_strings, sql).strip()


def _keep_strings(match: re.Match[str]) -> str:
    text = match.group()
    return text if text.startswith("'") else " "


def summarize(sql: str) -> tuple[str | None, str]:
    """The operation name and query summary of one SQL statement.

    Args:
        sql: The statement as dbt logged it (comments are removed here).

    Returns:
        ``(operation, summary)``: operation is None when the text starts with no
        word (empty or punctuation); the summary is never empty (``"SQL"`` then).
    """
    head = sql[:SCAN_CHARS]
    short = len(head) <= _CACHED_CHARS
    if short:
        cached = _cache.get(head)
        if cached is not None:
            return cached
    result = _summarize(_lstrip_comments(head))
    if short:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[head] = result
    return result


def _lstrip_comments(text: str) -> str:
    """Drop the comments and whitespace before the first word (dbt's query comment).

    Positions move over the text and one slice is taken at the end: dbt's statements are
    often long, and each comment they start with would otherwise copy the rest.
    """
    text = text.lstrip()
    if not text.startswith(("/*", "--")):
        return text
    position = 0
    spaces = _SPACES.match
    while True:
        if text.startswith("/*", position):
            end = text.find("*/", position)
            if end < 0:
                return ""
            found = spaces(text, end + 2)  # always matches (maybe empty)
            position = found.end() if found is not None else end + 2
        elif text.startswith("--", position):
            end = text.find("\n", position)
            if end < 0:
                return ""
            found = spaces(text, end + 1)
            position = found.end() if found is not None else end + 1
        else:
            return text[position:]


def _summarize(text: str) -> tuple[str | None, str]:
    while text.startswith("("):  # (select ...) union (select ...)
        text = text[1:].lstrip()
    word = _WORD.match(text)
    if word is None:
        return None, "SQL"
    first = word.group().upper()
    if first == "WITH":
        return _summarize_with(strip_comments(text))
    if first == "SELECT":
        return "SELECT", _join("SELECT", _select_targets(strip_comments(text[word.end() :])))
    if first == "CREATE":
        return _summarize_create(text)
    match = _DROP_ALTER.match(text)
    if match is not None:
        verb = _upper_words(match.group(1))
        kind = _upper_words(match.group(2)) if match.group(2) else ""
        operation = f"{verb} {kind}".strip()
        return operation, _join(operation, [_target_at(text, match.end())])
    match = _INSERT.match(text)
    if match is not None and first in ("INSERT", "REPLACE", "UPSERT"):
        into = "INTO" if match.group(2) else "OVERWRITE" if match.group(3) else ""
        return first, _join(f"{first} {into}".strip(), [_target_at(text, match.end())])
    match = _MERGE.match(text)
    if match is not None:
        return "MERGE", _join("MERGE INTO" if match.group(1) else "MERGE", [_target_at(text, match.end())])
    match = _DELETE.match(text)
    if match is not None:
        return "DELETE", _join("DELETE FROM" if match.group(1) else "DELETE", [_target_at(text, match.end())])
    match = _UPDATE.match(text)
    if match is not None:
        return "UPDATE", _join("UPDATE", [_target_at(text, match.end())])
    match = _TARGETED.match(text)
    if match is not None:
        return first, _join(first, [_target_at(text, match.end())])
    if first == "START" and re.match(r"start\s+transaction\b", text, re.I):
        return "START TRANSACTION", "START TRANSACTION"
    if first == "SHOW":
        operation = " ".join(_leading_keywords(text, 3))
        return "SHOW", operation
    return first, first


def _summarize_create(text: str) -> tuple[str | None, str]:
    match = _CREATE.match(text)
    if match is None:
        return "CREATE", "CREATE"
    kind = _upper_words(match.group(1))
    operation = f"CREATE {kind}"
    position = match.end()
    if kind == "INDEX":  # the index's own name is often a hash: name the table it is on
        on = re.compile(r"on\s+(?:only\s+)?", re.I).search(text, position)
        position = on.end() if on is not None else position
    return operation, _join(operation, [_target_at(text, position)])


def _summarize_with(text: str) -> tuple[str | None, str]:
    """Skip the common table expressions and summarize the statement they feed."""
    depth = 0
    expect_body = False
    for token in _TOKEN.finditer(text, len("with")):
        kind = token.lastgroup
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                expect_body = True
        elif depth == 0 and kind == "name":
            word = token.group().upper()
            if expect_body and word not in ("AS", "RECURSIVE", "MATERIALIZED", "NOT"):
                return _summarize(text[token.start() :])
        elif depth == 0 and kind == "comma":
            expect_body = False
    return "WITH", "WITH"


def _select_targets(text: str) -> list[str]:
    """The relations named by the top-level FROM and JOIN clauses of a SELECT."""
    targets: list[str] = []
    depth = 0
    state = 0  # 0: outside FROM; 1: expecting a relation; 2: after a relation (alias, comma, join)
    for token in _TOKEN.finditer(text):
        kind = token.lastgroup
        if kind == "open":
            depth += 1
            if depth == 1 and state == 1:
                state = 2  # a subquery or table function: anonymous
            continue
        if kind == "close":
            depth -= 1
            if depth < 0:
                break
            continue
        if depth:
            continue
        if kind == "semi":
            break
        if kind == "comma":
            if state == 2:
                state = 1
            continue
        if kind != "name":
            continue
        word = token.group()
        upper = word.upper()
        if upper == "FROM":
            state = 1
        elif upper in _JOIN_WORDS:
            if state:
                state = 1 if upper == "JOIN" else state
        elif state == 1:
            if upper in ("LATERAL", "ONLY", "TABLE"):
                continue
            targets.append(_clean_name(word))
            state = 2
        elif state == 2 and upper in _CLAUSE_END and upper not in ("ON", "USING"):
            state = 0
    return _dedupe(targets)


def _target_at(text: str, position: int) -> str:
    match = _NAME.match(text, position)
    if match is None:
        return ""
    name = match.group()
    if name.upper() in _KEYWORD_AFTER_NAME:
        return ""
    return _clean_name(name)


def _clean_name(name: str) -> str:
    """A relation name without the quotes of plain parts, and with no dynamic suffix."""
    cleaned = _names.get(name)
    if cleaned is None:
        if len(_names) >= _CACHE_LIMIT:
            _names.clear()
        cleaned = _names[name] = _clean_name_uncached(name)
    return cleaned


_names: dict[str, str] = {}
"""A model's statements name the same relations (its table, ``__dbt_tmp``, ``__dbt_backup``)."""


def _clean_name_uncached(name: str) -> str:
    plain = name.replace('"', "") if "`" not in name and "[" not in name and '""' not in name else ""
    parts = plain.split(".")
    quotes = len(name) - len(plain)
    if not plain or (quotes and quotes != 2 * len(parts)) or not _identifiers(plain, parts):
        parts = [_unquote(part) for part in _PART_RE.findall(name)]
    last = parts[-1] if parts else ""
    marker = last.lower().find("__dbt_")
    if marker >= 0:
        dynamic = _DYNAMIC_SUFFIX.match(last, marker)
        if dynamic is not None:
            parts[-1] = last[:marker] + dynamic.group(1)
    return ".".join(parts)


def _identifiers(plain: str, parts: list[str]) -> bool:
    """Whether every part is an identifier (one regular expression for plain ASCII, the usual case)."""
    if plain.isascii():
        return _ASCII_DOTTED.match(plain) is not None
    return all(part.isidentifier() for part in parts)


def _unquote(part: str) -> str:
    if len(part) >= 2 and part[0] + part[-1] in ('""', "``", "[]"):
        inner = part[1:-1].replace('""', '"')
        if _PLAIN.match(inner):
            return inner
    return part


def _dedupe(items: list[str]) -> list[str]:
    return [item for item in dict.fromkeys(items) if item]


def _leading_keywords(text: str, limit: int) -> list[str]:
    words = []
    for match in re.finditer(r"\S+", text):
        word = match.group()
        if not word.isalpha() or word.upper() in ("IN", "LIKE", "FROM", "STARTS", "LIMIT"):
            break
        words.append(word.upper())
        if len(words) == limit:
            break
    return words


def _upper_words(text: str) -> str:
    words = _words.get(text)
    if words is None:
        words = _words[text] = " ".join(text.upper().split()) if len(_words) < _CACHE_LIMIT else text.upper()
    return words


_words: dict[str, str] = {}


def _join(operation: str, targets: list[str]) -> str:
    summary = operation
    for target in targets:
        if not target:
            continue
        if len(summary) + 1 + len(target) > MAX_SUMMARY_CHARS:
            break
        summary = f"{summary} {target}"
    return summary[:MAX_SUMMARY_CHARS]
