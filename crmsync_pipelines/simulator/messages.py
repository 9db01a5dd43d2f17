"""Localised error messages and the API error type.

Real instances answer in the instance language; clients must never match on the text, and
running tests in Czech proves they do not.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "required": "Entry is required",
        "fk": "Foreign key error",
        "email": "E-mail is not valid",
        "duplicate": "Record with this name already exists",
        "not_found": "Object not exist",
        "unauthorized": "Unauthorized",
        "forbidden": "Forbidden",
        "bad_value": "Invalid value",
        "not_array": "Value must be an array",
        "unknown_model": "Unknown model",
        "bad_login": "Invalid username or password",
        "rate_limited": "Too many requests",
        "bad_body": "Request body must be a JSON object",
    },
    "cs": {
        "required": "Vstup je povinný",
        "fk": "Chyba cizího klíče",
        "email": "E-mail není ve správném formátu",
        "duplicate": "Záznam s tímto názvem již existuje",
        "not_found": "Objekt neexistuje",
        "unauthorized": "Neautorizovaný přístup",
        "forbidden": "Přístup odepřen",
        "bad_value": "Neplatná hodnota",
        "not_array": "Hodnota musí být pole",
        "unknown_model": "Neznámý model",
        "bad_login": "Neplatné uživatelské jméno nebo heslo",
        "rate_limited": "Příliš mnoho požadavků",
        "bad_body": "Tělo požadavku musí být objekt JSON",
    },
}


def message(locale: str, key: str) -> str:
    return MESSAGES.get(locale, MESSAGES["en"])[key]


class ApiError(Exception):
    """An API answer other than success: HTTP status, the ``error`` value and a ``result`` echo."""

    def __init__(self, status: int, error: Any, result: Any = None) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error
        self.result = result


class QueryError(ValueError):
    """A filter, sort, paging or projection parameter the server rejects with 400."""
