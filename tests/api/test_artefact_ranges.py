"""Ranges of stored artefacts: the Range header read as RFC 9110 says, and served from S3-compatible storage as
from a local file (a browser seeks in an incident's clip with them)."""

from __future__ import annotations

import pytest

from watchkeeper.api.artefact_files import UNSATISFIABLE, requested_range


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-99", (0, 99)),
    ("bytes=100-", (100, 999)),
    ("bytes=-100", (900, 999)),  # the last 100
    ("bytes=-5000", (0, 999)),  # more than there is: all of it
    ("bytes=990-5000", (990, 999)),  # past the end: up to it
    ("BYTES=5-5", (5, 5)),
    ("bytes=1000-", UNSATISFIABLE),
    ("bytes=-0", UNSATISFIABLE),
    ("bytes=0-1,5-6", None),  # several ranges: the whole object instead
    ("bytes=9-3", None),  # malformed: ignored
    ("items=0-5", None),
    ("bytes=-", None),
    ("bytes=a-b", None),
])
def test_a_range_header_asks_for_one_span_of_bytes_or_is_ignored(header, expected):
    assert requested_range(header, 1000) == expected


def test_nothing_of_an_empty_object_can_be_asked_for():
    assert requested_range("bytes=0-", 0) is UNSATISFIABLE and requested_range("bytes=-1", 0) is UNSATISFIABLE
