"""``phone_normalize``: valid numbers only, every reading of real CRM text right or visibly refused.

Issue 9 section 1's examples first (default region CZ), then more inputs of each kind.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping import (
    FieldMapper,
    RecordMappingError,
    Refusal,
    RefusedValueError,
    TransformerRegistry,
    mapping_from_dict,
)

REGISTRY = TransformerRegistry.with_defaults()
CZ: dict[str, Any] = {}
CZ_SK: dict[str, Any] = {"regions": ["SK"]}


def phone(value: Any, **params: Any) -> Any:
    return REGISTRY.compile("phone_normalize", params)(value)


# -- issue 9, section 1: every example, the right value ---------------------------------------


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        ("+420 (0) 601 234 567", CZ, "+420601234567"),
        ("421 905 123 456", CZ, "+421905123456"),  # a country code written without + or 00
        ("0905 123 456", CZ_SK, "+421905123456"),  # a Slovak national number, SK allowed
        ("603456789.0", CZ, "+420603456789"),  # text from a spreadsheet
        (603456789.0, CZ, "+420603456789"),  # a float from a spreadsheet import
        ("+420 602 345 678 ext. 12", CZ, "+420602345678"),
        ("604 567 890 kl. 12", CZ, "+420604567890"),
        ("+420 602 345 678 ext. 12", {"format": "international", "extension": "keep"}, "+420 602 345 678 ext. 12"),
        ("604 567 890 kl. 12", {"format": "international", "extension": "keep"}, "+420 604 567 890 ext. 12"),
        ("+420601123456, +420602123456", CZ, ["+420601123456", "+420602123456"]),
    ],
)
def test_issue_examples(value: Any, params: dict[str, Any], expected: Any) -> None:
    assert phone(value, **params) == expected


@pytest.mark.parametrize(
    ("value", "params", "message"),
    [
        # CZ numbers have no trunk 0: '0601 234 567' is no Czech number; never +4200601234567
        ("0601 234 567", CZ, "'0601 234 567' is not a valid phone number in CZ"),
        # a Slovak national number under CZ alone; never +4200905123456 (+420905… is a CZ premium line)
        ("0905 123 456", CZ, "'0905 123 456' is not a valid phone number in CZ"),
        ("+420601123456, +420602123456", {"multiple": "fail"}, "holds several phone numbers"),
    ],
)
def test_issue_refusals(value: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(RefusedValueError, match=message) as info:
        phone(value, **params)
    assert info.value.raw == value


@pytest.mark.parametrize(
    ("value", "slovak", "czech"),
    [
        ("0601 234 567", "+421601234567", "+420601234567"),
        ("0601-123-456", "+421601123456", "+420601123456"),
        ("0601 512 345", "+421601512345", "+420601512345"),
    ],
)
def test_a_czech_mobile_written_with_a_trunk_zero_is_not_guessed_slovak(value: str, slovak: str, czech: str) -> None:
    # 0601 1xx-5xx xxx is a Slovak landline range, and 601 … a Czech mobile range: with SK
    # allowed the text reads both ways, so it is refused naming both readings, never guessed.
    with pytest.raises(RefusedValueError, match="is ambiguous") as info:
        phone(value, **CZ_SK)
    assert slovak in str(info.value) and czech in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0905 123 456", "+421905123456"),  # SK mobile; +420905… would be a CZ premium line, not a mobile
        ("02 2345 6789", "+421223456789"),  # Bratislava landline; 223 456 789 is a Prague landline, not a mobile
        ("0915 987 654", "+421915987654"),
    ],
)
def test_slovak_national_numbers_stay_slovak_when_sk_is_allowed(value: str, expected: str) -> None:
    assert phone(value, **CZ_SK) == expected


# -- more inputs of each kind -------------------------------------------------------------------

VALID: list[tuple[Any, dict[str, Any], Any]] = [
    # Czech mobiles and landlines in every common layout
    ("603 123 456", CZ, "+420603123456"),
    ("737 123 456", CZ, "+420737123456"),
    ("777-123-456", CZ, "+420777123456"),
    ("720123456", CZ, "+420720123456"),
    ("799.123.456", CZ, "+420799123456"),
    ("603/123456", CZ, "+420603123456"),
    ("737\u00a0123\u00a0456", CZ, "+420737123456"),  # no-break spaces
    ("(601) 234-567", CZ, "+420601234567"),
    ("224 123 456", CZ, "+420224123456"),  # Prague landline
    ("542 123 456", CZ, "+420542123456"),  # Brno landline
    ("800 123 456", CZ, "+420800123456"),  # toll free
    ("+420 900 123 456", CZ, "+420900123456"),  # premium rate is a valid number
    # international forms
    ("+420 737 123 456", CZ, "+420737123456"),
    ("+420.737.123.456", CZ, "+420737123456"),
    ("00420 737 123 456", CZ, "+420737123456"),
    ("00420 601-234-567", CZ, "+420601234567"),
    ("(+420) 737 123 456", CZ, "+420737123456"),
    ("(00421) 915 123 456", CZ, "+421915123456"),
    ("+44 (0) 20 7946 0958", CZ, "+442079460958"),
    ("420 737 123 456", CZ, "+420737123456"),
    # Slovak numbers
    ("+421 905 123 456", CZ, "+421905123456"),  # explicit country code: no region needed
    ("00421915123456", CZ, "+421915123456"),
    ("421915123456", CZ, "+421915123456"),
    ("0915 123 456", CZ_SK, "+421915123456"),
    ("0905/123 456", CZ_SK, "+421905123456"),
    ("02/5443 1234", CZ_SK, "+421254431234"),  # Bratislava landline
    ("+421 2 5443 1234", CZ, "+421254431234"),
    ("603 123 456", CZ_SK, "+420603123456"),  # the default region wins over SK
    ("0905 123 456", {"default_region": "SK"}, "+421905123456"),
    ("+420 603 123 456", {"default_region": "sk"}, "+420603123456"),
    ("0905 123 456", {"regions": "SK, AT"}, "+421905123456"),  # comma-separated regions
    # other countries, written internationally
    ("+49 30 123456", CZ, "+4930123456"),
    ("0049 30 1234567", CZ, "+49301234567"),
    ("1 202 555 0123", CZ, "+12025550123"),
    # labels around the number are not part of it
    ("tel. 737 123 456", CZ, "+420737123456"),
    ("Mobil: 737 123 456", CZ, "+420737123456"),
    ("tel.: +420 603 123 456 (mobil)", CZ, "+420603123456"),
    ("737 123 456 (soukromý)", CZ, "+420737123456"),
    # extensions, dropped by default
    ("737123456 ext 5", CZ, "+420737123456"),
    ("737123456 extension 55", CZ, "+420737123456"),
    ("737 123 456 linka 3", CZ, "+420737123456"),
    ("737 123 456 klapka 210", CZ, "+420737123456"),
    ("737 123 456 x 7", CZ, "+420737123456"),
    ("604567890x12", CZ, "+420604567890"),
    ("604 567 890 #12", CZ, "+420604567890"),
    ("603123456;ext=12", CZ, "+420603123456"),
    ("604 567 890, kl. 12", CZ, "+420604567890"),
    ("737123456#99", {"format": "national", "extension": "keep"}, "737 123 456 ext. 99"),
    # whole numbers from spreadsheets and databases
    (737123456, CZ, "+420737123456"),
    (420737123456, CZ, "+420737123456"),
    (737123456.0, CZ, "+420737123456"),
    ("737123456.00", CZ, "+420737123456"),
    ("603456789,0", CZ, "+420603456789"),
    (Decimal("737123456"), CZ, "+420737123456"),
    (Decimal("603456789.00"), CZ, "+420603456789"),
    # several numbers in one value: a list (duplicates once)
    ("737 123 456; 604 567 890", CZ, ["+420737123456", "+420604567890"]),
    ("737 123 456 | 604 567 890", CZ, ["+420737123456", "+420604567890"]),
    ("737 123 456\n604 567 890", CZ, ["+420737123456", "+420604567890"]),
    ("603 123 456 / 604 567 890", CZ, ["+420603123456", "+420604567890"]),
    ("+420 737 123 456 / +421 915 123 456", CZ, ["+420737123456", "+421915123456"]),
    ("603 123 456, 603123456", CZ, "+420603123456"),
    # formats
    ("603123456", {"format": "international"}, "+420 603 123 456"),
    ("+420603123456", {"format": "national"}, "603 123 456"),
    # lists are normalized element by element, several numbers in an element are flattened
    (["603 123 456", "", None, "+421 905 123 456"], CZ, ["+420603123456", "", None, "+421905123456"]),
    (["603 123 456, 604 567 890", "737 123 456"], CZ, ["+420603123456", "+420604567890", "+420737123456"]),
    (("603 123 456",), CZ, ["+420603123456"]),
    # more layouts seen in exports
    ("00 420 603 123 456", CZ, "+420603123456"),
    ("+420 603 123 456.", CZ, "+420603123456"),
    ("603 12 34 56", CZ, "+420603123456"),
    ("(603) 123 456", CZ, "+420603123456"),
    ("\u200e+420 603 123 456", CZ, "+420603123456"),  # a direction mark pasted from a mail client
    ("\uff16\uff10\uff13\uff11\uff12\uff13\uff14\uff15\uff16", CZ, "+420603123456"),  # full-width digits
    ("+420 603 123 456\t", CZ, "+420603123456"),
    ("+420 603 123 456 ext", CZ, "+420603123456"),  # a marker without digits is a label
    ("+1 (202) 555-0123 ext. 5", CZ, "+12025550123"),
    ("tel 603123456, fax 604567890", CZ, ["+420603123456", "+420604567890"]),
    ("+420 603 123 456 / +420 603 123 456", CZ, "+420603123456"),
    # empty values
    (None, CZ, None),
    ("", CZ, ""),
    ("   ", CZ, ""),
    ([], CZ, []),
]


@pytest.mark.parametrize(("value", "params", "expected"), VALID)
def test_valid_numbers(value: Any, params: dict[str, Any], expected: Any) -> None:
    assert phone(value, **params) == expected


REFUSED: list[tuple[Any, dict[str, Any], str]] = [
    # invalid numbers: never cleaned into a plausible-looking string
    ("0737 123 456", CZ_SK, "'0737 123 456' is not a valid phone number in CZ or SK"),
    ("02/5443 1234", CZ, "'02/5443 1234' is not a valid phone number in CZ"),
    ("737 123 45", CZ, "is not a valid phone number in CZ"),  # too short
    ("7371234567", CZ, "is not a valid phone number in CZ"),  # too long
    ("737123456737123456", CZ, "is not a valid phone number in CZ"),  # two numbers run together
    ("+420 737 123 45", CZ, "'+420 737 123 45' is not a valid phone number"),
    ("+420 123 456 789", CZ, "is not a valid phone number"),  # unassigned range
    ("+420 12-3", CZ, "is not a valid phone number"),
    ("12", CZ, "'12' is not a valid phone number in CZ"),
    ("0", CZ, "is not a valid phone number in CZ"),
    ("++420737123456", CZ, "has letters or symbols inside the number"),
    ("+420603123456+420604567890", CZ, "has letters or symbols inside the number"),
    ("603123456 603123456", CZ, "is not a valid phone number in CZ"),  # never split on spaces
    ("0 603 123 456", CZ_SK, "is not a valid phone number in CZ or SK"),
    ("603 123 456 (0)", CZ, "is not a valid phone number in CZ"),
    ("9" * 300, CZ, "is not a valid phone number in CZ"),
    ("ext. 12", CZ, "'ext. 12' is not a valid phone number in CZ"),
    # letters inside the number are never converted to digits
    ("737 12A 456", CZ, "'737 12A 456' has letters or symbols inside the number"),
    ("1-800-FLOWERS", CZ, "is not a valid phone number in CZ"),
    ("737 123 456 nebo 604 567 890", CZ, "has letters or symbols inside the number"),
    ("7.37123E8", CZ, "is in scientific notation that lost 3 of its digits"),  # a spreadsheet rounded it
    # no digits at all
    ("unknown", CZ, "'unknown' has no digits"),
    ("n/a", CZ, "has no digits"),
    ("-", CZ, "has no digits"),
    ("+", CZ, "has no digits"),
    # one bad number in a list of several refuses the value (no silent partial write)
    ("+420 603 123 456 / 7", CZ, "is not a valid phone number"),
    ("603 123 456, 12", CZ, "'603 123 456, 12' holds '12', which is not a valid phone number in CZ"),
    # types and numbers that cannot be phone numbers
    (737123456.5, CZ, "737123456.5 is not a whole positive number, so not a phone number"),
    (Decimal("603456789.5"), CZ, "is not a whole positive number"),
    (float("nan"), CZ, "is not a whole positive number"),
    (float("inf"), CZ, "is not a whole positive number"),
    (-603123456, CZ, "-603123456 is not a whole positive number"),
    (0, CZ, "0 is not a whole positive number"),
    (True, CZ, "True is not a phone number (a bool, not text)"),
    ({"n": 1}, CZ, "is not a phone number (a dict, not text)"),
]


@pytest.mark.parametrize(("value", "params", "message"), REFUSED)
def test_refused_by_default(value: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(RefusedValueError, match=re.escape(message)):
        phone(value, **params)


@pytest.mark.parametrize(("value", "params", "message"), REFUSED)
def test_keep_writes_the_raw_value_and_drop_writes_null(value: Any, params: dict[str, Any], message: str) -> None:
    kept = phone(value, on_invalid="keep", **params)
    assert kept is value
    assert phone(value, on_invalid="drop", **params) is None


def test_drop_leaves_a_refused_element_out_of_a_list() -> None:
    assert phone(["603 123 456", "12", None], on_invalid="drop") == ["+420603123456", None]
    assert phone(["603 123 456", "12"], on_invalid="keep") == ["+420603123456", "12"]
    with pytest.raises(RefusedValueError, match="'12' is not a valid"):
        phone(["603 123 456", "12"])


def test_results_are_cached_per_raw_text_and_per_rule() -> None:
    cz = REGISTRY.compile("phone_normalize", {})
    sk = REGISTRY.compile("phone_normalize", {"default_region": "SK"})
    for _ in range(3):
        with pytest.raises(RefusedValueError):
            cz("0905 123 456")
        assert sk("0905 123 456") == "+421905123456"
    # cached results are not shared mutable objects
    several = REGISTRY.compile("phone_normalize", {})
    first = several("603 123 456, 604 567 890")
    first.append("mutated")
    assert several("603 123 456, 604 567 890") == ["+420603123456", "+420604567890"]


# -- through the mapper: the record fails naming the field and the raw value --------------------


def _contact_mapping(params: dict[str, Any]) -> Any:
    return mapping_from_dict(
        {
            "entity": "contact",
            "lookup_field": "name",
            "mappings": [
                {"cc_field": "name", "crm_field": "id"},
                {
                    "cc_field": "customFields.number",
                    "crm_field": "phone",
                    "transformers": [{"name": "phone_normalize", "params": params}],
                },
                {"cc_field": "title", "crm_field": "title"},
            ],
        },
        file="contacts.yaml",
    )


def test_a_refused_phone_fails_the_record_naming_field_and_raw_value() -> None:
    with pytest.raises(RecordMappingError) as info:
        FieldMapper().map({"id": "7", "phone": "0905 123 456"}, _contact_mapping({}), "crm_to_cc")
    error = info.value
    assert str(error) == (
        "mappings[1] (phone -> customFields.number): transformer phone_normalize: "
        "'0905 123 456' is not a valid phone number in CZ"
    )
    assert (error.field, error.rule_index, error.record_id, error.refused) == ("customFields.number", 1, "7", True)
    assert error.error_class.value == "validation"


@pytest.mark.parametrize(("policy", "written"), [("keep", ["0905 123 456"]), ("drop", [])])
def test_keep_and_drop_are_reported_to_the_caller(policy: str, written: list[str]) -> None:
    refusals: list[Refusal] = []
    payload = FieldMapper().map(
        {"id": "7", "phone": "0905 123 456", "title": "T"},
        _contact_mapping({"on_invalid": policy}),
        "crm_to_cc",
        refusals=refusals,
    )
    assert payload == {"name": "7", "customFields": {"number": written}, "title": "T"}
    assert refusals == [
        Refusal("customFields.number", "0905 123 456", "'0905 123 456' is not a valid phone number in CZ", policy)  # type: ignore[arg-type]
    ]


def test_refusals_are_not_collected_without_a_list_and_not_shared_between_records() -> None:
    mapper = FieldMapper()
    mapping = _contact_mapping({"on_invalid": "drop"})
    assert mapper.map({"id": "1", "phone": "12"}, mapping, "crm_to_cc")["customFields"] == {"number": []}
    refusals: list[Refusal] = []
    mapper.map({"id": "2", "phone": "603 123 456"}, mapping, "crm_to_cc", refusals=refusals)
    assert refusals == []


def test_the_php_sdk_contact_mapping_still_loads_and_maps() -> None:
    # The PHP SDK's files name neither regions nor on_invalid: they load, and valid numbers map.
    mapping = _contact_mapping({"format": "e164"})
    payload = FieldMapper().map({"id": "1", "phone": "+420 603 123 456"}, mapping, "crm_to_cc")
    assert payload["customFields"] == {"number": ["+420603123456"]}


def test_bad_params_are_load_time_errors() -> None:
    with pytest.raises(ConfigError, match=re.escape("params.regions: phone_normalize: unknown region 'Slovakia'")):
        _contact_mapping({"regions": ["Slovakia"]})


# -- second review: typography, 00 where the IDD differs, a missing trunk 0 ---------------------


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        # Unicode spaces a word processor or a French locale writes between digit groups
        ("603\u2009123\u2009456", CZ, "+420603123456"),  # thin space
        ("603\u202f123\u202f456", CZ, "+420603123456"),  # narrow no-break space
        ("06\u202f12\u202f34\u202f56\u202f78", {"default_region": "FR"}, "+33612345678"),
        ("+420\u2007603\u2007123\u2007456", CZ, "+420603123456"),  # figure space
        # dashes and the minus sign (U+2212) as group separators
        ("603\u2212123\u2212456", CZ, "+420603123456"),
        ("603\u2011123\u2011456", CZ, "+420603123456"),  # non-breaking hyphen
        ("\uff0b420 603 123 456", CZ, "+420603123456"),  # fullwidth plus
        # invisible format characters inside the number
        ("603\u200b123\u200b456", CZ, "+420603123456"),
        ("603\u00ad123\u00ad456", CZ, "+420603123456"),  # soft hyphen
        ("\u202a+420 603 123 456\u202c", CZ, "+420603123456"),  # bidi embedding from an RTL UI
        # 00 is international wherever no national number starts with it (US/RU/AU dial 011/810/0011)
        ("00 420 603 123 456", {"default_region": "US"}, "+420603123456"),
        ("0033 6 12 34 56 78", {"default_region": "US"}, "+33612345678"),
        ("0049 30 1234567", {"default_region": "AU"}, "+49301234567"),
        ("011 420 603 123 456", {"default_region": "US"}, "+420603123456"),  # the region's own IDD still works
        ("0011 420 603 123 456", {"default_region": "AU"}, "+420603123456"),
        # a national number written with its trunk 0 is never confused with a country code
        ("0420 603 123 45", {"default_region": "DE"}, "+494206031234" + "5"),
        ("030 1234567", {"default_region": "DE"}, "+49301234567"),
        ("0905 123 456", {"default_region": "SK"}, "+421905123456"),
        ("905 123 456", {"default_region": "SK"}, "+421905123456"),  # no country-code reading is valid
        ("202 555 0123", {"default_region": "US"}, "+12025550123"),  # US trunk is 1, not 0: unaffected
    ],
)
def test_more_ways_of_writing_a_valid_number(value: str, params: dict[str, Any], expected: str) -> None:
    assert phone(value, **params) == expected


@pytest.mark.parametrize(
    ("value", "params", "message"),
    [
        # in DE national numbers carry a trunk 0; without it these digits are also a Czech number
        (
            "420603123456",
            {"default_region": "DE"},
            "'420603123456' is ambiguous: +49420603123456 (DE written without its trunk 0) or "
            "+420603123456 (CZ with its country code)",
        ),
        (
            "421 905 123 456",
            {"default_region": "DE"},
            "'421 905 123 456' is ambiguous: +49421905123456 (DE written without its trunk 0) or "
            "+421905123456 (SK with its country code)",
        ),
        ("603\u2009123\u2009456\u20097", CZ, "'603\\u2009123\\u2009456\\u20097' is not a valid phone number in CZ"),
        ("0000 420 603 123 456", {"default_region": "US"}, "'0000 420 603 123 456' is not a valid phone number"),
    ],
)
def test_readings_that_stay_refused(value: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(RefusedValueError) as caught:
        phone(value, **params)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        ("603 123 456", {}, "603 123 456"),  # a number of default_region's country: national
        # another country's number keeps its country code: "0905 123 456" dials a Czech
        # premium line from CZ, "020 7946 0958" nothing at all
        ("+421 905 123 456", {}, "+421 905 123 456"),
        ("0905 123 456", {"regions": ["SK"]}, "+421 905 123 456"),
        ("+44 20 7946 0958", {}, "+44 20 7946 0958"),
        ("+420 603 123 456", {"default_region": "US"}, "+420 603 123 456"),
        ("+1 416 555 0123", {"default_region": "US"}, "(416) 555-0123"),  # Canada shares +1 with the US
        ("+421 905 123 456 ext. 7", {"extension": "keep"}, "+421 905 123 456 ext. 7"),
    ],
)
def test_national_format_writes_only_home_numbers_nationally(value: str, params: dict[str, Any], expected: str) -> None:
    assert phone(value, format="national", **params) == expected


def test_the_same_number_twice_is_one_number_even_for_a_single_valued_target() -> None:
    assert phone("603 123 456, +420 603 123 456", multiple="fail") == "+420603123456"
    with pytest.raises(RefusedValueError, match="holds several phone numbers"):
        phone("603 123 456, 604 567 890", multiple="fail")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["603123456", ["604567890"]], ["+420603123456", "+420604567890"]),  # was refused: 'a list, not text'
        ([["603123456"]], ["+420603123456"]),
        ((("603 123 456", ("604 567 890, 605 123 456")),), ["+420603123456", "+420604567890", "+420605123456"]),
        ([[], ["603123456", None]], ["+420603123456", None]),
    ],
)
def test_lists_inside_lists_are_flattened(value: Any, expected: list[Any]) -> None:
    assert phone(value) == expected


def test_a_deeply_nested_list_is_no_recursion_error() -> None:
    value: Any = "603123456"
    for _ in range(5_000):
        value = [value]
    assert phone(value) == ["+420603123456"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\r\n"])
def test_unicode_line_separators_separate_numbers_like_a_new_line(separator: str) -> None:
    # a rich-text CRM field stores line breaks as U+2028; the whole was refused as one invalid number
    assert phone(f"603 123 456{separator}604 567 890") == ["+420603123456", "+420604567890"]


def test_numpy_values_from_a_pandas_based_adapter() -> None:
    np = pytest.importorskip("numpy")
    # np.int64 / np.str_ were refused as 'a int64, not text'; a float32 cannot hold the digits
    assert phone(np.int64(603123456)) == "+420603123456"
    assert phone(np.uint64(420603123456)) == "+420603123456"
    assert phone(np.float64(603123456.0)) == "+420603123456"
    assert phone(np.str_("603 123 456")) == "+420603123456"
    assert phone([np.int32(603123456), np.str_("604 567 890")]) == ["+420603123456", "+420604567890"]
    with pytest.raises(RefusedValueError, match=re.escape("is a float32, too imprecise to hold a phone number's")):
        phone(np.float32(603123457.0))  # rounds to 603123456: a different, valid number
    with pytest.raises(RefusedValueError, match=re.escape("np.True_ is not a phone number (a bool, not text)")):
        phone(np.bool_(True))
    with pytest.raises(RefusedValueError, match=re.escape("is not a whole positive number")):
        phone(np.int64(-5))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6.03123456E+08", "+420603123456"),  # a spreadsheet's scientific notation that kept every digit
        ("6,03123456E+08", "+420603123456"),  # decimal comma (a Czech Excel)
        ("7.37123456e8", "+420737123456"),
        ("4.20603123456E+11", "+420603123456"),  # the country code is in the digits
    ],
)
def test_scientific_notation_with_every_digit_is_that_number(value: str, expected: str) -> None:
    assert phone(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("6.03123E+08", "'6.03123E+08' is in scientific notation that lost 3 of its digits (a spreadsheet rounded it)"),
        ("6.031234567E+08", "'6.031234567E+08' is in scientific notation with a fraction, so not a whole number"),
    ],
)
def test_scientific_notation_that_lost_digits_is_refused_not_padded(value: str, message: str) -> None:
    with pytest.raises(RefusedValueError, match=re.escape(message)):  # 603123000 would be someone else
        phone(value)
