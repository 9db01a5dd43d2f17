"""Which HubSpot contact an activity belongs to when Daktela did not say.

An activity whose Daktela contact is one of ours (``crm_<id>``) arrives with
``crm_contact_id``; the rest carry at most a phone number or an e-mail address. Those are
matched in batches: one search request per up to ``values_per_search`` distinct values, with
one ``IN`` filter group per configured contact property (groups are ORed, HubSpot allows 5).
Phone numbers are stored as people typed them, so each number is searched in its E.164,
international and national layouts, and every hit is normalised again on our side before it
counts. Exactly one matching contact links the activity; several leave it unlinked and are
counted as ambiguous — a guess would put a call on a stranger's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from crmsync_pipelines.crm.hubspot.client import HubSpotClient
from crmsync_pipelines.crm.hubspot.settings import MatchSettings


def normalise_phone(value: str | None, region: str) -> str | None:
    """E.164 (``+420777123456``) or None when the text is not a possible number (never a guess)."""
    if not value or not value.strip():
        return None
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_layouts(e164: str) -> list[str]:
    """The layouts a person may have typed the number in: E.164, international, national."""
    parsed = phonenumbers.parse(e164, None)
    formats = (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
               phonenumbers.PhoneNumberFormat.NATIONAL)
    return list(dict.fromkeys(phonenumbers.format_number(parsed, f) for f in formats))


@dataclass
class MatchStats:
    linked: int = 0
    ambiguous: int = 0
    unmatched: int = 0


@dataclass
class ContactMatcher:
    """Batched phone / e-mail lookups with a per-adapter cache (values never looked up twice)."""

    client: HubSpotClient
    settings: MatchSettings
    search_path: str
    stats: MatchStats = field(default_factory=MatchStats)
    _phones: dict[str, set[str]] = field(default_factory=dict)
    _emails: dict[str, set[str]] = field(default_factory=dict)

    def resolve(self, wanted: Iterable[tuple[str | None, str | None]]) -> list[tuple[str | None, bool]]:
        """For each (phone, email): (contact id or None, ambiguous?)."""
        pairs = [(normalise_phone(p, self.settings.default_region), e.lower() if e else None) for p, e in wanted]
        self._lookup_phones(sorted({p for p, _ in pairs if p and p not in self._phones}))
        self._lookup_emails(sorted({e for _, e in pairs if e and e not in self._emails}))
        answers: list[tuple[str | None, bool]] = []
        for phone, email in pairs:
            found = (self._phones.get(phone, set()) if phone else set()) | (
                self._emails.get(email, set()) if email else set())
            if len(found) == 1:
                self.stats.linked += 1
                answers.append((next(iter(found)), False))
            elif found:
                self.stats.ambiguous += 1
                answers.append((None, True))
            else:
                if phone or email:
                    self.stats.unmatched += 1
                answers.append((None, False))
        return answers

    def _lookup_phones(self, numbers: list[str]) -> None:
        if not numbers or not self.settings.phone_properties:
            for number in numbers:
                self._phones[number] = set()
            return
        per_request = max(1, self.settings.values_per_search // 3)
        for start in range(0, len(numbers), per_request):
            chunk = numbers[start:start + per_request]
            layouts = sorted({layout for number in chunk for layout in phone_layouts(number)})
            for number in chunk:
                self._phones[number] = set()
            for record in self._search(self.settings.phone_properties, layouts):
                for prop in self.settings.phone_properties:
                    normalised = normalise_phone(record["properties"].get(prop), self.settings.default_region)
                    if normalised in self._phones:
                        self._phones[normalised].add(str(record["id"]))

    def _lookup_emails(self, emails: list[str]) -> None:
        if not emails or not self.settings.email_properties:
            for email in emails:
                self._emails[email] = set()
            return
        size = self.settings.values_per_search
        for start in range(0, len(emails), size):
            chunk = emails[start:start + size]
            for email in chunk:
                self._emails[email] = set()
            for record in self._search(self.settings.email_properties, chunk):
                for prop in self.settings.email_properties:
                    value = str(record["properties"].get(prop) or "").strip().lower()
                    if value in self._emails:
                        self._emails[value].add(str(record["id"]))

    def _search(self, properties: list[str], values: list[str]) -> Iterator[dict[str, Any]]:
        """Every contact having one of ``values`` in one of ``properties`` (keyset paging by id)."""
        last_id = 0
        while True:
            groups = [{"filters": [{"propertyName": prop, "operator": "IN", "values": values},
                                   {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}]}
                      for prop in properties[:5]]
            body = {"filterGroups": groups, "properties": list(properties),
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 200}
            page = self.client.post_json(self.search_path, body, context="contact match search")
            results = page.get("results") or []
            yield from results
            if len(results) < 200:
                return
            last_id = int(results[-1]["id"])
