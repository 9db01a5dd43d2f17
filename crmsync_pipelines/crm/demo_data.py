"""The bundled demo CRM: a SQLite file with realistic Czech and Slovak data.

The data is deliberately imperfect the way real CRM exports are (mixed phone formats,
upper-case and empty e-mails, trailing spaces, duplicates, contacts without an account), so
the demo and the tests exercise the mapping transformers and the failure paths, not just the
happy path. Everything is derived from ``seed`` and ``now``: the same pair gives the same file.

``mutate_demo_crm`` changes a share of the records the way daily CRM use does, so an
incremental run has something to sync; ``DemoCrmSeeder`` inserts single records with a chosen
modified time, for tests and for the conformance kit.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEMO_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    reg_number TEXT,
    email TEXT,
    phone TEXT,
    city TEXT,
    website TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    phone TEXT,
    account_id INTEGER,
    job_title TEXT,
    tags TEXT,
    updated_at TEXT NOT NULL
);
-- A second kind of person the demo syncs as a custom entity (sync.custom_entities "partners"):
-- reseller contacts kept apart from the customers' contacts.
CREATE TABLE IF NOT EXISTS partners (
    id INTEGER PRIMARY KEY,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    email TEXT,
    phone TEXT,
    account_id INTEGER,
    level TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    type TEXT,
    subject TEXT,
    direction TEXT,
    started_at TEXT,
    closed_at TEXT,
    duration_s INTEGER,
    contact_ref TEXT,
    crm_contact_id TEXT,
    agent_email TEXT,
    queue TEXT,
    status TEXT,
    description TEXT,
    created_at TEXT,
    updated_at TEXT
);
"""

#: Created after the bulk insert: filling indexes row by row with random keys is several times slower.
DEMO_INDEXES = """
CREATE INDEX IF NOT EXISTS accounts_updated_at ON accounts(updated_at);
CREATE INDEX IF NOT EXISTS contacts_updated_at ON contacts(updated_at);
CREATE INDEX IF NOT EXISTS contacts_email ON contacts(email);
CREATE INDEX IF NOT EXISTS partners_updated_at ON partners(updated_at);
"""

PARTNER_COLUMNS = ("id", "first_name", "last_name", "company", "email", "phone", "account_id", "level", "updated_at")
ACCOUNT_COLUMNS = ("id", "name", "reg_number", "email", "phone", "city", "website", "updated_at")
CONTACT_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "account_id",
    "job_title",
    "tags",
    "updated_at",
)

