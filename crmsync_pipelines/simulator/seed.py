"""Seed data: the fixed base every instance has, and the realistic "demo" data set.

The base (users, queues, statuses, database ``default``) is fixed so other tests can name
its records. Demo data is deterministic for a seed string but placed relative to *now*, so
the current partition of a demo always has activities, some still open.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crmsync_pipelines.simulator.models import CHANNELS

if TYPE_CHECKING:
    from crmsync_pipelines.simulator.state import SimulatorState

_PROFILE = {"name": "profiles_agent", "title": "Agent"}
_ROLE = {"name": "roles_agent", "title": "Agent", "permissions": {"activities": "edit", "contacts": "edit"}}

BASE_USERS: list[dict[str, Any]] = [
    {"name": "admin", "title": "Správce systému", "firstname": "Karel", "lastname": "Veselý", "type": "admin"},
    {"name": "jan.novak", "title": "Jan Novák", "firstname": "Jan", "lastname": "Novák", "extension": "101"},
    {"name": "petra.svobodova", "title": "Petra Svobodová", "firstname": "Petra", "lastname": "Svobodová",
     "extension": "102"},
    {"name": "tomas.dvorak", "title": "Tomáš Dvořák", "firstname": "Tomáš", "lastname": "Dvořák", "extension": "103"},
    {"name": "lucie.cerna", "title": "Lucie Černá", "firstname": "Lucie", "lastname": "Černá", "extension": "104"},
    {"name": "martin.prochazka", "title": "Martin Procházka", "firstname": "Martin", "lastname": "Procházka",
     "extension": "105"},
    {"name": "eva.kucerova", "title": "Eva Kučerová", "firstname": "Eva", "lastname": "Kučerová", "extension": "106"},
]
AGENTS = [u["name"] for u in BASE_USERS if u["name"] != "admin"]

#: queue name -> (title, queue type, activity type it serves)
BASE_QUEUES: dict[int, tuple[str, str, str]] = {
    3001: ("Zákaznická linka", "in", "CALL"),
    3002: ("Podpora e-mail", "email", "EMAIL"),
    3003: ("Webový chat", "chat", "CHAT"),
    3004: ("SMS", "sms", "SMS"),
    3005: ("Messenger", "fbm", "FBM"),
    3006: ("WhatsApp", "wap", "WAP"),
    3007: ("Viber", "vbr", "VBR"),
}
BASE_STATUSES = {
    "statuses_resolved": ("Vyřešeno", "#2e7d32"),
    "statuses_callback": ("Zavolat zpět", "#f9a825"),
    "statuses_sale": ("Prodej", "#1565c0"),
    "statuses_no_answer": ("Nedovoláno", "#c62828"),
}

_FIRST = [("Jan", "m"), ("Petr", "m"), ("Tomáš", "m"), ("Lukáš", "m"), ("Jakub", "m"), ("Pavel", "m"),
          ("Jana", "f"), ("Lucie", "f"), ("Eva", "f"), ("Kateřina", "f"), ("Tereza", "f"), ("Hana", "f")]
_LAST = [("Novák", "Nováková"), ("Svoboda", "Svobodová"), ("Dvořák", "Dvořáková"), ("Černý", "Černá"),
         ("Procházka", "Procházková"), ("Kučera", "Kučerová"), ("Veselý", "Veselá"), ("Horák", "Horáková"),
         ("Němec", "Němcová"), ("Marek", "Marková")]
_ASCII = str.maketrans("áčďéěíňóřšťúůýžÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ", "acdeeinorstuuyzACDEEINORSTUUYZ")
_COMPANIES = [
    ("Pekárna U Mlýna s.r.o.", "pekarna-umlyna.cz"), ("Stavby Morava a.s.", "stavby-morava.cz"),
    ("Zahradnictví Kvítek", "kvitek.cz"), ("AutoServis Brno s.r.o.", "autoservis-brno.cz"),
    ("Kavárna Na Rohu", "kavarnanarohu.cz"),
]
_SUBJECTS = {
    "CALL": ["Dotaz na fakturu", "Reklamace zboží", "Změna tarifu", "Objednávka", "Technický problém"],
    "EMAIL": ["Re: Faktura 2024-118", "Potvrzení objednávky", "Dotaz k dodání", "Reklamace", "Nabídka"],
}


def seed_instance(state: SimulatorState) -> None:
    """Seed an empty store once; a file database that was seeded before is left as it is."""
    if state.store.meta("seeded") is not None:
        return
    _seed_base(state)
    if state.config.seed is not None:
        _seed_demo(state, random.Random(state.config.seed))
    state.store.set_meta("seeded", state.config.seed or "")


def _seed_base(state: SimulatorState) -> None:
    users = [dict(u) for u in BASE_USERS]
    if state.config.username not in {u["name"] for u in users}:
        users.insert(0, {"name": state.config.username, "title": "API integrace", "type": "api"})
    for user in users:
        login = user["name"]
        user.setdefault("type", "user")
        user.update(
            alias=user["title"], email=f"{login}@example.cz", emailAuth=f"{login}@auth.example.cz",
            profile=_PROFILE, role=_ROLE, timezone=state.config.timezone,
        )
        state.insert("users", user)
    for queue, (title, queue_type, _activity_type) in BASE_QUEUES.items():
        direction = "out" if queue_type == "out" else "in"
        state.insert("queues", {"name": queue, "title": title, "type": queue_type, "direction": direction,
                                "options": {"recording": True}})
    for name, (title, color) in BASE_STATUSES.items():
        state.insert("statuses", {"name": name, "title": title, "color": color})
    state.insert("databases", {"name": "default", "title": "Výchozí databáze", "stage": "OPEN", "default": True})


def _seed_demo(state: SimulatorState, rng: random.Random) -> None:
    fmt = "%Y-%m-%d %H:%M:%S"
    now = datetime.now(ZoneInfo(state.config.timezone)).replace(microsecond=0)
    since_midnight = int((now - now.replace(hour=0, minute=0, second=0)).total_seconds())

    def hexname(prefix: str) -> str:
        return f"{prefix}_{rng.getrandbits(52):013x}"

    def at(offset_s: int) -> str:
        return (now - timedelta(seconds=offset_s)).strftime(fmt)

    accounts = []
    for title, domain in _COMPANIES:
        name = hexname("accounts")
        accounts.append(name)
        state.insert("accounts", {
            "name": name, "title": title, "database": "default", "user": rng.choice(AGENTS),
            "customFields": {"email": [f"info@{domain}"], "web": [f"https://www.{domain}"]},
            "created": at(rng.randint(10, 30) * 86400), "edited": at(rng.randint(4, 9) * 86400),
        })
    contacts = []
    for index in range(12):
        first, gender = _FIRST[index % len(_FIRST)]
        last = rng.choice(_LAST)[0 if gender == "m" else 1]
        email = f"{first}.{last}".lower().translate(_ASCII) + "@example.cz"
        name = hexname("contacts")
        contacts.append(name)
        state.insert("contacts", {
            "name": name, "title": f"{first} {last}", "firstname": first, "lastname": last,
            "database": "default", "account": rng.choice(accounts) if index % 3 else None,
            "user": rng.choice(AGENTS),
            "customFields": {"email": [email], "number": [f"+4206{rng.randint(0, 99999999):08d}"]},
            "created": at(rng.randint(10, 60) * 86400), "edited": at(rng.randint(4, 9) * 86400),
        })
    for ticket_index in range(3):
        state.insert("tickets", {
            "title": rng.choice(_SUBJECTS["EMAIL"]), "contact": rng.choice(contacts), "user": rng.choice(AGENTS),
            "stage": "OPEN" if ticket_index else "CLOSE", "priority": rng.choice(["LOW", "MEDIUM", "HIGH"]),
            "category": {"name": "categories_support", "title": "Podpora",
                         "sla": {"name": "sla_standard", "title": "Standard"}},
        })
    queue_of = {activity_type: queue for queue, (_t, _q, activity_type) in BASE_QUEUES.items()}
    for activity_type in CHANNELS:
        for index in range(5):
            offset = rng.randint(0, since_midnight) if index == 0 else rng.randint(0, 3 * 86400)
            is_open = index >= 3
            duration = rng.randint(30, 900)
            started = now - timedelta(seconds=offset)
            record: dict[str, Any] = {
                "name": hexname("activities") + (f".{rng.randint(10**7, 10**8 - 1)}" if index == 1 else ""),
                "type": activity_type, "queue": queue_of[activity_type], "user": rng.choice(AGENTS),
                "contact": rng.choice(contacts), "time": started.strftime(fmt),
                "title": rng.choice(_SUBJECTS.get(activity_type, ["Konverzace"])),
                "action": "OPEN" if is_open else "CLOSE", "priority": 0,
                "statuses": [] if is_open else [rng.choice(list(BASE_STATUSES))],
            }
            if not is_open:
                closed = min(started + timedelta(seconds=duration), now)
                record["time_close"] = closed.strftime(fmt)
                record["duration"] = int((closed - started).total_seconds())
            if activity_type == "CALL":
                record["item"] = {"id_call": f"{int(started.timestamp())}.{rng.randint(1000, 9999)}",
                                  "clid": f"+4207{rng.randint(0, 99999999):08d}", "did": "+420222333444"}
            state.insert("activities", record)
