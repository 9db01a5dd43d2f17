"""Canonical JSON (``staging.store.dumps``): the same payload always gives the same text, so the
same hash (``raw_hash``, ``payload_hash``); the shared encoder must not leak state between calls."""

from __future__ import annotations

import datetime
import decimal

import pytest

from crmsync_pipelines.staging.store import dumps


def test_keys_sorted_compact_and_non_ascii_kept() -> None:
    assert dumps({"b": 1, "a": [1, {"z": None, "y": "Žluť"}]}) == '{"a":[1,{"y":"Žluť","z":null}],"b":1}'
    assert dumps({"a": 1, "b": 2}) == dumps({"b": 2, "a": 1})


def test_values_json_cannot_hold_are_written_as_their_text() -> None:
    value = {"d": datetime.date(2026, 11, 30), "n": decimal.Decimal("1.50")}
    assert dumps(value) == '{"d":"2026-11-30","n":"1.50"}'


def test_a_failed_call_leaves_the_next_one_unharmed() -> None:
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        dumps({"x": circular})
    assert dumps({"x": [1, 2]}) == '{"x":[1,2]}'
    assert dumps("plain") == '"plain"' and dumps(None) == "null" and dumps([]) == "[]"
