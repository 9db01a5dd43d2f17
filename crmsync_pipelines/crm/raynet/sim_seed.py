"""Deterministic Czech demo data for the Raynet simulator: users, companies, persons, custom fields.

Names, towns and IČO-like registration numbers are generated from a seeded RNG, so every
run of ``crmsync crm-simulator raynet --seed demo`` serves the same instance. Some records
are modified "today" so the current partition has work, the rest days to weeks ago.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from crmsync_pipelines.crm.raynet.sim_store import RaynetStore

_COMPANIES = [
    ("Strojírny Brno", "strojirny-brno.cz"), ("Pivovar Hradec", "pivovar-hradec.cz"),
    ("Kovo Ostrava", "kovo-ostrava.cz"), ("Textil Liberec", "textil-liberec.cz"),
    ("Sklárna Karlovy Vary", "sklarna-kv.cz"), ("Pekárna U Nováků", "pekarna-novak.cz"),
    ("Autodoprava Jihlava", "autodoprava-jihlava.cz"), ("Elektro Plzeň", "elektro-plzen.cz"),
    ("Zahradnictví Olomouc", "zahradnictvi-olomouc.cz"), ("Software Praha", "software-praha.cz"),
    ("Nábytek Zlín", "nabytek-zlin.cz"), ("Mlékárna Tábor", "mlekarna-tabor.cz"),
]
_TOWNS = ["Praha", "Brno", "Ostrava", "Plzeň", "Liberec", "Olomouc", "Zlín", "Jihlava", "Tábor", "Kolín"]
_FIRST = [("Jan", "m"), ("Petr", "m"), ("Tomáš", "m"), ("Martin", "m"), ("Jiří", "m"),
          ("Eva", "f"), ("Jana", "f"), ("Lucie", "f"), ("Kateřina", "f"), ("Tereza", "f")]
_LAST = [("Novák", "Nováková"), ("Svoboda", "Svobodová"), ("Dvořák", "Dvořáková"), ("Černý", "Černá"),
         ("Procházka", "Procházková"), ("Kučera", "Kučerová"), ("Veselý", "Veselá"), ("Horák", "Horáková")]
#: Czech mobile prefixes that libphonenumber accepts as valid numbers.
_MOBILE = ("601", "602", "603", "604", "605", "606", "607", "608", "702", "720", "721", "722", "723", "724",
           "725", "728", "730", "731", "732", "733", "734", "736", "737", "739", "773", "775", "777")
_ASCII = str.maketrans("áčďéěíňóřšťúůýž", "acdeeinorstuuyz")

#: Users of the instance (persons with a user account): activity owners.
USERS = [("Alena", "Agentová", "agent1@example.com"), ("Boris", "Operátor", "agent2@example.com"),
         ("Integrace", "Daktela", "integrace@example.com")]
#: Custom fields of the demo instance (label -> generated key, data type, entity group).
CUSTOM_FIELDS: dict[str, list[dict[str, Any]]] = {
    "PhoneCall": [
        {"label": "Směr", "name": "Smer_4f2a1", "dataType": "ENUMERATION", "enumeration": ["in", "out", "internal"]},
        {"label": "Fronta", "name": "Fronta_8c3d2", "dataType": "STRING"},
        {"label": "Délka hovoru (s)", "name": "Delka_hovoru_1b9e7", "dataType": "BIG_DECIMAL"},
    ],
    "Email": [{"label": "Fronta", "name": "Fronta_2e7a4", "dataType": "STRING"}],
    "Task": [{"label": "Kanál", "name": "Kanal_7d1c0", "dataType": "STRING"}],
    "Company": [{"label": "VIP", "name": "VIP_b91d1", "dataType": "BOOLEAN"}],
    "Person": [{"label": "Pozice", "name": "Pozice_3a6f9", "dataType": "STRING", "fullText": True}],
}


def _config_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"groupName": "Daktela", "readOnly": False, "hint": None, "currency": None, "showInFilterView": True,
            "showInListExport": True, "showInListView": True, "fullText": False, "enumeration": [], **item}


def seed_users(store: RaynetStore, at: datetime) -> list[int]:
    """The instance's users (always present: an activity needs an owner); returns their person ids."""
    ids = []
    for index, (first, last, email) in enumerate(USERS, start=1):
        record = store.insert("person", {
            "firstName": first, "lastName": last, "titleBefore": None, "titleAfter": None,
            "contactInfo": {"email": email, "email2": None, "tel1": None, "tel1Type": None, "tel2": None,
                            "tel2Type": None},
            "userAccount": {"id": index, "username": email}, "primaryRelationship": None, "owner": None,
        }, at=at - timedelta(days=400))
        ids.append(int(record["id"]))
    store.custom_fields = {group: [_config_item(i) for i in items] for group, items in CUSTOM_FIELDS.items()}
    return ids


