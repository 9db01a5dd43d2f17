"""The ``phone_normalize`` transformer: CRM phone text -> E.164 (or another format), or refused.

How a value is read is ``phonetext.PhoneReader``'s job (libphonenumber's ``is_valid_number``,
candidate interpretations, extensions, several numbers per value). This module binds the
params, accepts the value types CRM exports produce (text, whole ints, integral floats and
``Decimal``s from spreadsheets) and applies the ``on_invalid`` policy (``refusals``) to a
value that is not a valid number.

Params (checked at load time):

- ``default_region`` (``CZ``): the region of numbers written without a country code.
- ``regions`` (none): other regions a national number may belong to, tried after the
  default region and after "the digits start with a country code" (``[SK]`` for a CZ+SK
  contact centre). A list or a comma-separated string.
- ``format`` (``e164``): ``e164`` | ``international`` | ``national``; ``national`` writes
  only numbers of ``default_region``'s country nationally, others internationally (a
  national number of another country dials a different line at home).
- ``extension`` (``drop``): ``drop`` | ``keep``; ``keep`` needs the ``international`` or
  ``national`` format (E.164 has no extension) and renders `` ext. 12``.
- ``multiple`` (``list``): several numbers in one value become a list, or (``fail``) are
  refused as invalid.
- ``on_invalid`` (``fail``): ``fail`` | ``keep`` | ``drop``, see ``refusals``.

Parsed results are cached per raw text (``functools.lru_cache``): the same number in many
records, or in every run of a long-lived process, is parsed once.
"""

from __future__ import annotations

import functools
import math
import numbers
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import phonenumbers
from phonenumbers import PhoneNumberFormat

from crmsync_pipelines.mapping.refusals import NOTES_REFUSALS, on_invalid_param, quote, refuse
from crmsync_pipelines.mapping.transformers.params import (
    CompiledTransformer,
    TransformerParamError,
    check_keys,
    get_choice,
    get_str,
)
from crmsync_pipelines.mapping.transformers.phonetext import PhoneReader

if TYPE_CHECKING:
    from crmsync_pipelines.mapping.transformers.registry import TransformerRegistry

_FORMATS = {
    "e164": PhoneNumberFormat.E164,
    "international": PhoneNumberFormat.INTERNATIONAL,
    "national": PhoneNumberFormat.NATIONAL,
}
_PARAMS = ("default_region", "regions", "format", "extension", "multiple", "on_invalid")
#: Distinct raw texts remembered per rule (a few MB at most).
CACHE_SIZE = 16_384
_END = object()


def _region(code: Any, param: str) -> str:
    if not isinstance(code, str) or code.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise TransformerParamError(f"unknown region {code!r} (use an ISO 3166 code like CZ)", param)
    return code.strip().upper()


def _regions(params: dict[str, Any]) -> tuple[str, ...]:
    raw = params.get("regions")
    if raw is None or raw == "":
        return ()
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise TransformerParamError("param 'regions' must be a list of region codes like [SK]", "regions")
    return tuple(_region(item, "regions") for item in items)


def _as_text(value: Any) -> str | None:
    """Text of a ``str`` subclass, whole numbers as digits; None for what cannot be a phone number.

    Numbers are read by their ABCs (``numbers.Integral``/``numbers.Real``), so NumPy's
    ``int64``/``float64`` from a pandas-based adapter read like Python's own.
    """
    if isinstance(value, str):
        return str(value)  # np.str_ and other str subclasses are text
    if _is_bool(value):
        return None
    if isinstance(value, numbers.Integral):
        whole = int(value)
        return str(whole) if whole > 0 else None
    if isinstance(value, Decimal):
        return str(int(value)) if value.is_finite() and value == value.to_integral_value() and value > 0 else None
    if isinstance(value, (float, Fraction)):  # a float64 holds 15 digits exactly; a float32 does not
        real = float(value)
        return str(int(real)) if math.isfinite(real) and real.is_integer() and real > 0 else None
    return None


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or (getattr(value, "dtype", None) is not None and value.dtype == bool)


def _refusal_reason(value: Any) -> str:
    """Why a non-text value that ``_as_text`` could not read is no phone number."""
    if not _is_bool(value):
        if isinstance(value, numbers.Real) and not isinstance(value, (float, Fraction, numbers.Integral)):
            return (
                f"{quote(value)} is a {type(value).__name__}, too imprecise to hold a phone number's digits "
                "exactly (a float32 rounds 603123457 to 603123456)"
            )
        if isinstance(value, (numbers.Real, Decimal)):
            return f"{quote(value)} is not a whole positive number, so not a phone number"
    return f"{quote(value)} is not a phone number (a {type(value).__name__}, not text)"


def phone_normalize(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    check_keys(params, _PARAMS)
    region = _region(get_str(params, "default_region", "CZ", allow_empty=False), "default_region")
    reader = PhoneReader(region, _regions(params))
    format_name = get_choice(params, "format", "e164", tuple(_FORMATS))
    number_format = _FORMATS[format_name]
    keep_extension = get_choice(params, "extension", "drop", ("drop", "keep")) == "keep"
    if keep_extension and format_name == "e164":
        raise TransformerParamError(
            "extension: keep needs format international or national (E.164 has no extension)", "extension"
        )
    several_as_list = get_choice(params, "multiple", "list", ("list", "fail")) == "list"
    policy = on_invalid_param(params)
    home_code = phonenumbers.country_code_for_region(region)

    def formatted(number: phonenumbers.PhoneNumber) -> str:
        # A national format drops the country: "+421 905 123 456" as "0905 123 456" dials a
        # Czech premium line from CZ. Only numbers of default_region's country are national.
        if number_format == PhoneNumberFormat.NATIONAL and number.country_code != home_code:
            return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        return phonenumbers.format_number(number, number_format)

    @functools.lru_cache(maxsize=CACHE_SIZE)
    def read(text: str) -> tuple[str, ...] | str:
        """The formatted numbers in ``text``, or the reason it is refused."""
        reading = reader.read(text)
        if reading.problem is not None:
            return f"{quote(text)} {reading.problem}"
        found: dict[str, None] = {}
        for number in reading.numbers:
            if not keep_extension:
                number.extension = None
            found.setdefault(formatted(number), None)
        if len(found) > 1 and not several_as_list:  # the same number twice is one number
            return f"{quote(text)} holds several phone numbers"
        return tuple(found)

    def one(value: Any) -> Any:
        if value is None or value == "":
            return value
        if type(value) is not str:
            text = _as_text(value)
            if text is None:
                return refuse(value, _refusal_reason(value), policy)
        else:
            text = value
            if text.isspace():
                return ""
        result = read(text)
        if type(result) is str:
            return refuse(value, result, policy)
        return result[0] if len(result) == 1 else list(result)

    def run(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            out: list[Any] = []
            pending: list[Any] = [iter(value)]  # nested lists are flattened, without recursion
            while pending:
                item = next(pending[-1], _END)
                if item is _END:
                    pending.pop()
                elif isinstance(item, (list, tuple)):
                    pending.append(iter(item))
                else:
                    converted = one(item)
                    if isinstance(converted, list):
                        out.extend(converted)
                    elif converted is not None or item is None:
                        out.append(converted)
            return out
        return one(value)

    setattr(run, NOTES_REFUSALS, policy != "fail")  # keep/drop notes refusals for the mapper to count
    return run