_MALE_FIRST = (
    "Jiří",
    "Jan",
    "Petr",
    "Josef",
    "Pavel",
    "Martin",
    "Tomáš",
    "Jaroslav",
    "Miroslav",
    "Zdeněk",
    "Václav",
    "Michal",
    "František",
    "Jakub",
    "Milan",
    "Karel",
    "Lukáš",
    "David",
    "Ondřej",
    "Vojtěch",
    "Radek",
    "Matěj",
    "Štěpán",
    "Marek",
    "Ján",
    "Juraj",
    "Ľubomír",
    "Dušan",
    "Peter",
    "Róbert",
)
_FEMALE_FIRST = (
    "Jana",
    "Marie",
    "Eva",
    "Hana",
    "Anna",
    "Lenka",
    "Kateřina",
    "Věra",
    "Lucie",
    "Alena",
    "Petra",
    "Veronika",
    "Jaroslava",
    "Tereza",
    "Martina",
    "Michaela",
    "Zuzana",
    "Ľudmila",
    "Katarína",
    "Mária",
    "Žaneta",
    "Šárka",
    "Radka",
    "Božena",
)
#: (male, female) surname pairs; the female form is not derivable by a rule (Němec -> Němcová).
_SURNAMES = (
    ("Novák", "Nováková"),
    ("Svoboda", "Svobodová"),
    ("Novotný", "Novotná"),
    ("Dvořák", "Dvořáková"),
    ("Černý", "Černá"),
    ("Procházka", "Procházková"),
    ("Kučera", "Kučerová"),
    ("Veselý", "Veselá"),
    ("Horák", "Horáková"),
    ("Němec", "Němcová"),
    ("Marek", "Marková"),
    ("Pokorný", "Pokorná"),
    ("Pospíšil", "Pospíšilová"),
    ("Hájek", "Hájková"),
    ("Jelínek", "Jelínková"),
    ("Král", "Králová"),
    ("Růžička", "Růžičková"),
    ("Beneš", "Benešová"),
    ("Fiala", "Fialová"),
    ("Sedláček", "Sedláčková"),
    ("Doležal", "Doležalová"),
    ("Zeman", "Zemanová"),
    ("Kolář", "Kolářová"),
    ("Navrátil", "Navrátilová"),
    ("Čermák", "Čermáková"),
    ("Šťastný", "Šťastná"),
    ("Kováč", "Kováčová"),
    ("Horváth", "Horváthová"),
    ("Varga", "Vargová"),
    ("Tóth", "Tóthová"),
    ("Baláž", "Balážová"),
    ("Molnár", "Molnárová"),
    ("Lukáč", "Lukáčová"),
    ("Ďurica", "Ďuricová"),
    ("Žák", "Žáková"),
    ("Řezníček", "Řezníčková"),
)
_TRADES = (
    "Stavby",
    "Elektro",
    "Transport",
    "Logistika",
    "Strojírna",
    "Pekárna",
    "Autoservis",
    "Truhlářství",
    "Software",
    "Consulting",
    "Zahrady",
    "Instalatérství",
    "Reality",
    "Účetnictví",
    "Tiskárna",
    "Kovo",
)
_REGIONS = ("Morava", "Vysočina", "Polabí", "Šumava", "Podkrkonoší", "Haná", "Slovácko", "Záhorie", "Spiš")
_LEGAL_FORMS = (("s.r.o.", 60), ("a.s.", 20), ("spol. s r.o.", 15), ("k.s.", 5))
_CZ_CITIES = (
    "Praha",
    "Brno",
    "Ostrava",
    "Plzeň",
    "Liberec",
    "Olomouc",
    "České Budějovice",
    "Hradec Králové",
    "Ústí nad Labem",
    "Pardubice",
    "Zlín",
    "Jihlava",
    "Kladno",
    "Třebíč",
)
_SK_CITIES = ("Bratislava", "Košice", "Žilina", "Prešov", "Banská Bystrica", "Nitra", "Trnava")
_FREEMAIL_CZ = ("seznam.cz", "gmail.com", "email.cz", "centrum.cz", "post.cz")
_FREEMAIL_SK = ("azet.sk", "atlas.sk", "gmail.com", "centrum.sk")
_JOB_TITLES = (
    "Jednatel",
    "Ředitel",
    "Obchodní manažer",
    "Účetní",
    "Vedoucí nákupu",
    "Asistentka",
    "IT správce",
    "Technik",
    "Projektový manažer",
    "Skladník",
    "Referent",
    "Vedoucí provozu",
    None,
)
_TAGS = ("vip", "newsletter", "b2b", "partner", "lead", "key-account")
_CZ_MOBILE_PREFIXES = (
    601,
    602,
    603,
    604,
    605,
    606,
    607,
    608,
    702,
    703,
    704,
    705,
    720,
    721,
    724,
    728,
    731,
    737,
    739,
    773,
    777,
    792,
)
_SK_MOBILE_PREFIXES = (901, 902, 903, 904, 905, 907, 908, 910, 911, 914, 915, 917, 940, 944, 948, 949)

#: Share of generated records whose modified time is "today", so the current partition has data.
TODAY_SHARE = 0.25
#: The zone whose calendar day counts as "today" (the default Daktela instance zone).
DEMO_TIMEZONE = "Europe/Prague"
HISTORY_DAYS = 30
NO_ACCOUNT_SHARE = 0.10
DUPLICATE_SHARE = 0.01
SLOVAK_SHARE = 0.2


@dataclass(frozen=True)
class DemoCrmStats:
    """What ``create_demo_crm`` wrote."""

    path: Path
    accounts: int
    contacts: int
    contacts_without_account: int
    contacts_modified_today: int
    seed: int
    now: datetime
    #: Rows of the ``partners`` table (the demo's custom entity).
    partners: int = 0


