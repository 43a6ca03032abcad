"""Defects found in review of the index area, each with the test that showed it."""

from __future__ import annotations

import pytest
from _index_helpers import BACKENDS, Point, index_on

from atdata_lite.schema import parse_semver


@pytest.fixture(params=BACKENDS)
def any_index(request, tmp_path):
    yield from index_on(request.param, request, tmp_path)


@pytest.mark.parametrize(
    "bad",
    [
        "1.0.0\n",  # `$` matches before a trailing newline
        "1\u0661.0.0",  # a non-ASCII digit (ARABIC-INDIC ONE) matched `\d`
        "1234567890.0.0",  # more digits than the SQL backend's semver columns hold
    ],
)
def test_semver_is_strict(bad):
    with pytest.raises(ValueError, match="Invalid semver format"):
        parse_semver(bad)


def test_publish_refuses_version_with_trailing_newline(any_index):
    with pytest.raises(ValueError, match="Invalid semver format"):
        any_index.publish_schema(Point, version="1.0.0\n")
    assert any_index.list_schemas() == []


def test_publish_refuses_version_too_big_for_auto_versioning(any_index):
    # Accepted before on every backend, but the SQL backend's auto-versioning ignored it
    # (next version 1.0.0) while Redis's went on from it: the backends disagreed.
    with pytest.raises(ValueError, match="Invalid semver format"):
        any_index.publish_schema(Point, version="1234567890.0.0")
    assert any_index.publish_schema(Point).endswith("@1.0.0")
