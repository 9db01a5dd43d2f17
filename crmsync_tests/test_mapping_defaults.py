"""The bundled mappings in ``mappings/`` produce exactly the payloads the real Daktela API expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.mapping import FieldMapper, Mapping, load_mapping

MAPPINGS = Path(__file__).parents[1] / "mappings"


@pytest.fixture(autouse=True)
def _no_timezone_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAKTELA_TIMEZONE", raising=False)


def mapped(file: str, record: dict[str, Any], relations: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    mapping = load_mapping(MAPPINGS / file)
    return FieldMapper().map(record, mapping, mapping.direction, relations)


@pytest.mark.parametrize(
    ("file", "entity", "lookup", "direction"),
    [
        ("accounts.yaml", "account", "name", "crm_to_cc"),
        ("contacts.yaml", "contact", "name", "crm_to_cc"),
        ("account-contact.yaml", "contact", "name", "crm_to_cc"),
        ("activities.yaml", "activity", "external_id", "cc_to_crm"),
    ],
)
def test_every_bundled_mapping_loads(file: str, entity: str, lookup: str, direction: str) -> None:
    mapping = load_mapping(MAPPINGS / file)
    assert isinstance(mapping, Mapping)
    assert (mapping.entity, mapping.lookup_field, mapping.direction) == (entity, lookup, direction)


ACCOUNT = {
    "id": "17",
    "name": "Novák Stavby s.r.o.",
    "reg_number": "12345678",
    "email": "Info@Novak.CZ",
    "phone": "+420 601 234 567",
    "city": "Brno",
    "website": "novak.cz",
    "updated_at": "2026-01-15 10:00:00",
}


def test_account_payload() -> None:
    assert mapped("accounts.yaml", ACCOUNT) == {
        "name": "crm_acc_17",
        "title": "Novák Stavby s.r.o.",
        "description": "IČO: 12345678",
        "customFields": {"email": ["info@novak.cz"], "number": ["+420601234567"]},
    }


def test_account_without_contacts_sends_empty_lists() -> None:
    record = {**ACCOUNT, "email": None, "phone": "", "reg_number": None}
    assert mapped("accounts.yaml", record) == {
        "name": "crm_acc_17",
        "title": "Novák Stavby s.r.o.",
        "description": None,
        "customFields": {"email": [], "number": []},
    }


def test_auto_created_contact_payload() -> None:
    assert mapped("account-contact.yaml", ACCOUNT) == {
        "name": "crm_acc_contact_17",
        "lastname": "Novák Stavby s.r.o.",
        "title": "Novák Stavby s.r.o.",
        "customFields": {"email": ["info@novak.cz"], "number": ["+420601234567"]},
    }


CONTACT = {
    "id": "42",
    "first_name": "Jiří",
    "last_name": "Dvořák",
    "email": "Jiri.Dvorak@Example.cz",
    "phone": "603 123 456",
    "account_id": "17",
    "job_title": "Stavbyvedoucí",
    "tags": "vip,newsletter",
    "updated_at": "2026-01-15 10:00:00",
}


def test_contact_payload_with_resolved_account() -> None:
    assert mapped("contacts.yaml", CONTACT, {"account": {"17": "crm_acc_17"}}) == {
        "name": "crm_42",
        "firstname": "Jiří",
        "lastname": "Dvořák",
        "title": "Jiří Dvořák",
        "customFields": {"email": ["jiri.dvorak@example.cz"], "number": ["+420603123456"]},
        "account": "crm_acc_17",
        "description": "Stavbyvedoucí",
    }


@pytest.mark.parametrize(
    ("phone", "number"),
    [
        ("603123456", ["+420603123456"]),
        ("+420 603 123 456", ["+420603123456"]),
        ("00420603123456", ["+420603123456"]),
        ("603-123-456", ["+420603123456"]),
        ("+421 905 123 456", ["+421905123456"]),
        ("", []),
        (None, []),
    ],
)
def test_contact_phone_formats(phone: str | None, number: list[str]) -> None:
    assert mapped("contacts.yaml", {**CONTACT, "phone": phone})["customFields"]["number"] == number


def test_contact_without_account_or_first_name() -> None:
    payload = mapped("contacts.yaml", {**CONTACT, "first_name": None, "account_id": None, "email": None})
    assert payload["title"] == "Dvořák"
    assert payload["firstname"] is None
    assert payload["account"] is None
    assert payload["customFields"]["email"] == []


ACTIVITY = {
    "name": "activities_6789abc",
    "activity_type": "call",
    "type": "CALL",
    "title": "Poptávka střechy",
    "description": "Zákazník chce nabídku.",
    "action": "CLOSE",
    "time": "2026-07-01 10:00:00",
    "time_open": "2026-07-01 10:00:05",
    "time_close": "2026-07-01 10:05:00",
    "duration": 295,
    "direction": "in",
    "queue_name": 1001,
    "queue_title": "Obchod",
    "user_email": "agent@firma.cz",
    "user_login": "agent",
    "user_title": "Agent Smith",
    "contact_name": "crm_42",
    "contact_title": "Jiří Dvořák",
    "item_answered": True,
    "item_clid": "+420603123456",
}


def test_activity_payload() -> None:
    assert mapped("activities.yaml", ACTIVITY) == {
        "external_id": "activities_6789abc",
        "type": "call",
        "subject": "Poptávka střechy",
        "direction": "in",
        "started_at": "2026-07-01T08:00:00+00:00",
        "closed_at": "2026-07-01T08:05:00+00:00",
        "duration_s": 295,
        "contact_ref": "crm_42",
        "crm_contact_id": "42",
        "agent_email": "agent@firma.cz",
        "queue": "Obchod",
        "status": "CLOSE",
        "description": "Zákazník chce nabídku.",
    }


def test_open_activity_of_an_unknown_contact_in_winter() -> None:
    record = {
        **ACTIVITY,
        "time": "2026-01-15 10:00:00",
        "time_close": None,
        "contact_name": "contacts_98765",
        "action": "OPEN",
    }
    payload = mapped("activities.yaml", record)
    assert payload["started_at"] == "2026-01-15T09:00:00+00:00"
    assert payload["closed_at"] is None
    assert payload["contact_ref"] == "contacts_98765"
    assert payload["crm_contact_id"] is None  # strict strip_prefix: not a crmsync contact
    assert payload["status"] == "OPEN"


def test_instance_time_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAKTELA_TIMEZONE", "Europe/Bucharest")
    assert mapped("activities.yaml", ACTIVITY)["started_at"] == "2026-07-01T07:00:00+00:00"
