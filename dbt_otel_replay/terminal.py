r"""Text for a person's terminal: the one place control and bidi characters are made visible.

Artifacts, logs and collectors are written by others: a database error message
can carry a row of table data, and a collector's response body is whatever the
collector (or something in front of it) sends. Printed raw, such text could
clear the screen (``ESC[2J``), retitle the window (OSC ``ESC]0;...BEL``), move the
cursor back over what was printed (``\b``, ``\r``) or reorder what follows
(U+202E RIGHT-TO-LEFT OVERRIDE). Every human-readable output passes such text
through :func:`escape`; JSON documents keep the exact text, JSON-escaped
(``json.dumps`` with ``ensure_ascii=True``), and the OTLP data is never changed.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""The Unicode bidirectional formatting characters (the Trojan Source set, CVE-2021-42574)."""

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_table() -> dict[int, str]:
    """Each character :func:`escape` replaces, with what it shows instead."""
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]  # C0, DEL, C1
    table = {code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in controls}
    table.update({ord(char): f"\\u{ord(char):04x}" for char in BIDI_CONTROLS})
    return table


_TABLE = _escape_table()
_UNSAFE = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(_TABLE)) + "]")
"""Any character of the table: most text has none, and a search is ten times faster than a translation."""


def escape(text: str) -> str:
    r"""Make control and bidi characters visible, so outside text cannot drive the terminal.

    Every C0 control (newline and tab included: the text is one field of a line),
    DEL and every C1 control becomes a Python-style escape (``\n``, ``\t``,
    ``\r``, else ``\x1b``), and each bidi control ``\u202e``-style. Everything
    else, backslashes and non-ASCII letters, CJK and emoji included, is left as
    it is, so text without such characters is unchanged.

    Args:
        text: Text from an artifact, a log record or a collector.

    Returns:
        The text, safe to print on one line of a terminal.
    """
    return text.translate(_TABLE) if _UNSAFE.search(text) else text
