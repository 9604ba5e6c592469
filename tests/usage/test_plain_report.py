"""The DRF-free check of plain reports accepts only what both report serializers accept, alike."""

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from rest_framework import exceptions

from core.api import MAX_BIGINT
from usage.api import UsageReportApi, UsageReportBatchApi
from usage.serializers import MAX_CREDITS, plain_report

FIELDS = ["userId", "apiKeyId", "creditsUsed", "queryType", "eventId"]
FIELD_NAMES = st.sampled_from(FIELDS)
valid_entries = st.fixed_dictionaries(
    {
        "userId": st.integers(min_value=1, max_value=MAX_BIGINT),
        "apiKeyId": st.integers(min_value=1, max_value=MAX_BIGINT),
        "creditsUsed": st.integers(min_value=1, max_value=MAX_CREDITS),
        "queryType": st.from_regex(r"\A[a-z0-9_.-]{1,64}\Z"),
        "eventId": st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"),
    }
)
HOSTILE = [-1, 0, 1, MAX_BIGINT, MAX_BIGINT + 1, 2**64, MAX_CREDITS, MAX_CREDITS + 1, True, False, 1.0, "1", None]
HOSTILE += ["", " standard", "standard\n", "Standard", "a" * 64, "a" * 65, "x" * 128, "x" * 129, "x\x00", "a b"]
HOSTILE += [{"rows": 1}, [], "2026-11-21T10:00:00Z"]
hostile = st.one_of(st.sampled_from(HOSTILE), st.integers(), st.text(max_size=5))
changed_entries = st.builds(
    lambda entry, name, value: {**entry, name: value},
    valid_entries,
    st.sampled_from([*FIELDS, "metadata", "occurredAt", "extra"]),
    hostile,
)
entries = st.one_of(
    valid_entries,
    changed_entries,
    changed_entries,
    st.builds(lambda entry, name: {k: v for k, v in entry.items() if k != name}, valid_entries, FIELD_NAMES),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=3),
)


SERIALIZERS = [UsageReportApi.InputSerializer, UsageReportBatchApi.EventSerializer]


def serializer_answers(entry):
    """What the single report's and the batch event's serializers make of `entry` (None: invalid)."""
    answers = []
    for serializer_class in SERIALIZERS:
        try:
            answers.append(dict(serializer_class().run_validation(entry)))
        except exceptions.ValidationError:
            answers.append(None)
    return answers


@settings(max_examples=2000, deadline=None)
@given(entries)
def test_a_plain_report_is_what_the_serializers_make_of_it(entry):
    plain = plain_report(entry)
    event(f"plain check: {'accepted' if plain is not None else 'left to the serializers'}")
    if plain is not None:
        assert serializer_answers(entry) == [plain, plain]


@pytest.mark.parametrize("name", [*FIELDS, "metadata", "occurredAt", "extra"])
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_each_field_at_its_edges(name, value):
    entry = {"userId": 7, "apiKeyId": 9, "creditsUsed": 5, "queryType": "standard", "eventId": "evt-1", name: value}
    plain = plain_report(entry)
    if plain is not None:
        assert serializer_answers(entry) == [plain, plain]


def test_the_common_report_takes_the_plain_check():
    entry = {"userId": 7, "apiKeyId": 9, "creditsUsed": 5, "queryType": "standard", "eventId": "evt-1"}
    assert plain_report(entry) == entry
    assert serializer_answers(entry) == [entry, entry]
    assert plain_report({**entry, "metadata": None}) is None  # left to the serializers
    assert plain_report({**entry, "creditsUsed": True}) is None
    assert plain_report({**entry, "queryType": "standard\n"}) is None
    without_event_id = {k: v for k, v in entry.items() if k != "eventId"}
    assert plain_report(without_event_id) is None  # a single report may leave it out
