"""The bundled mappings in ``mappings/`` produce exactly the payloads the real Daktela API expects."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crmsync_pipelines.crm.demo_data import create_demo_crm
from crmsync_pipelines.mapping import FieldMapper, Mapping, RecordMappingError, load_mapping

MAPPINGS = Path(__file__).parents[1] / "mappings"


def mapped(
    file: str,
    record: dict[str, Any],
    relations: dict[str, dict[str, str]] | None = None,
    instance_timezone: str = "Europe/Prague",
) -> dict[str, Any]:
    mapping = load_mapping(MAPPINGS / file)
    return FieldMapper(instance_timezone=instance_timezone).map(record, mapping, mapping.direction, relations)


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
        # the bundled mappings allow CZ and SK: Slovak national numbers (the demo CRM writes them)
        ("0905 123 456", ["+421905123456"]),
        ("0949 123 456", ["+421949123456"]),
        ("00421905123456", ["+421905123456"]),
        ("421 905 123 456", ["+421905123456"]),
        ("+420 (0) 601 234 567", ["+420601234567"]),
        ("603456789.0", ["+420603456789"]),
        (603456789.0, ["+420603456789"]),
        ("+420 602 345 678 ext. 12", ["+420602345678"]),
        ("604 567 890 kl. 12", ["+420604567890"]),
        ("+420601123456, +420602123456", ["+420601123456", "+420602123456"]),
        ("", []),
        (None, []),
    ],
)
def test_contact_phone_formats(phone: str | float | None, number: list[str]) -> None:
    assert mapped("contacts.yaml", {**CONTACT, "phone": phone})["customFields"]["number"] == number


@pytest.mark.parametrize("file", ["contacts.yaml", "accounts.yaml", "account-contact.yaml"])
@pytest.mark.parametrize("phone", ["0737 123 456", "12", "603 12A 456", "+420 603 123 45"])
def test_an_unreadable_phone_fails_the_record_naming_field_and_value(file: str, phone: str) -> None:
    record = {**(CONTACT if file == "contacts.yaml" else ACCOUNT), "phone": phone}
    with pytest.raises(RecordMappingError) as info:
        mapped(file, record)
    assert info.value.field == "customFields.number" and info.value.refused
    assert f"(phone -> customFields.number): transformer phone_normalize: {phone!r}" in str(info.value)


def test_demo_crm_phones_all_map_to_valid_numbers(tmp_path: Path) -> None:
    """The demo CRM writes Czech and Slovak numbers in mixed layouts; every one maps."""
    stats = create_demo_crm(tmp_path / "crm.sqlite", accounts=40, contacts=400, seed=11)
    with sqlite3.connect(stats.path) as con:
        phones = [row[0] for row in con.execute("SELECT phone FROM contacts UNION ALL SELECT phone FROM accounts")]
    assert any(p and p.startswith("09") for p in phones), "the demo data has Slovak national numbers"
    mapping = load_mapping(MAPPINGS / "contacts.yaml")
    mapper = FieldMapper()
    for phone in phones:
        numbers = mapper.map({**CONTACT, "phone": phone}, mapping, "crm_to_cc")["customFields"]["number"]
        if phone is None:
            assert numbers == []
            continue
        digits = "".join(ch for ch in phone if ch.isdigit())
        assert len(numbers) == 1 and numbers[0].startswith(("+420", "+421")), phone
        # never a manufactured digit: the number's national digits are the input's last nine
        assert numbers[0][4:] == digits[-9:], phone


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


@pytest.mark.parametrize(
    ("zone", "started_at", "closed_at"),
    [
        ("Europe/Prague", "2026-07-01T08:00:00+00:00", "2026-07-01T08:05:00+00:00"),
        ("Europe/Bucharest", "2026-07-01T07:00:00+00:00", "2026-07-01T07:05:00+00:00"),
        ("America/New_York", "2026-07-01T14:00:00+00:00", "2026-07-01T14:05:00+00:00"),
        ("UTC", "2026-07-01T10:00:00+00:00", "2026-07-01T10:05:00+00:00"),
    ],
)
def test_activity_times_are_read_in_the_instance_zone(zone: str, started_at: str, closed_at: str) -> None:
    payload = mapped("activities.yaml", ACTIVITY, instance_timezone=zone)
    assert (payload["started_at"], payload["closed_at"]) == (started_at, closed_at)


def test_the_environment_no_longer_decides_the_activity_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAKTELA_TIMEZONE", "Europe/Bucharest")
    assert mapped("activities.yaml", ACTIVITY, instance_timezone="America/New_York")["started_at"] == (
        "2026-07-01T14:00:00+00:00"
    )


def test_without_an_instance_zone_activity_times_fail_visibly() -> None:
    mapping = load_mapping(MAPPINGS / "activities.yaml")
    with pytest.raises(RecordMappingError, match="the Daktela instance time zone is not known here") as info:
        FieldMapper().map(ACTIVITY, mapping, "cc_to_crm")
    assert info.value.field == "started_at"


def test_instance_zone_follows_a_changing_source() -> None:
    """The engine passes a function: a zone announced later (``_timezone``) recompiles the plan."""
    zone = ["Europe/Prague"]
    mapper = FieldMapper(instance_timezone=lambda: zone[0])
    mapping = load_mapping(MAPPINGS / "activities.yaml")
    assert mapper.map(ACTIVITY, mapping, "cc_to_crm")["started_at"] == "2026-07-01T08:00:00+00:00"
    zone[0] = "America/New_York"
    assert mapper.map(ACTIVITY, mapping, "cc_to_crm")["started_at"] == "2026-07-01T14:00:00+00:00"
