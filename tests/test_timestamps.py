from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbt_otel_replay.timestamps import _parse_any, format_timestamp, parse_timestamp
from tests.support.contract import nanos

BASE = 1_714_564_803  # 2024-05-01T12:00:03Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:03.123456Z", BASE * 10**9 + 123_456_000),
        ("2024-05-01T12:00:03.123456+00:00", BASE * 10**9 + 123_456_000),
        ("2024-05-01T12:00:03Z", BASE * 10**9),
        ("2024-05-01T12:00:03", BASE * 10**9),  # dbt < 1.0 wrote naive UTC
        ("2024-05-01 12:00:03.5", BASE * 10**9 + 500_000_000),
        ("2024-05-01T14:00:03.000001+02:00", BASE * 10**9 + 1_000),
        ("2024-05-01T12:00:03.123456789Z", BASE * 10**9 + 123_456_789),
        ("2024-05-01T12:00:03.1234567891Z", BASE * 10**9 + 123_456_789),
    ],
)
def test_exact_nanoseconds(text: str, expected: int) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01"]
)
def test_rejects_what_is_not_a_timestamp(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@given(st.datetimes(min_value=__import__("datetime").datetime(1971, 1, 1)))
def test_agrees_with_the_standard_library_to_the_microsecond(moment: object) -> None:
    text = f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"
    assert parse_timestamp(text) == nanos(text)
    assert format_timestamp(parse_timestamp(text)) == text


def _outcome(parse: object, text: str) -> int | str:
    try:
        return parse(text)  # type: ignore[operator, no-any-return]
    except ValueError:
        return "rejected"


@given(
    st.datetimes(min_value=__import__("datetime").datetime(1971, 1, 1)),
    st.text(alphabet="0123456789 +-_.:Z٣²", min_size=2, max_size=2),
    st.text(alphabet="0123456789 +-_.Z٣", min_size=6, max_size=6),
)
def test_the_fast_path_agrees_with_the_full_parser(moment: object, second: str, micros: str) -> None:
    # Once a second is known, dbt's usual form is converted without the regex: it must give the
    # full parser's answer for every string of that shape, odd seconds and fractions included.
    usual = f"{moment:%Y-%m-%dT%H:%M:}"
    for known in (f"{moment:%S}", second):
        _outcome(parse_timestamp, f"{usual}{known}.000000Z")  # the second is now known, if valid
        for text in (f"{usual}{known}.{micros}Z", f"{usual}{known}.{moment:%f}Z"):
            assert _outcome(parse_timestamp, text) == _outcome(_parse_any, text)
    assert parse_timestamp(f"{usual}{moment:%S.%f}Z") == nanos(f"{usual}{moment:%S.%f}Z")


def test_the_fast_path_refuses_a_leap_second_like_the_full_parser() -> None:
    parse_timestamp("2024-05-01T12:00:00.000000Z")
    for text in ("2024-05-01T12:00:60.000000Z", "2024-05-01T12:00:+1.000000Z", "2024-05-01T12:00:1_.000000Z"):
        with pytest.raises(ValueError):
            parse_timestamp(text)
