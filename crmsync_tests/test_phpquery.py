"""The PHP bracket parser shared by the simulator and the webhook receiver: PHP's semantics,
linear cost, no recursion, and the caps the receiver uses."""

from __future__ import annotations

import pytest

from crmsync_pipelines.phpquery import QueryLimitError, parse_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a[]=1&a[]=2", {"a": ["1", "2"]}),
        ("a[5]=x&a[]=y", {"a": ["x", "y"]}),  # the next index after 5 is 6
        ("a[5]=x&a[2]=z&a[]=y", {"a": ["z", "x", "y"]}),  # all-index dicts become lists sorted by index
        ("a[x]=1&a[]=2", {"a": {"x": "1", "0": "2"}}),
        ("a[x][]=1&a[x]=v&a[y][]=2", {"a": {"x": "v", "y": ["2"]}}),  # overwrite, then a fresh list
        ("a[]=1&a=2", {"a": "2"}),
        ("a=2&a[]=1", {"a": ["1"]}),
        ("0=a&1=b", {"0": "a", "1": "b"}),  # the top level stays a dict, like $_POST
        ("a[²]=1", {"a": {"²": "1"}}),  # a Unicode digit is not an index (int() would fail)
        ("a[99999999999999999999]=1", {"a": {"99999999999999999999": "1"}}),  # beyond PHP_INT_MAX
        ("a[9223372036854775807]=1", {"a": ["1"]}),
        ("a[b]c=1", {"a[b]c": "1"}),
        ("a[b]x[c]=1", {"a": {"b": "1"}}),  # PHP ignores what follows a closing bracket
        ("[x]=1", {"[x]": "1"}),
        ("&&a=1&", {"a": "1"}),
        ("a=1=2", {"a": "1=2"}),
        ("a%5Bb%5D=%C5%BE+x", {"a": {"b": "ž x"}}),
    ],
)
def test_php_semantics(query: str, expected: dict[str, object]) -> None:
    assert parse_query(query) == expected


def test_40000_appended_fields_parse_in_order() -> None:
    # Quadratic before (97 s for a 240 KB webhook body); one pass now.
    assert parse_query("&".join(["a[]=1"] * 40_000)) == {"a": ["1"] * 40_000}


def test_deep_keys_without_a_cap_do_not_recurse() -> None:
    result = parse_query("a" + "[b]" * 3000 + "=1")
    node = result["a"]
    for _ in range(2999):
        node = node["b"]
    assert node == {"b": "1"}


def test_field_cap() -> None:
    assert parse_query("&".join(["a[]=1"] * 10), max_fields=10) == {"a": ["1"] * 10}
    with pytest.raises(QueryLimitError) as info:
        parse_query("&".join(["a[]=1"] * 11), max_fields=10)
    assert (info.value.limit, str(info.value)) == ("fields", "more than 10 form fields (11)")


def test_depth_cap_counts_the_base_name_as_level_one() -> None:
    assert parse_query("a[b][c]=1", max_depth=3) == {"a": {"b": {"c": "1"}}}
    with pytest.raises(QueryLimitError) as info:
        parse_query("a[b][c][d]=1", max_depth=3)
    assert (info.value.limit, str(info.value)) == ("depth", "form key nested deeper than 3 levels")


def test_empty_pairs_do_not_count_as_fields() -> None:
    assert parse_query("a=1&&&&b=2", max_fields=2) == {"a": "1", "b": "2"}


def test_bytes_that_are_not_utf8_are_replaced_or_refused() -> None:
    assert parse_query("a=%FF") == {"a": "\ufffd"}  # the simulator's lenient default
    with pytest.raises(UnicodeDecodeError):
        parse_query("a=%FF", errors="strict")
    assert parse_query("a=%C5%BE", errors="strict") == {"a": "ž"}
