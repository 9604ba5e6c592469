"""core.db.pg_array: Python values as one PostgreSQL array literal, read back as they were."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.db import fetchone_prepared, pg_array

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_ints_strings_and_timestamps_read_back_unchanged():
    ints = [1, -7, 2**63 - 1, None]
    texts = ["plain", 'with "quotes"', "back\\slash", "comma,brace}{", "NULL", "", " spaced ", "é", None]
    moments = [
        datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 21, 12, 0, tzinfo=timezone(timedelta(hours=2))),
    ]

    row = fetchone_prepared(
        "SELECT %s::bigint[], %s::text[], %s::timestamptz[]", [pg_array(ints), pg_array(texts), pg_array(moments)]
    )

    assert row == (ints, texts, moments)


def test_an_empty_list_is_an_empty_array():
    assert fetchone_prepared("SELECT %s::bigint[]", [pg_array([])]) == ([],)


def test_other_types_are_refused():
    with pytest.raises(TypeError):
        pg_array([True])
    with pytest.raises(TypeError):
        pg_array([1.5])