def seed_demo(store: RaynetStore, seed: str, *, companies: int = 12, persons: int = 40) -> None:
    """Companies and persons with Czech names; about a quarter modified today."""
    rng = random.Random(seed)
    now = store.now()
    users = [int(p["id"]) for p in store.all("person") if p.get("userAccount")]
    company_ids: list[int] = []
    for index in range(companies):
        title, domain = _COMPANIES[index % len(_COMPANIES)]
        name = title if index < len(_COMPANIES) else f"{title} {index // len(_COMPANIES) + 1}"
        created = now - timedelta(days=rng.randint(20, 300), minutes=rng.randint(0, 1440))
        record = store.insert("company", {
            "name": name, "person": False, "regNumber": f"{rng.randint(10_000_000, 99_999_999)}",
            "taxNumber": None, "rating": rng.choice("ABC"), "state": "B_ACTUAL", "role": "A_SUBSCRIBER",
            "owner": rng.choice(users) if users else None, "category": None, "notice": None,
            "primaryAddress": {
                "address": {"name": "Sídlo", "street": f"Hlavní {rng.randint(1, 200)}", "city": rng.choice(_TOWNS),
                            "province": None, "zipCode": f"{rng.randint(100, 799)} {rng.randint(10, 99)}",
                            "country": "CZ", "lat": None, "lng": None},
                "contactInfo": {"email": f"info@{domain}", "email2": None,
                                "tel1": f"+420 2{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
                                "tel1Type": "práce", "tel2": None, "tel2Type": None, "www": f"https://www.{domain}",
                                "fax": None, "otherContact": None, "doNotSendMM": False},
                "territory": None,
            },
        }, at=created)
        company_ids.append(int(record["id"]))
        if rng.random() < 0.3:
            store.touch("company", int(record["id"]), {}, at=now - timedelta(minutes=rng.randint(1, 600)))
    for index in range(persons):
        first, gender = _FIRST[rng.randrange(len(_FIRST))]
        last = rng.choice(_LAST)[0 if gender == "m" else 1]
        company = rng.choice(company_ids) if company_ids and index % 4 else None
        email = f"{first}.{last}{index}".lower().translate(_ASCII) + "@example.cz"
        created = now - timedelta(days=rng.randint(10, 200), minutes=rng.randint(0, 1440))
        record = store.insert("person", {
            "firstName": first, "lastName": last, "titleBefore": None, "titleAfter": None, "salutation": None,
            "gender": "MALE" if gender == "m" else "FEMALE",
            "contactInfo": {"email": email, "email2": None,
                            "tel1": f"+420 {rng.choice(_MOBILE)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
                            "tel1Type": "mobil", "tel2": None, "tel2Type": None},
            "owner": rng.choice(users) if users else None,
            "primaryRelationship": {"id": index + 1, "type": "zaměstnanec", "company": company} if company else None,
            "customFields": {"Pozice_3a6f9": rng.choice(["Nákupčí", "Ředitel", "Účetní", "Technik"])},
        }, at=created)
        if rng.random() < 0.3:
            store.touch("person", int(record["id"]), {}, at=now - timedelta(minutes=rng.randint(1, 600)))