@dataclass(frozen=True)
class MutationStats:
    """What ``mutate_demo_crm`` changed."""

    accounts_touched: int
    contacts_touched: int
    contacts_added: int
    contacts_deleted: int


def ascii_fold(text: str) -> str:
    """``Dvořák`` -> ``Dvorak``: e-mail local parts and domains are ASCII in practice."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=4096)
def _slug(text: str) -> str:
    return "".join(ch for ch in ascii_fold(text).lower() if ch.isalnum())


def iso_utc(moment: datetime) -> str:
    """The demo schema's timestamp format: ISO-8601, UTC, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _ico(rng: random.Random) -> str:
    """A Czech company registration number (IČO) with a valid check digit."""
    digits = [rng.randint(0, 9) for _ in range(7)]
    total = sum(d * w for d, w in zip(digits, range(8, 1, -1), strict=True))
    check = (11 - total % 11) % 10
    return "".join(map(str, digits)) + str(check)


class _DemoFaker:
    """Realistic-looking values from one seeded random source."""

    def __init__(self, rng: random.Random, now: datetime, timezone: str = DEMO_TIMEZONE) -> None:
        self.rng = rng
        self.now = now
        # "Today" is the local day of the Daktela instance, because that is the day partition the
        # pipeline syncs; a UTC day would leave the current partition empty around local midnight.
        local_midnight = now.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.today_start = local_midnight.astimezone(UTC)
        self._today_ts = self.today_start.timestamp()
        self._today_span = max(now.timestamp() - self._today_ts, 0.0)
        self._history_ts = self._today_ts - HISTORY_DAYS * 86_400

    def modified_time(self) -> str:
        """A whole-second UTC time: ``TODAY_SHARE`` of them today before ``now``, the rest in the last 30 days."""
        rng = self.rng
        if rng.random() < TODAY_SHARE:
            moment = self._today_ts + rng.random() * self._today_span
        else:
            moment = self._history_ts + rng.random() * (self._today_ts - self._history_ts - 1)
        # time.strftime is several times faster than datetime arithmetic, which matters at 100k rows.
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(moment))

    def is_slovak(self) -> bool:
        return self.rng.random() < SLOVAK_SHARE

    def phone(self, slovak: bool) -> str:
        rng = self.rng
        if slovak:
            prefix = rng.choice(_SK_MOBILE_PREFIXES)
            rest = f"{rng.randint(0, 999_999):06d}"
            return rng.choice(
                (
                    f"+421 {prefix} {rest[:3]} {rest[3:]}",
                    f"0{prefix} {rest[:3]} {rest[3:]}",
                    f"00421{prefix}{rest}",
                    f"+421{prefix}{rest}",
                )
            )
        prefix = rng.choice(_CZ_MOBILE_PREFIXES)
        rest = f"{rng.randint(0, 999_999):06d}"
        return rng.choice(
            (
                f"+420 {prefix} {rest[:3]} {rest[3:]}",
                f"00420{prefix}{rest}",
                f"{prefix}{rest}",
                f"{prefix}-{rest[:3]}-{rest[3:]}",
                f"{prefix} {rest[:3]} {rest[3:]}",
                f"+420{prefix}{rest}",
            )
        )

    def legal_form(self) -> str:
        forms = [f for f, _ in _LEGAL_FORMS]
        weights = [w for _, w in _LEGAL_FORMS]
        return self.rng.choices(forms, weights)[0]

    def company(self, slovak: bool) -> tuple[str, str]:
        """(company name, web domain)."""
        rng = self.rng
        surname = rng.choice(_SURNAMES)[0]
        trade = rng.choice(_TRADES)
        style = rng.random()
        if style < 0.45:
            name = f"{surname} {trade}"
            stem = f"{_slug(surname)}{_slug(trade)}"
        elif style < 0.75:
            name = f"{trade} {surname}"
            stem = f"{_slug(trade)}-{_slug(surname)}"
        else:
            region = rng.choice(_REGIONS)
            name = f"{trade} {region}"
            stem = f"{_slug(trade)}{_slug(region)}"
        tld = "sk" if slovak else "cz"
        return f"{name} {self.legal_form()}", f"{stem}.{tld}"

    def person(self) -> tuple[str, str]:
        rng = self.rng
        male_surname, female_surname = rng.choice(_SURNAMES)
        if rng.random() < 0.5:
            return rng.choice(_MALE_FIRST), male_surname
        return rng.choice(_FEMALE_FIRST), female_surname

    def personal_email(self, first: str, last: str, domain: str | None, slovak: bool) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            return ""
        if roll < 0.05:
            return None
        first, last = _slug(first), _slug(last)
        pattern = rng.randrange(4)
        if pattern == 0:
            local = f"{first}.{last}"
        elif pattern == 1:
            local = f"{first[0]}.{last}"
        elif pattern == 2:
            local = f"{last}.{first}"
        else:
            local = f"{last}{rng.randint(1, 99)}"
        host = domain or rng.choice(_FREEMAIL_SK if slovak else _FREEMAIL_CZ)
        email = f"{local}@{host}"
        return email.upper() if roll > 0.97 else email

    def tags(self) -> str:
        rng = self.rng
        roll = rng.random()
        count = 0 if roll < 0.45 else 1 if roll < 0.75 else 2 if roll < 0.93 else 3
        return ",".join(rng.sample(_TAGS, count))

    def job_title(self) -> str | None:
        return self.rng.choice(_JOB_TITLES)

    def dirty(self, value: str) -> str:
        """Now and then a trailing space, as hand-typed CRM data has."""
        return value + " " if self.rng.random() < 0.02 else value


