"""The ``phone_normalize`` transformer, on Google's libphonenumber metadata.

A number that cannot be understood as a possible phone number is returned *cleaned* (only
digits and a leading ``+`` kept) rather than raising: the value then reaches the Daktela
payload visibly, the mapped-asset checks and Daktela's own validation report it, and the
other fields of the record still sync. A value with no digits at all passes through unchanged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import phonenumbers
from phonenumbers import PhoneNumberFormat

from crmsync_pipelines.mapping.transformers.params import (
    CompiledTransformer,
    TransformerParamError,
    check_keys,
    get_choice,
    get_str,
)

if TYPE_CHECKING:
    from crmsync_pipelines.mapping.transformers.registry import TransformerRegistry

_FORMATS = {
    "e164": PhoneNumberFormat.E164,
    "international": PhoneNumberFormat.INTERNATIONAL,
    "national": PhoneNumberFormat.NATIONAL,
}
_NOT_DIALABLE = re.compile(r"[^\d+]")


def _clean(text: str) -> str:
    digits = _NOT_DIALABLE.sub("", text)
    return ("+" if digits.startswith("+") else "") + digits.replace("+", "")


def phone_normalize(params: dict[str, Any], registry: TransformerRegistry) -> CompiledTransformer:
    check_keys(params, ("default_region", "format"))
    region = get_str(params, "default_region", "CZ", allow_empty=False).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise TransformerParamError(f"unknown region {region!r} (use an ISO 3166 code like CZ)", "default_region")
    number_format = _FORMATS[get_choice(params, "format", "e164", tuple(_FORMATS))]

    def one(value: Any) -> Any:
        if value is None or value == "" or isinstance(value, bool):
            return value
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a phone number string, got {type(value).__name__}")
        cleaned = _clean(value)
        if not any(char.isdigit() for char in cleaned):
            return value
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return cleaned
        if not phonenumbers.is_possible_number(parsed):
            return cleaned
        return phonenumbers.format_number(parsed, number_format)

    def run(value: Any) -> Any:
        if isinstance(value, list):
            return [one(item) for item in value]
        return one(value)

    return run