def _account_rows(faker: _DemoFaker, count: int, domains: dict[int, tuple[str, bool]]) -> Iterator[tuple[Any, ...]]:
    rng = faker.rng
    for account_id in range(1, count + 1):
        slovak = faker.is_slovak()
        name, domain = faker.company(slovak)
        domains[account_id] = (domain, slovak)
        mailbox = rng.choice(("info", "obchod", "kancelar", "podpora", "fakturace"))
        email = f"{mailbox}@{domain}"
        website = rng.choice((domain, f"www.{domain}", f"https://{domain}", f"https://www.{domain}/"))
        yield (
            account_id,
            faker.dirty(name),
            _ico(rng) if rng.random() < 0.95 else None,
            email.upper() if rng.random() < 0.03 else email,
            faker.phone(slovak),
            rng.choice(_SK_CITIES if slovak else _CZ_CITIES),
            website if rng.random() < 0.9 else None,
            faker.modified_time(),
        )


def _contact_row(
    faker: _DemoFaker, contact_id: int, domains: Mapping[int, tuple[str, bool]], account_ids: list[int]
) -> tuple[Any, ...]:
    rng = faker.rng
    account_id: int | None = None
    if account_ids and rng.random() >= NO_ACCOUNT_SHARE:
        account_id = rng.choice(account_ids)
    known = domains.get(account_id) if account_id is not None else None
    domain, slovak = known if known is not None else (None, faker.is_slovak())
    first, last = faker.person()
    return (
        contact_id,
        faker.dirty(first),
        faker.dirty(last),
        faker.personal_email(first, last, domain, slovak),
        faker.phone(slovak) if rng.random() < 0.93 else None,
        account_id,
        faker.job_title(),
        faker.tags(),
        faker.modified_time(),
    )


def partner_count(accounts: int) -> int:
    """Partners the demo CRM gets for ``accounts`` accounts: one per ten, at least three (none
    for an empty CRM, which the conformance kit needs)."""
    return max(3, accounts // 10) if accounts else 0


def _partner_rows(faker: _DemoFaker, count: int, account_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    """Partner rows from their own random stream, so adding them changed no account or contact."""
    rng = faker.rng
    for partner_id in range(1, count + 1):
        slovak = faker.is_slovak()
        first, last = faker.person()
        company, domain = faker.company(slovak)
        yield (
            partner_id,
            first,
            last,
            company,
            faker.personal_email(first, last, domain, slovak),
            faker.phone(slovak),
            rng.choice(account_ids) if account_ids and rng.random() < 0.5 else None,
            rng.choice(("gold", "silver", "bronze")),
            # The first one is always modified today, so a run of today's partition syncs one.
            faker.modified_time() if partner_id > 1 else time.strftime(
                "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(faker._today_ts + faker._today_span / 2)),
        )


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def create_demo_crm(
    path: str | Path,
    *,
    accounts: int = 200,
    contacts: int = 1000,
    seed: int = 42,
    now: datetime | None = None,
    overwrite: bool = False,
    timezone: str = DEMO_TIMEZONE,
) -> DemoCrmStats:
    """Create the demo CRM file (schema plus data) in one transaction.

    Refuses to touch an existing file unless ``overwrite`` is set, because the file may be a
    user's database that ``SqlCrmAdapter`` points at.
    """
    if accounts < 0 or contacts < 0:
        raise ValueError("accounts and contacts must not be negative")
    target = Path(path)
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} already exists (pass overwrite=True / --force to replace it)")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    faker = _DemoFaker(random.Random(seed), moment, timezone)
    today_from = faker.today_start.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    conn = _connect(target)
    try:
        conn.executescript(DEMO_SCHEMA)
        conn.execute("BEGIN")
        domains: dict[int, tuple[str, bool]] = {}
        conn.executemany(
            _insert_sql("accounts", ACCOUNT_COLUMNS),
            _account_rows(faker, accounts, domains),
        )
        account_ids = list(range(1, accounts + 1))
        counters = {"no_account": 0, "today": 0}
        conn.executemany(
            _insert_sql("contacts", CONTACT_COLUMNS),
            _counted_contacts(faker, contacts, domains, account_ids, counters, today_from),
        )
        partners = partner_count(accounts)
        conn.executemany(_insert_sql("partners", PARTNER_COLUMNS),
                         _partner_rows(_DemoFaker(random.Random(seed + 1), moment, timezone), partners, account_ids))
        for statement in filter(str.strip, DEMO_INDEXES.split(";")):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        target.unlink(missing_ok=True)
        raise
    conn.close()
    return DemoCrmStats(
        path=target,
        accounts=accounts,
        contacts=contacts,
        contacts_without_account=counters["no_account"],
        contacts_modified_today=counters["today"],
        seed=seed,
        now=moment,
        partners=partners,
    )


def ensure_demo_partners(path: str | Path, *, seed: int = 42, now: datetime | None = None,
                         timezone: str = DEMO_TIMEZONE) -> int:
    """Add the ``partners`` table (and its rows) to a demo CRM made before it existed; returns
    the rows added (0 when the table is already there). Other tables are not touched."""
    conn = _connect(Path(path))
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'partners'").fetchone():
            return 0
        accounts = [int(r[0]) for r in conn.execute("SELECT id FROM accounts ORDER BY id")]
        schema = DEMO_SCHEMA[DEMO_SCHEMA.index("CREATE TABLE IF NOT EXISTS partners"):]
        conn.execute(schema[:schema.index(";") + 1])
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        count = partner_count(len(accounts))
        conn.execute("BEGIN")
        conn.executemany(_insert_sql("partners", PARTNER_COLUMNS),
                         _partner_rows(_DemoFaker(random.Random(seed + 1), moment, timezone), count, accounts))
        conn.execute("COMMIT")
        return count
    finally:
        conn.close()


def _counted_contacts(
    faker: _DemoFaker,
    count: int,
    domains: Mapping[int, tuple[str, bool]],
    account_ids: list[int],
    counters: dict[str, int],
    today_from: str,
) -> Iterator[tuple[Any, ...]]:
    """Contact rows, with a few near-duplicates of earlier contacts (same person entered twice)."""
    rng = faker.rng
    recent: list[tuple[Any, ...]] = []
    for contact_id in range(1, count + 1):
        if recent and rng.random() < DUPLICATE_SHARE:
            original = rng.choice(recent)
            row = (contact_id, *original[1:8], faker.modified_time())
        else:
            row = _contact_row(faker, contact_id, domains, account_ids)
            if len(recent) < 500:
                recent.append(row)
        if row[5] is None:
            counters["no_account"] += 1
        if str(row[8]) >= today_from:  # same fixed-width UTC format, so text order is time order
            counters["today"] += 1
        yield row


def mutate_demo_crm(
    path: str | Path,
    *,
    touch_pct: float = 1.0,
    add: int = 0,
    delete: int = 0,
    seed: int | None = None,
    now: datetime | None = None,
) -> MutationStats:
    """Simulate a day of CRM use: change ``touch_pct`` % of accounts and contacts, add and delete contacts.

    Touched records get a new phone number (and contacts a new job title) and ``updated_at =
    now``, so they are real changes an incremental sync must carry over. ``seed=None`` gives
    different changes on every call, which is what repeated demo runs want.
    """
    if not 0 <= touch_pct <= 100:
        raise ValueError("touch_pct must be between 0 and 100")
    if add < 0 or delete < 0:
        raise ValueError("add and delete must not be negative")
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"demo CRM {target} does not exist (create it with `crmsync demo-crm create`)")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    faker = _DemoFaker(rng, moment)
    stamp = iso_utc(moment)
    conn = _connect(target)
    try:
        conn.execute("BEGIN IMMEDIATE")
        account_ids = [r[0] for r in conn.execute("SELECT id FROM accounts ORDER BY id")]
        contact_ids = [r[0] for r in conn.execute("SELECT id FROM contacts ORDER BY id")]
        touched_accounts = rng.sample(account_ids, round(len(account_ids) * touch_pct / 100))
        conn.executemany(
            "UPDATE accounts SET phone = ?, updated_at = ? WHERE id = ?",
            ((faker.phone(faker.is_slovak()), stamp, i) for i in touched_accounts),
        )
        deleted = rng.sample(contact_ids, min(delete, len(contact_ids)))
        conn.executemany("DELETE FROM contacts WHERE id = ?", ((i,) for i in deleted))
        gone = set(deleted)
        remaining = [i for i in contact_ids if i not in gone]
        touched_contacts = rng.sample(remaining, round(len(remaining) * touch_pct / 100))
        conn.executemany(
            "UPDATE contacts SET phone = ?, job_title = ?, updated_at = ? WHERE id = ?",
            ((faker.phone(faker.is_slovak()), faker.job_title(), stamp, i) for i in touched_contacts),
        )
        domains = {
            int(r[0]): (str(r[1]).split("@", 1)[1].lower(), str(r[1]).lower().endswith(".sk"))
            for r in conn.execute("SELECT id, email FROM accounts WHERE email LIKE '%@%'")
        }
        next_id = (max(contact_ids) if contact_ids else 0) + 1
        new_rows = []
        for contact_id in range(next_id, next_id + add):
            row = _contact_row(faker, contact_id, domains, account_ids)
            new_rows.append((*row[:8], stamp))
        conn.executemany(
            _insert_sql("contacts", CONTACT_COLUMNS),
            new_rows,
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return MutationStats(
        accounts_touched=len(touched_accounts),
        contacts_touched=len(touched_contacts),
        contacts_added=add,
        contacts_deleted=len(deleted),
    )


class DemoCrmSeeder:
    """Inserts single accounts and contacts with a chosen modified time into a demo-schema file.

    The SQL adapter is read-only for accounts and contacts (the CRM owns them), so tests and
    the conformance kit need this side door to put records at exact points in time.
    """

    def __init__(self, path: str | Path, *, modified_column: str = "updated_at") -> None:
        self.path = Path(path)
        self.modified_column = modified_column

    def _insert(self, table: str, record: Mapping[str, Any], modified: datetime | None) -> str:
        values = dict(record)
        if modified is not None:
            if modified.tzinfo is None:
                raise ValueError("modified must be timezone-aware")
            values[self.modified_column] = (
                iso_utc(modified) if modified.microsecond == 0 else modified.astimezone(UTC).isoformat()
            )
        columns = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("?" for _ in values)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            cursor = conn.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(values.values()))
            return str(values.get("id", cursor.lastrowid))
        finally:
            conn.close()

    def add_account(self, record: Mapping[str, Any], modified: datetime | None) -> str:
        """Insert one account; returns its id as the adapter will report it."""
        return self._insert("accounts", record, modified)

    def add_contact(self, record: Mapping[str, Any], modified: datetime | None) -> str:
        """Insert one contact; returns its id as the adapter will report it."""
        return self._insert("contacts", record, modified)
